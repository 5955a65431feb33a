"""Evidence for docs/results.md (MMN section): MMN vs 2D-TAN vs a blind MMN vs a duration prior
on SynthVL, several seeds, mean +- std.

For each seed s: generate SynthVL (preset, seed s); train ``mmn/cpu`` and ``2dtan/cpu`` (seed
s); train the same MMN with every video's features swapped for another video's (a seeded
derangement over all videos, in training and in testing: the "blind" control); score each on
``test`` and ``test_novel`` with the ``mmn`` convention (>=, NMS 0.5, no cap, top-1 mIoU); and
score the duration prior, which ignores video and text and predicts the training set's most
common normalised windows (cells of the same 16 x 16 map, ranked by how often they are the best
cell of a training GT, then NMS), scaled by each test video's duration; and score the
query-conditioned prior (:func:`query_prior`), which sees what the blind MMN can use (the query
text and the video duration, never the video features): the same cells voted for by the GT
windows of the k training queries nearest in MiniLM sentence space, k picked on ``val``;
and the before / after / none prior (:func:`context_prior`), the same vote within the training
queries that share the test query's temporal connective.

    python scripts/run_mmn_evidence.py --out runs/mmn_evidence --seeds 0 1 2 --epochs 4
    # or one process per seed, then aggregate:
    python scripts/run_mmn_evidence.py --out runs/mmn_evidence --seeds 1 --epochs 4 --threads 1
    python scripts/run_mmn_evidence.py --out runs/mmn_evidence --seeds 0 1 2 --summarise-only
    # the priors only (no training; merged into an existing metrics.json; aggregates too):
    python scripts/run_mmn_evidence.py --out runs/mmn_evidence --seeds 0 1 2 --baselines-only

Writes ``<out>/summary.json`` and ``<out>/results.md`` (the table for docs/results.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# name -> (experiment config, shuffled video features?, run folder)
VARIANTS = {"MMN": ("mmn/cpu", False, "mmn"), "2D-TAN": ("2dtan/cpu", False, "2dtan"),
            "MMN, shuffled video (blind)": ("mmn/cpu", True, "mmn_blind")}
SPLITS = ("test", "test_novel")
PRESET = "mmn"
DURATION_PRIOR = "duration prior"
QUERY_PRIOR = "query prior: MiniLM kNN (k on val)"
CONTEXT_PRIOR = "query prior: before / after / none"
PRIORS = (DURATION_PRIOR, QUERY_PRIOR, CONTEXT_PRIOR)
QUERY_PRIOR_KS = (10, 25, 50, 100)
SELECT_KEY = f"R@1,IoU>=0.5 [{PRESET}]"  # the val metric that picks k


class ShuffledFeatures(Mapping):
    """A feature store whose video v returns the features of another video (fixed derangement)."""

    def __init__(self, path: Path, video_ids: Sequence[str], seed: int) -> None:
        self.path = path
        ids = sorted(video_ids)
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(ids))
        # a cyclic shift of a random order never maps a video to itself
        self.source = {ids[order[i]]: ids[order[(i + 1) % len(ids)]] for i in range(len(ids))}
        self._store: Any = None

    def _open(self) -> Any:
        if self._store is None:
            from vidlang.data.features import open_feature_store

            self._store = open_feature_store(str(self.path))
        return self._store

    def __getitem__(self, video_id: str) -> Any:
        return self._open()[self.source[video_id]]

    def __iter__(self) -> Iterator[str]:
        return iter(self.source)

    def __len__(self) -> int:
        return len(self.source)


def _cells(num_clips: int) -> np.ndarray:
    """[C, 2] normalised (start, end) of the upper-triangle cells of the num_clips^2 map."""
    ii, jj = np.triu_indices(num_clips)
    return np.stack([ii / num_clips, (jj + 1) / num_clips], axis=1)


def _normalised_gt(records: Sequence[Any]) -> np.ndarray:
    """[N, 2] first GT window of each record, clipped to the video and divided by its duration."""
    return np.array([[max(0.0, r.windows[0][0]) / r.duration, min(r.duration, r.windows[0][1]) / r.duration]
                     for r in records]).reshape(-1, 2)


def _ranked(cells: np.ndarray, score: np.ndarray, record: Any, nms_thresh: float) -> dict[str, Any]:
    """One prediction: cells kept by NMS in score order, scaled by the record's duration."""
    from vidlang.metrics import nms

    kept = nms(cells, score, nms_thresh)
    return {"qid": record.qid, "pred_relevant_windows": [
        [float(cells[k, 0] * record.duration), float(cells[k, 1] * record.duration), float(score[k])]
        for k in kept]}


