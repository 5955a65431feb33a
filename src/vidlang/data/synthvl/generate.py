"""Write a SynthVL benchmark folder (the layout is documented in docs/synthvl.md).

``meta.json``, per split ``{split}.jsonl`` (canonical grounding records) and
``videos_{split}.jsonl`` (captions, paragraph, events, questions), and ``features.h5`` +
``durations.json`` in vidlang's canonical feature format. Same seed and parameters give
byte-identical files: the HDF5 writer does not store times and no JSON holds a timestamp.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vidlang.data.records import GroundingRecord, write_grounding_jsonl
from vidlang.data.synthvl.config import SPLITS, SynthVLConfig, coerce_value, make_config
from vidlang.data.synthvl.language import caption, event_sentence, grounding_query, questions
from vidlang.data.synthvl.plans import VideoPlan, pair_counts, plan_split
from vidlang.data.synthvl.render import render
from vidlang.data.synthvl.vocab import OBJECTS, VERB_NAMES, clause_of
from vidlang.data.synthvl.world import World, build_world

FORMAT = "synthvl"
FORMAT_VERSION = 1
META_FILE = "meta.json"
FEATURES_FILE = "features.h5"
LAYOUT = {
    "meta.json": "preset, seed, every parameter, counts, vocabulary and compositions",
    "{split}.jsonl": "grounding records: qid, vid, duration, query, relevant_windows, split, "
                     "event_index, context",
    "videos_{split}.jsonl": "one object per video: vid, split, duration, caption, captions, paragraph, "
                            "events, questions, partner, relation",
    "features.h5": "canonical vidlang features: one float32 [T, D] dataset per video",
    "durations.json": "{vid: seconds}",
}


def grounding_path(root: str | Path, split: str) -> Path:
    return Path(root) / f"{split}.jsonl"


def videos_path(root: str | Path, split: str) -> Path:
    return Path(root) / f"videos_{split}.jsonl"


def _video_rngs(seed: int, split: str, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    seq = np.random.SeedSequence([int(seed), 0x7E, SPLITS.index(split), index])
    text_seq, feat_seq = seq.spawn(2)
    return np.random.default_rng(text_seq), np.random.default_rng(feat_seq)


def _windows_json(windows: tuple[tuple[float, float], ...]) -> list[list[float]]:
    return [[s, e] for s, e in windows]


def _describe(plan: VideoPlan, cfg: SynthVLConfig, pool: list[Any],
              rng: np.random.Generator) -> tuple[list[GroundingRecord], dict[str, Any]]:
    """The grounding records and the per-video object of one planned video."""
    records = []
    for i, window in enumerate(plan.windows):
        query, context = grounding_query(plan, i, cfg, rng)
        records.append(GroundingRecord(f"{plan.vid}_q{i}", plan.vid, plan.duration, query, (window,),
                                       split=plan.split, extra={"event_index": i, "context": context}))
    start = int(rng.integers(cfg.captions_per_video))
    caps = [caption(plan.events, start + k, rng, cfg.verb_object_gap) for k in range(cfg.captions_per_video)]
    video = {
        "vid": plan.vid,
        "split": plan.split,
        "duration": plan.duration,
        "caption": caps[0],
        "captions": caps,
        "paragraph": {"sentences": [event_sentence(c, rng, cfg.verb_object_gap) for c in plan.events],
                      "windows": _windows_json(plan.windows)},
        "events": [{"verb": v, "object": o, "phrase": clause_of(v, o, cfg.verb_object_gap), "start": s, "end": e}
                   for (v, o), (s, e) in zip(plan.events, plan.windows)],
        "questions": [q.to_json() for q in questions(plan, cfg, pool, rng)],
        "partner": plan.partner,
        "relation": plan.relation,
    }
    return records, video


def _meta(cfg: SynthVLConfig, preset: str, seed: int, overrides: dict[str, Any], world: World,
          counts: dict[str, dict[str, int]]) -> dict[str, Any]:
    from vidlang import __version__

    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "vidlang_version": __version__,
        "preset": preset,
        "seed": int(seed),
        "overrides": dict(sorted(overrides.items())),
        "params": cfg.to_json(),
        "splits": list(SPLITS),
        "counts": counts,
        "verbs": list(VERB_NAMES),
        "objects": list(OBJECTS),
        "compositions": {"seen": [list(c) for c in world.seen], "novel": [list(c) for c in world.novel]},
        "dominant_object": world.dominant_object,
        "layout": LAYOUT,
    }


def total_videos(cfg: SynthVLConfig) -> int:
    return sum(cfg.split_size(s) for s in SPLITS)


def generate(out_dir: str | Path, preset: str = "small", seed: int = 0,
             progress: Callable[[int], None] | None = None, **overrides: Any) -> Path:
    """Write the SynthVL benchmark of ``preset`` (with ``overrides``) for ``seed`` into
    ``out_dir`` and return it. ``progress(n)`` is called after every ``n`` rendered videos."""
    from vidlang.data.features import CanonicalH5Writer

    overrides = {key: coerce_value(key, value) for key, value in overrides.items()}
    cfg = make_config(preset, **overrides)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = build_world(cfg, seed)
    counts: dict[str, dict[str, int]] = {}
    with CanonicalH5Writer(out / FEATURES_FILE, cfg.clip_seconds, cfg.feature_dim) as writer:
        for split in SPLITS:
            counts[split] = _write_split(out, split, cfg, world, seed, writer, progress)
    meta = _meta(cfg, preset, seed, overrides, world, counts)
    (out / META_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return out


def _write_split(out: Path, split: str, cfg: SynthVLConfig, world: World, seed: int, writer: Any,
                 progress: Callable[[int], None] | None) -> dict[str, int]:
    plans = plan_split(cfg, world, split, seed)
    pool = list(world.novel if split == "test_novel" else world.seen)
    records: list[GroundingRecord] = []
    n_questions = 0
    with open(videos_path(out, split), "w", encoding="utf-8") as vf:
        for index, plan in enumerate(plans):
            text_rng, feat_rng = _video_rngs(seed, split, index)
            recs, video = _describe(plan, cfg, pool, text_rng)
            records.extend(recs)
            n_questions += len(video["questions"])
            vf.write(json.dumps(video, ensure_ascii=False) + "\n")
            writer.add(plan.vid, render(plan, world, cfg, feat_rng), plan.duration)
            if progress is not None:
                progress(1)
    write_grounding_jsonl(records, grounding_path(out, split))
    hard, shuffled = pair_counts(cfg, len(plans))
    return {"videos": len(plans), "queries": len(records), "questions": n_questions,
            "hard_negative_pairs": hard, "shuffled_order_pairs": shuffled}

