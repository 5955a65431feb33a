"""Reproduce the SynthVL-video numbers of docs/results.md: the offline path end to end.

    python scripts/run_video_evidence.py --out video_evidence            # 300 videos, seed 0
    python scripts/run_video_evidence.py --out /tmp/ve --videos 60 --epochs 2   # a smoke run

Steps (each one a ``vidlang`` command, printed before it runs; finished steps are skipped on a
re-run): ``vidlang synth --video`` -> ``vidlang extract --extractor basic`` -> ``vidlang train
mmn/cpu`` on the rendered set -> ``vidlang eval`` on the held-out test videos -> ``vidlang
predict --video`` on one held-out test video. Writes ``<out>/summary.json`` and prints the
table for docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

VIDLANG = [sys.executable, "-m", "vidlang.cli.main"]
METRICS = ("R@1,IoU>=0.3", "R@1,IoU>=0.5", "R@1,IoU>=0.7", "mIoU")


def run(args: list[str], capture: bool = False) -> str:
    print("$ vidlang " + " ".join(args), flush=True)
    done = subprocess.run(VIDLANG + args, check=True, text=True,
                          stdout=subprocess.PIPE if capture else None)
    return done.stdout or ""


def pick(metrics: dict[str, float], name: str) -> float:
    """The metric whose key starts with ``name`` (keys carry a convention tag, e.g. ' [mmn]')."""
    for key, value in metrics.items():
        if key == name or key.startswith(name + " "):
            return float(value)
    raise KeyError(f"{name} not in {sorted(metrics)}")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def prior_metrics(data: Path) -> dict[str, float]:
    """A query-blind baseline: the fixed (start, end) fraction of the video with the best mean
    IoU on train (grid of 5 %), predicted for every test query; scored like `vidlang eval`."""
    from vidlang.metrics import evaluate_grounding
    from vidlang.ops.windows import paired_iou

    train = _rows(data / "train.jsonl")
    gt = np.array([[x / r["duration"] for x in r["relevant_windows"][0]] for r in train],
                  dtype=np.float64).reshape(-1, 2)
    grid = [k / 20 for k in range(21)]
    best, best_iou = (0.0, 1.0), -1.0
    for a in grid:
        for b in grid:
            if b <= a:
                continue
            ious = paired_iou(np.broadcast_to(np.array([a, b]), gt.shape), gt).tolist()
            if sum(ious) / len(ious) > best_iou:
                best, best_iou = (a, b), sum(ious) / len(ious)
    test = _rows(data / "test.jsonl")
    preds = [{"qid": r["qid"], "pred_relevant_windows": [[best[0] * r["duration"], best[1] * r["duration"], 1.0]]}
             for r in test]
    return evaluate_grounding(preds, test, preset="mmn")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("video_evidence"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--videos", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=12, help="trainer.max_epochs (mmn/cpu: 8)")
    ap.add_argument("--stock-schedule", action="store_true",
                    help="train with mmn/cpu's own schedule (batch 12, 8 epochs) instead")
    ap.add_argument("--set", dest="sets", action="append", default=[],
                    help="extra config override for train/eval, e.g. model.text.name=word (repeatable)")
    args = ap.parse_args()
    data, run_dir = args.out / "data", args.out / "mmn"
    timings: dict[str, float] = {}

    started = time.perf_counter()
    if not (data / "meta.json").is_file():
        run(["synth", "--video", "--out", str(data), "--seed", str(args.seed), "--set", f"n_videos={args.videos}"])
    timings["synth_s"] = time.perf_counter() - started

    started = time.perf_counter()
    run(["extract", str(data / "videos"), "--extractor", "basic", "--out", str(data / "features.h5")])
    timings["extract_s"] = time.perf_counter() - started

    from vidlang.data.features import open_feature_store

    with open_feature_store(data / "features.h5") as store:
        dim = store.dim
    sets = ["--set", f"data.root={data}", "--set", f"model.input_dim={dim}", "--set", f"seed={args.seed}"]
    # mmn/cpu takes 20 steps an epoch on 240 videos at batch 12; batch 4 and 12 epochs (learning
    # rate cut and contrastive weight drop after 9) give the model enough updates to fit
    milestone = max(1, round(args.epochs * 0.75))
    sets += [] if args.stock_schedule else ["--set", f"trainer.max_epochs={args.epochs}", "--set", "data.batch_size=4",
             "--set", f"optim.scheduler.milestones=[{milestone}]", "--set", f"model.only_iou_epochs={milestone}"]
    for item in args.sets:
        sets += ["--set", item]
    started = time.perf_counter()
    if not (run_dir / "last").is_dir():
        run(["train", "mmn/cpu", "--out", str(run_dir)] + sets)
    timings["train_s"] = time.perf_counter() - started

    report = json.loads(run(["eval", "mmn/cpu", "--ckpt", str(run_dir), "--split", "test",
                             "--out", str(args.out / "eval_test")] + sets, capture=True))
    metrics = report["metrics"]
    prior = prior_metrics(data)

    first = json.loads((data / "test.jsonl").read_text(encoding="utf-8").splitlines()[0])
    video = data / "videos" / f"{first['vid']}.mp4"
    lines = run(["predict", "--ckpt", str(run_dir), "--video", str(video), "--query", first["query"],
                 "--top-k", "1"], capture=True)
    predicted = json.loads(lines.splitlines()[0])["pred_relevant_windows"][0]

    summary = {"seed": args.seed, "videos": args.videos, "feature_dim": dim,
               "test": {name: pick(metrics, name) for name in METRICS},
               "test_prior": {name: pick(prior, name) for name in METRICS},
               "example": {"video": str(video), "query": first["query"],
                           "ground_truth": first["relevant_windows"], "predicted_top1": predicted},
               "timings_s": {k: round(v, 1) for k, v in timings.items()}}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=1))
    print("\n(percent)\n| split | R@1 IoU 0.3 | R@1 IoU 0.5 | R@1 IoU 0.7 | mIoU |\n|---|---|---|---|---|")
    print("| MMN (mmn/cpu), test | " + " | ".join(f"{summary['test'][m]:.1f}" for m in METRICS) + " |")
    print("| prior (best fixed window on train), test | "
          + " | ".join(f"{summary['test_prior'][m]:.1f}" for m in METRICS) + " |")


if __name__ == "__main__":
    main()
