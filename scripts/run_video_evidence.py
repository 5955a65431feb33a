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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("video_evidence"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--videos", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=None, help="override trainer.max_epochs of mmn/cpu")
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
    if args.epochs is not None:
        sets += ["--set", f"trainer.max_epochs={args.epochs}"]
    started = time.perf_counter()
    if not (run_dir / "last").is_dir():
        run(["train", "mmn/cpu", "--out", str(run_dir)] + sets)
    timings["train_s"] = time.perf_counter() - started

    report = json.loads(run(["eval", "mmn/cpu", "--ckpt", str(run_dir), "--split", "test",
                             "--out", str(args.out / "eval_test")] + sets, capture=True))
    metrics = report["metrics"]

    first = json.loads((data / "test.jsonl").read_text(encoding="utf-8").splitlines()[0])
    video = data / "videos" / f"{first['vid']}.mp4"
    lines = run(["predict", "--ckpt", str(run_dir), "--video", str(video), "--query", first["query"],
                 "--top-k", "1"], capture=True)
    predicted = json.loads(lines.splitlines()[0])["pred_relevant_windows"][0]

    summary = {"seed": args.seed, "videos": args.videos, "feature_dim": dim,
               "test": {name: pick(metrics, name) for name in METRICS},
               "example": {"video": str(video), "query": first["query"],
                           "ground_truth": first["relevant_windows"], "predicted_top1": predicted},
               "timings_s": {k: round(v, 1) for k, v in timings.items()}}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=1))
    print("\n| split | R@1 IoU 0.3 | R@1 IoU 0.5 | R@1 IoU 0.7 | mIoU |\n|---|---|---|---|---|")
    print("| test | " + " | ".join(f"{100 * summary['test'][m]:.1f}" for m in METRICS) + " |")


if __name__ == "__main__":
    main()