def duration_prior(train: Sequence[Any], test: Sequence[Any], num_clips: int = 16,
                   nms_thresh: float = 0.5) -> list[dict[str, Any]]:
    """Predictions that ignore video and text: the most common normalised windows of training."""
    from vidlang.metrics import temporal_iou

    cells = _cells(num_clips)
    gt = _normalised_gt([r for r in train if r.windows])
    iou = np.asarray(temporal_iou(cells, gt))  # [cells, train queries]
    counts = np.bincount(iou.argmax(axis=0), minlength=len(cells)).astype(np.float64)
    score = counts + iou.mean(axis=1) * 1e-3  # ties broken by mean IoU
    return [_ranked(cells, score, r, nms_thresh) for r in test]


def minilm_embed(texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """[N, D] L2-normalised sentence vectors of the bundled MiniLM (``minilm`` text encoder with
    the default config: mean pooling, the frozen encoder MMN starts from), in eval mode."""
    import torch

    from vidlang.text.config import TextEncoderConfig, build_text_encoder

    encoder = build_text_encoder(TextEncoderConfig(name="minilm"), key="query_prior.text")
    encoder.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            out.append(encoder(list(texts[i:i + batch_size])).sentence.double().numpy())
    vectors = np.concatenate(out) if out else np.zeros((0, encoder.dim))
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def query_prior(train: Sequence[Any], test: Sequence[Any], k: int, num_clips: int = 16,
                nms_thresh: float = 0.5,
                embed: Callable[[Sequence[str]], np.ndarray] = minilm_embed,
                ) -> list[dict[str, Any]]:
    """Query-conditioned (text-only) prior: the duration prior restricted to similar queries.

    It sees what the blind MMN can use -- the query text, and the video duration to turn
    normalised windows into seconds -- and never the video features or any test GT. For each
    test query, take the k training queries nearest to it by cosine similarity of ``embed``
    (default: the bundled MiniLM sentence vectors, :func:`minilm_embed`); each neighbour votes
    for the cell of the 16 x 16 map (same geometry as :func:`duration_prior`) that best matches
    its normalised GT window; cells are ranked by votes, ties broken by the neighbours' mean IoU
    with the cell, then by the unconditional duration prior's score, then NMS 0.5, and scaled by
    the test video's duration. A test query whose text equals a training query's therefore votes
    with that query's windows (the question is what the words alone say about where and how long
    the moment is: "before ..." / "after ..." clauses, verbs with typical durations). k = all
    training queries gives back the duration prior's ranking.
    """
    from vidlang.metrics import temporal_iou

    train = [r for r in train if r.windows]
    if not 1 <= k:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, len(train))
    cells = _cells(num_clips)
    iou = np.asarray(temporal_iou(cells, _normalised_gt(train)))  # [cells, train queries]
    best = iou.argmax(axis=0)  # each training query's best cell
    global_score = np.bincount(best, minlength=len(cells)) + iou.mean(axis=1) * 1e-3
    global_score = global_score / (global_score.max() + 1.0)  # < 1: only breaks ties
    train_vec = np.asarray(embed([r.query for r in train]), dtype=np.float64)
    test_vec = np.asarray(embed([r.query for r in test]), dtype=np.float64)
    preds = []
    for row, record in zip(test_vec @ train_vec.T, test):
        # stable sort: equal similarities keep training order, so results are deterministic
        nearest = np.argsort(-row, kind="stable")[:k]
        votes = np.bincount(best[nearest], minlength=len(cells)).astype(np.float64)
        score = votes + iou[:, nearest].mean(axis=1) * 1e-3 + global_score * 1e-6
        preds.append(_ranked(cells, score, record, nms_thresh))
    return preds


def score(preds: list[dict[str, Any]], records: Sequence[Any]) -> dict[str, float]:
    from vidlang.metrics import evaluate_grounding

    return evaluate_grounding(preds, list(records), preset=PRESET)


