"""Reproduce the CPL / CCR evidence table of docs/results.md with one command.

    .venv/bin/python scripts/run_weak_evidence.py --out runs/weak_evidence          # full table
    .venv/bin/python scripts/run_weak_evidence.py --out runs/weak_evidence --epochs 5   # docs' table
    .venv/bin/python scripts/run_weak_evidence.py --out /tmp/weak_quick --quick     # smoke run

For SynthVL ``--preset`` (default small, data seed 0) with ``spurious_cooccurrence`` 0 and 0.9
it trains CPL and CCR (configs ``cpl/cpu``, ``ccr/cpu``; CCR without the V x V end
classifiers on ``--ablation-spurious``) for each training seed, keeps the checkpoint selected on ``val`` (R@1,IoU>=0.5
under the ``cpl`` convention) and scores it on ``test`` and ``test_novel``. CCR checkpoints are
also scored with proposals ranked by TE and by the factual logits instead of TIE (the same
weights, only ``model.rank_logits`` changes). Timestamps are read only by the evaluation.
Writes ``runs.jsonl`` (one line per scored run) and ``table.md`` (mean +- std over seeds).
Training runs whose ``best/model.safetensors`` exists are not retrained, only rescored. The
docs' table (``--epochs 5 --jobs 2``) took 43 minutes on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

METRICS = ["R@1,IoU>=0.3", "R@1,IoU>=0.5", "R@1,IoU>=0.7", "R@5,IoU>=0.3", "R@5,IoU>=0.5", "R@5,IoU>=0.7", "mIoU"]
SPLITS = ("test", "test_novel")
# (row name, config, extra overrides, rank_logits variants scored from the same weights, ablation?)
UNTRAINED = "CPL, untrained"  # reference: random weights, same vocabulary and evaluation
VARIANTS: list[tuple[str, str, list[str], list[str], bool]] = [
    (UNTRAINED, "cpl/cpu", [], [], False),
    ("CPL", "cpl/cpu", [], [], False),
    ("CCR", "ccr/cpu", [], ["tie", "te", "factual"], False),
    ("CCR, no end classifiers", "ccr/cpu", ["model.end_classifier=false"], ["tie"], True),
]


def make_data(out: Path, preset: str, spurious: float) -> Path:
    """SynthVL folder for one ``spurious_cooccurrence`` setting (data seed 0; reused if present)."""
    root = out / f"synthvl_{preset}_spur{spurious:g}"
    if not (root / "features.h5").is_file():
        cmd = [sys.executable, "-m", "vidlang.cli.main", "synth", "--preset", preset, "--seed", "0",
               "--out", str(root), "--set", f"spurious_cooccurrence={spurious}"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return root


def score(model: Any, cfg: Any, split: str) -> dict[str, float]:
    from vidlang.engine.evaluation import build_pipeline, run_eval_outputs

    pipe = build_pipeline(cfg, model)
    metrics = pipe.evaluate(model, run_eval_outputs(model, pipe, split), split)
    return {k.split(" [")[0]: float(v) for k, v in metrics.items()}


def run_one(job: dict[str, Any]) -> list[dict[str, Any]]:
    """Train one (variant, spurious, seed) and score it on every split and ranking."""
    import torch

    torch.set_num_threads(1)
    from vidlang.engine.checkpoint import load_model
    from vidlang.engine.config import load_config
    from vidlang.engine.run import train

    epochs = [] if job["epochs"] is None else [f"trainer.max_epochs={job['epochs']}"]
    overrides = [f"data.root={job['root']}", f"seed={job['seed']}", "trainer.progress_bar=false",
                 "trainer.accelerator=cpu", *epochs, *job["overrides"]]
    cfg = load_config(job["config"], overrides)
    out_dir = Path(job["run_dir"])
    if job["variant"] == UNTRAINED:
        from vidlang.engine.checkpoint import build_model
        from vidlang.engine.evaluation import build_pipeline

        torch.manual_seed(job["seed"])
        model = build_model(cfg)
        model.prepare(build_pipeline(cfg, model).training_records())
        model.eval()
    else:
        if not (out_dir / "best" / "model.safetensors").is_file():
            train(cfg, out_dir)  # the engine calls model.prepare(train records): the vocabulary
        model = load_model(out_dir, map_location="cpu")
    rows = []
    for rank in job["ranks"] or [None]:
        if rank is not None:
            model.cfg.rank_logits = rank
        for split in SPLITS:
            rows.append({"variant": job["variant"], "spurious": job["spurious"], "seed": job["seed"],
                         "rank_logits": rank, "split": split, "run_dir": str(out_dir),
                         "command": job["command"], "metrics": score(model, cfg, split)})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one line per (variant, ranking, spurious, split), mean +- std over seeds."""
    groups: dict[tuple[Any, ...], list[dict[str, float]]] = {}
    for r in rows:
        key = (r["variant"], r["rank_logits"] or "", r["spurious"], r["split"])
        groups.setdefault(key, []).append(r["metrics"])
    lines = ["| model | ranking | spurious | split | seeds | " + " | ".join(METRICS) + " |",
             "|---|---|---|---|---|" + "---|" * len(METRICS)]
    for (variant, rank, spurious, split), ms in groups.items():
        cells = []
        for m in METRICS:
            vals = [x[m] for x in ms]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{statistics.mean(vals):.1f} ± {sd:.1f}")
        lines.append(f"| {variant} | {rank or 'loss'} | {spurious:g} | {split} | {len(ms)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/weak_evidence"))
    ap.add_argument("--preset", default="small")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: the configs' 8)")
    ap.add_argument("--spurious", type=float, nargs="+", default=[0.0, 0.9])
    ap.add_argument("--ablation-spurious", type=float, nargs="+", default=[0.9],
                    help="spurious settings on which the ablation rows (no end classifiers) are trained")
    ap.add_argument("--jobs", type=int, default=2, help="training processes in parallel (1 thread each)")
    ap.add_argument("--quick", action="store_true", help="tiny preset, one seed, one epoch")
    args = ap.parse_args(argv)
    if args.quick:
        args.preset, args.seeds, args.epochs = "tiny", [0], 1
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python scripts/run_weak_evidence.py " + " ".join(argv if argv is not None else sys.argv[1:])
    tiny = ["model.frame_dim=32"] if args.preset == "tiny" else []
    jobs = []
    for spurious in args.spurious:
        root = make_data(args.out, args.preset, spurious)
        for variant, config, extra, ranks, ablation in VARIANTS:
            if ablation and spurious not in args.ablation_spurious:
                continue
            for seed in args.seeds:
                slug = variant.lower().replace(", ", "_").replace(" ", "_")
                jobs.append({"variant": variant, "config": config, "overrides": [*extra, *tiny], "ranks": ranks,
                             "spurious": spurious, "seed": seed, "root": str(root), "epochs": args.epochs,
                             "run_dir": str(args.out / f"{slug}_spur{spurious:g}_seed{seed}"), "command": command})
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for result in pool.map(run_one, jobs):
            rows.extend(result)
            print(f"done: {result[0]['variant']} spurious={result[0]['spurious']} seed={result[0]['seed']}", flush=True)
    with open(args.out / "runs.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    md = table(rows)
    (args.out / "table.md").write_text(md, encoding="utf-8")
    print(md)


if __name__ == "__main__":
    main()
