"""Evidence for docs/results.md (MMN section): MMN vs 2D-TAN vs a blind MMN vs a duration prior
on SynthVL, several seeds, mean +- std.

For each seed s: generate SynthVL (preset, seed s); train ``mmn/cpu`` and ``2dtan/cpu`` (seed
s); train the same MMN with every video's features swapped for another video's (a seeded
derangement over all videos, in training and in testing: the "blind" control); score each on
``test`` and ``test_novel`` with the ``mmn`` convention (>=, NMS 0.5, no cap, top-1 mIoU); and
score the duration prior, which ignores video and text and predicts the training set's most
common normalised windows (cells of the same 16 x 16 map, ranked by how often they are the best
cell of a training GT, then NMS), scaled by each test video's duration.

    python scripts/run_mmn_evidence.py --out runs/mmn_evidence --seeds 0 1 2 --epochs 4
    # or one process per seed, then aggregate:
    python scripts/run_mmn_evidence.py --out runs/mmn_evidence --seeds 1 --epochs 4 --threads 1
    python scripts/run_mmn_evidence.py --out runs/mmn_evidence --seeds 0 1 2 --summarise-only

Writes ``<out>/summary.json`` and ``<out>/results.md`` (the table for docs/results.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# name -> (experiment config, shuffled video features?, run folder)
VARIANTS = {"MMN": ("mmn/cpu", False, "mmn"), "2D-TAN": ("2dtan/cpu", False, "2dtan"),
            "MMN, shuffled video (blind)": ("mmn/cpu", True, "mmn_blind")}
SPLITS = ("test", "test_novel")
PRESET = "mmn"


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


def duration_prior(train: Sequence[Any], test: Sequence[Any], num_clips: int = 16,
                   nms_thresh: float = 0.5) -> list[dict[str, Any]]:
    """Predictions that ignore video and text: the most common normalised windows of training."""
    from vidlang.metrics import nms, temporal_iou

    ii, jj = np.triu_indices(num_clips)
    cells = np.stack([ii / num_clips, (jj + 1) / num_clips], axis=1)
    gt = np.array([[max(0.0, r.windows[0][0]) / r.duration, min(r.duration, r.windows[0][1]) / r.duration]
                   for r in train if r.windows])
    iou = np.asarray(temporal_iou(cells, gt))  # [cells, train queries]
    counts = np.bincount(iou.argmax(axis=0), minlength=len(cells)).astype(np.float64)
    score = counts + iou.mean(axis=1) * 1e-3  # ties broken by mean IoU
    kept = nms(cells, score, nms_thresh)
    return [{"qid": r.qid, "pred_relevant_windows": [
        [float(cells[k, 0] * r.duration), float(cells[k, 1] * r.duration), float(score[k])]
        for k in kept]} for r in test]


def score(preds: list[dict[str, Any]], records: Sequence[Any]) -> dict[str, float]:
    from vidlang.metrics import evaluate_grounding

    return evaluate_grounding(preds, list(records), preset=PRESET)


def run_variant(name: str, data: Path, seed: int, epochs: int | None, out: Path,
                records: Mapping[str, Sequence[Any]]) -> dict[str, dict[str, float]]:
    from vidlang.data.synthvl import FEATURES_FILE, read_meta
    from vidlang.engine import evaluate, load_config, train
    from vidlang.engine.checkpoint import build_model
    from vidlang.engine.pipelines.grounding import GroundingPipeline
    from vidlang.engine.run import build_pipeline

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
        records = {s: load(data, s).grounding for s in ("train", *SPLITS)}
        results = {name: run_variant(name, data, seed, args.epochs, args.out, records)
                   for name in args.variants}
        results["duration prior"] = {s: score(duration_prior(records["train"], records[s]),
                                              records[s]) for s in SPLITS}
        per_seed.append(results)
        done.write_text(json.dumps(results, indent=1))
        print(f"seed {seed} done", flush=True)
    summary = aggregate(per_seed)
    command = "python scripts/run_mmn_evidence.py " + " ".join(argv if argv is not None else sys.argv[1:])
    (args.out / "summary.json").write_text(json.dumps({"seeds": args.seeds, "command": command,
                                                       "summary": summary}, indent=1))
    text = markdown(summary, args.seeds, command)
    (args.out / "results.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