def query_context(query: str) -> str:
    """The temporal connective of a query, read from its words only: ``after`` (``after ...``
    or ``once ...``: the moment follows a named event), ``before`` (it precedes one) or
    ``none``."""
    words = query.lower().replace(",", " ").replace(".", " ").split()
    if "after" in words or "once" in words:
        return "after"
    return "before" if "before" in words else "none"


def context_prior(train: Sequence[Any], test: Sequence[Any], num_clips: int = 16,
                  nms_thresh: float = 0.5) -> list[dict[str, Any]]:
    """Discrete query-conditioned prior: the duration prior computed separately for each
    temporal-connective group of queries (:func:`query_context`: after / before / none).

    A test query gets the cells most often best for the training queries with the same
    connective (votes, ties by their mean IoU, then by the unconditional duration prior's
    score; NMS 0.5; scaled by the test video's duration). It reads the query's words, never
    the video or test GT; a group absent from training falls back to the duration prior.
    """
    from vidlang.metrics import temporal_iou

    train = [r for r in train if r.windows]
    cells = _cells(num_clips)
    iou = np.asarray(temporal_iou(cells, _normalised_gt(train)))  # [cells, train queries]
    best = iou.argmax(axis=0)
    global_score = np.bincount(best, minlength=len(cells)) + iou.mean(axis=1) * 1e-3
    keys = np.array([query_context(r.query) for r in train])
    scores: dict[str, np.ndarray] = {}
    preds = []
    for record in test:
        key = query_context(record.query)
        if key not in scores:
            members = np.flatnonzero(keys == key)
            if len(members) == 0:
                scores[key] = global_score
            else:
                scores[key] = (np.bincount(best[members], minlength=len(cells))
                               + iou[:, members].mean(axis=1) * 1e-3
                               + global_score / (global_score.max() + 1.0) * 1e-6)
        preds.append(_ranked(cells, scores[key], record, nms_thresh))
    return preds


def score_priors(records: Mapping[str, Sequence[Any]],
                 embed: Callable[[Sequence[str]], np.ndarray] = minilm_embed,
                 ) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, Any]]:
    """The three priors on ``test`` and ``test_novel``; the kNN query prior's k is the one of
    ``QUERY_PRIOR_KS`` with the best ``val`` ``SELECT_KEY`` (ties: the smaller k). Returns the
    metrics and a record of the choice (val metrics per k, chosen k)."""
    cache: dict[str, np.ndarray] = {}

    def cached(texts: Sequence[str]) -> np.ndarray:  # embed each distinct string once
        missing = sorted(set(texts) - cache.keys())
        if missing:
            cache.update(zip(missing, embed(missing)))
        return np.stack([cache[t] for t in texts])

    train = records["train"]
    val = {k: score(query_prior(train, records["val"], k, embed=cached), records["val"])
           for k in QUERY_PRIOR_KS}
    chosen = max(QUERY_PRIOR_KS, key=lambda k: (val[k][SELECT_KEY], -k))
    results = {DURATION_PRIOR: {s: score(duration_prior(train, records[s]), records[s])
                                for s in SPLITS},
               QUERY_PRIOR: {s: score(query_prior(train, records[s], chosen, embed=cached),
                                      records[s]) for s in SPLITS},
               CONTEXT_PRIOR: {s: score(context_prior(train, records[s]), records[s])
                               for s in SPLITS}}
    info = {"chosen_k": chosen, "select_key": SELECT_KEY,
            "val": {str(k): {m: v for m, v in val[k].items() if m.startswith(("R@", "mIoU"))}
                    for k in QUERY_PRIOR_KS}}
    return results, info


