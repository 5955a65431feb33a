"""Reproduce the retrieval evidence table of docs/results.md with one command.

    .venv/bin/python scripts/run_retrieval_evidence.py            # full table (CPU, minutes)
    .venv/bin/python scripts/run_retrieval_evidence.py --quick    # smoke run on tiny SynthVL

Generates SynthVL (``--preset``, data seed ``--data-seed``, ``hard_negative_fraction``) unless
it exists, then trains every variant below with ``vidlang.engine.train`` for each training seed
and scores the last epoch on the test split through the task pipeline (``vidlang.metrics``):

* caption retrieval: InfoNCE baseline, +NegNCE, +NegNCE+TPM-CL (dual encoder), and
  DMAE (att_ti + TWM + NFC) + NegNCE + TPM-CL, the paper's full model;
* paragraph retrieval: multi-level (λ_s = 0.5) vs global-only (λ_s = 0) alignment;
* multiple-choice QA: multi-level (λ_g = 1, λ_s = 0.5) vs global-only (λ_g = 1, λ_s = 0).

Writes ``<out>/results.json`` (every run's metrics) and ``<out>/results.md`` (mean ± std over
seeds). Checkpoints are deleted after scoring (each holds the frozen MiniLM).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

# name -> (packaged config, overrides); every run also gets the common overrides below
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "ret/InfoNCE (dual encoder)": ("retrieval/synthvl_cpu", []),
    "ret/+NegNCE": ("retrieval/synthvl_cpu", ["model.loss=negnce"]),
    "ret/+NegNCE+TPM-CL": ("retrieval/synthvl_cpu",
                           ["model.loss=negnce", "model.tpmcl_partial_type=4"]),
    "ret/DMAE+NegNCE+TPM-CL": ("retrieval/synthvl_dmae_cpu", []),
    "para/multi-level": ("retrieval/synthvl_paragraphs_cpu", []),
    "para/global-only": ("retrieval/synthvl_paragraphs_cpu",
                         ["model.multilevel.lambda_segment=0"]),
    "qa/multi-level": ("mcqa/synthvl_cpu", []),
    "qa/global-only": ("mcqa/synthvl_cpu", ["model.multilevel.lambda_segment=0"]),
}
RANK_KEYS = ("R@1", "R@5", "R@10", "MdR", "MnR")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/retrieval_evidence")
    p.add_argument("--preset", default="small")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--hard-negative-fraction", type=float, default=0.3)
    p.add_argument("--data-set", nargs="*", default=["n_train=320", "n_val=50", "n_test=200",
                                                     "n_test_novel=10"],
                   help="SynthVL generation overrides key=value (CPU-cheap sizes by default)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--only", nargs="*", default=None, help="variant name prefixes to run")
    p.add_argument("--set", dest="overrides", nargs="*", default=[],
                   help="extra config overrides for every run")
    p.add_argument("--quick", action="store_true", help="tiny SynthVL, 1 seed, 2 epochs")
    return p.parse_args()


def ensure_data(args: argparse.Namespace, out: Path) -> Path:
    from vidlang.data.synthvl.config import parse_overrides
    from vidlang.data.synthvl.generate import generate

    sizes = "_".join(x.replace("=", "") for x in args.data_set)
    root = out / f"synthvl_{args.preset}_{sizes}_hn{args.hard_negative_fraction}_s{args.data_seed}"
    if not (root / "meta.json").is_file():
        generate(root, preset=args.preset, seed=args.data_seed,
                 hard_negative_fraction=args.hard_negative_fraction,
                 **parse_overrides(list(args.data_set)))
    return root


def run_one(config: str, overrides: list[str], run_dir: Path) -> tuple[dict[str, Any], float]:
    """Train, score the last epoch on test, drop the checkpoints; (metrics, seconds)."""
    from vidlang.engine.config import load_config
    from vidlang.engine.evaluation import build_pipeline, run_eval_outputs
    from vidlang.engine.run import train

    start = time.perf_counter()
    if run_dir.exists():
        shutil.rmtree(run_dir)
    cfg = load_config(config, overrides)
    result = train(cfg, run_dir)
    pipe = build_pipeline(cfg, result.model)
    metrics = pipe.evaluate(result.model, run_eval_outputs(result.model, pipe, cfg.data.test_split),
                            cfg.data.test_split)
    for sub in ("checkpoints", "last", "best"):
        shutil.rmtree(run_dir / sub, ignore_errors=True)
    (run_dir / "test_metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
    return metrics, time.perf_counter() - start


def metric(metrics: dict[str, Any], direction: str, name: str) -> float:
    """The value of ``<direction> <name> [...]`` (vidlang.metrics tags every key)."""
    (value,) = [v for k, v in metrics.items() if k.startswith(f"{direction} {name} [")]
    return float(value)


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def table(results: dict[str, list[dict[str, Any]]]) -> str:
    lines = ["| Variant | t2v R@1 | t2v R@5 | t2v R@10 | t2v MdR | t2v MnR | v2t R@1 | v2t R@5 "
             "| v2t R@10 | v2t MdR | v2t MnR |", "|---|" + "---|" * 10]
    qa = ["| Variant | accuracy (%) |", "|---|---|"]
    for name, runs in results.items():
        if name.startswith("qa/"):
            qa.append(f"| {name} | {mean_std([r['accuracy'] for r in runs])} |")
            continue
        cells = [mean_std([metric(r, d, k) for r in runs]) for d in ("t2v", "v2t")
                 for k in RANK_KEYS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + "\n".join(qa) + "\n"


def main() -> None:
    args = parse_args()
    if args.quick:
        args.preset, args.seeds, args.epochs, args.data_set = "tiny", [0], 2, []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root = ensure_data(args, out)
    # frozen_text=lazy: as the recorded tables ran (the cpu configs default to precompute
    # since issue 16)
    common = [f"data.root={root}", f"trainer.max_epochs={args.epochs}",
              "data.select_split=null", "trainer.progress_bar=false", "model.frozen_text=lazy"]
    if args.preset == "tiny":
        common += ["model.video_dim=32"]
    results: dict[str, list[dict[str, Any]]] = {}
    timings: dict[str, list[float]] = {}
    for name, (config, extra) in VARIANTS.items():
        if args.only and not any(name.startswith(p) for p in args.only):
            continue
        for seed in args.seeds:
            run_dir = out / "runs" / f"{name.replace('/', '_').replace(' ', '_')}_s{seed}"
            metrics, seconds = run_one(config, [*common, f"seed={seed}", *extra,
                                                *args.overrides], run_dir)
            results.setdefault(name, []).append(metrics)
            timings.setdefault(name, []).append(seconds)
            print(f"{name} seed {seed}: {seconds:.0f} s", flush=True)
            write_results(out, args, results, timings)  # partial tables survive interruptions
    print(write_results(out, args, results, timings))


def write_results(out: Path, args: argparse.Namespace, results: dict[str, list[dict[str, Any]]],
                  timings: dict[str, list[float]]) -> str:
    """Write results.json and results.md; return the markdown."""
    header = (f"SynthVL preset {args.preset} {' '.join(args.data_set)}, data seed "
              f"{args.data_seed}, hard_negative_fraction {args.hard_negative_fraction}; training "
              f"seeds {args.seeds}; {args.epochs} epochs; last epoch scored on test.\n\n")
    (out / "results.json").write_text(json.dumps(
        {"args": vars(args), "results": results, "seconds": timings}, indent=1, default=float))
    text = header + table(results)
    (out / "results.md").write_text(text)
    return text


if __name__ == "__main__":
    main()