def run_variant(name: str, data: Path, seed: int, epochs: int | None, out: Path,
                records: Mapping[str, Sequence[Any]]) -> dict[str, dict[str, float]]:
    from vidlang.data.synthvl import FEATURES_FILE, read_meta
    from vidlang.engine import evaluate, load_config, train
    from vidlang.engine.checkpoint import build_model
    from vidlang.engine.evaluation import build_pipeline
    from vidlang.engine.pipelines.grounding import GroundingPipeline

    config, blind, folder = VARIANTS[name]
    dim = int(read_meta(data)["params"]["feature_dim"])
    sets = [f"data.root={data}", f"seed={seed}", f"model.input_dim={dim}",
            "data.select_split=null", "trainer.progress_bar=false", "trainer.log_every_n_steps=50"]
    if epochs is not None:
        sets += [f"trainer.max_epochs={epochs}", f"model.only_iou_epochs={max(1, epochs - 1)}",
                 f"optim.scheduler.milestones=[{max(1, epochs - 1)}]"]
    cfg = load_config(config, sets)
    spec_model = build_model(cfg)
    if blind:
        ids = [r.video_id for split in records for r in records[split]]
        pipeline = GroundingPipeline(cfg, spec_model.feature_spec(),
                                     features=ShuffledFeatures(data / FEATURES_FILE, ids, seed))
    else:
        pipeline = build_pipeline(cfg, spec_model)
    run_dir = out / f"seed{seed}" / folder
    result = train(cfg, run_dir, pipeline=pipeline)
    metrics = {}
    for split in SPLITS:
        evaluate(cfg, result.last_dir, split=split, out_dir=run_dir / f"eval_{split}",
                 pipeline=pipeline, device="cpu")
        preds = [json.loads(line) for line in
                 (run_dir / f"eval_{split}" / "predictions.jsonl").read_text().splitlines() if line]
        metrics[split] = score(preds, records[split])
    return metrics


def aggregate(per_seed: list[dict[str, dict[str, dict[str, float]]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for variant in per_seed[0]:
        for split in SPLITS:
            for key in per_seed[0][variant][split]:
                values = [run[variant][split][key] for run in per_seed]
                out.setdefault(variant, {}).setdefault(split, {})[key] = (
                    statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
    return out


def markdown(summary: dict[str, Any], seeds: Sequence[int], command: str) -> str:
    first = next(iter(summary.values()))[SPLITS[0]]
    keys = [k for k in first if k.startswith(("R@", "mIoU"))]
    lines = [f"Command: `{command}` (seeds {', '.join(map(str, seeds))}; mean ± std over seeds; "
             f"percent; `{PRESET}` convention)", ""]
    for split in SPLITS:
        lines += [f"**{split}**", "", "| model | " + " | ".join(k.split(" [")[0] for k in keys) + " |",
                  "|---" * (len(keys) + 1) + "|"]
        for variant, table in summary.items():
            row = table[split]
            lines.append(f"| {variant} | " + " | ".join(f"{row[k][0]:.1f} ± {row[k][1]:.1f}"
                                                         for k in keys) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import sys

    import torch

    from vidlang.data.synthvl import generate, load

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/mmn_evidence"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--epochs", type=int, default=None, help="default: the configs' own")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--summarise-only", action="store_true",
                        help="aggregate the seeds' metrics.json already in --out")
    parser.add_argument("--baselines-only", action="store_true",
                        help="score only the two priors (no training; SynthVL is deterministic "
                             "per seed) and merge them into <out>/seed<s>/metrics.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    per_seed = []
    for seed in args.seeds:
        done = args.out / f"seed{seed}" / "metrics.json"
        if args.summarise_only:
            per_seed.append(json.loads(done.read_text()))
            continue
        data = args.out / f"synthvl_{args.preset}_seed{seed}"
        if not (data / "meta.json").is_file():
            generate(data, args.preset, seed)
        records = {s: load(data, s).grounding for s in ("train", "val", *SPLITS)}
        if args.baselines_only:
            # keep the models' rows of an earlier full run of this seed, if any
            results = json.loads(done.read_text()) if done.is_file() else {}
            results = {name: row for name, row in results.items()
                       if name not in PRIORS}
        else:
            results = {name: run_variant(name, data, seed, args.epochs, args.out, records)
                       for name in args.variants}
        priors, info = score_priors(records)
        results.update(priors)
        per_seed.append(results)
        done.parent.mkdir(parents=True, exist_ok=True)
        done.write_text(json.dumps(results, indent=1))
        (done.parent / "query_prior.json").write_text(json.dumps(info, indent=1))
        print(f"seed {seed} done (query prior: k = {info['chosen_k']} by val {SELECT_KEY}: "
              + ", ".join(f"k={k} {v[SELECT_KEY]:.1f}" for k, v in info["val"].items()) + ")",
              flush=True)
    summary = aggregate(per_seed)
    command = "python scripts/run_mmn_evidence.py " + " ".join(argv if argv is not None else sys.argv[1:])
    (args.out / "summary.json").write_text(json.dumps({"seeds": args.seeds, "command": command,
                                                       "summary": summary}, indent=1))
    text = markdown(summary, args.seeds, command)
    (args.out / "results.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
