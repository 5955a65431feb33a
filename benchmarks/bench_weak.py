"""Training / inference throughput and peak memory of CPL and CCR at the Charades-STA and
ActivityNet configs (vocabularies of 1,112 and 8,001 words), as ratios to CPL-Charades
measured in the same run.

    .venv/bin/python benchmarks/bench_weak.py --quick     # a few minutes on a laptop CPU
    .venv/bin/python benchmarks/bench_weak.py             # paper batch 32, 3 training steps

Throughput is measured in CPU time of the (single-threaded) process, so it stays meaningful
on a machine shared with other jobs. Each configuration runs in a fresh subprocess, so its peak
resident memory (ru_maxrss) is its own; the figure includes the Python/torch baseline of the process (reported as ``base RSS``).
Inputs are random features and sentences over a synthetic vocabulary of the config's size
(no MiniLM / GloVe lookups), seeded, so two runs draw the same batches.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

CONFIGS: list[tuple[str, str, list[str]]] = [
    ("CPL Charades", "cpl/charades_sta", []),
    ("CCR Charades", "ccr/charades_sta", []),
    ("CCR Charades, no end cls", "ccr/charades_sta", ["model.end_classifier=false"]),
    ("CPL ActivityNet", "cpl/activitynet", []),
    ("CCR ActivityNet", "ccr/activitynet", []),
    ("CCR ActivityNet, no end cls", "ccr/activitynet", ["model.end_classifier=false"]),
]


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(config: str, overrides: list[str], batch: int, train_steps: int, threads: int) -> dict[str, Any]:
    """Build the model, run ``train_steps`` Adam steps and one inference batch; report figures."""
    import torch

    torch.set_num_threads(threads)
    base_rss = _rss_mib()
    from vidlang.engine.config import load_config
    from vidlang.models.base import TrainState
    from vidlang.registry import MODELS
    from vidlang.text.vocab import PAD, Vocabulary

    cfg = load_config(config, ["data.features=none.h5", *overrides]).model
    torch.manual_seed(0)
    model = MODELS.get("ccr" if "ccr" in config else "cpl")(cfg)
    vocab = Vocabulary([PAD, *(f"w{i}" for i in range(cfg.vocab_size))])
    model.set_vocabulary(vocab, torch.randn(len(vocab), cfg.word_dim), "random")
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(4, 11, (batch,), generator=gen)  # Charades-like 4-10 words
    queries = [" ".join(f"w{int(i)}" for i in torch.randint(0, cfg.vocab_size, (int(n),), generator=gen))
               for n in lengths]
    data = {"feats": torch.randn(batch, cfg.num_clips, cfg.frame_dim, generator=gen),
            "feat_mask": torch.ones(batch, cfg.num_clips, dtype=torch.bool),
            "durations": torch.full((batch,), 30.0), "queries": queries,
            "qids": [f"q{i}" for i in range(batch)], "query_video": torch.arange(batch)}
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    times = []
    for step in range(train_steps + 1):  # the first step warms up (allocations, Adam state)
        start = time.process_time()
        loss = model.training_losses(data, TrainState(epoch=1, step=step, max_epochs=30))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.process_time() - start)
    train_rss = _rss_mib()
    model.eval()
    start = time.process_time()
    model.predict(data)
    infer_s = time.process_time() - start
    timed = times[1:] or times
    return {"params_M": params / 1e6, "train_q_per_s": batch / (sum(timed) / len(timed)),
            "infer_q_per_s": batch / infer_s, "peak_rss_MiB": max(train_rss, _rss_mib()),
            "base_rss_MiB": base_rss, "adam_state_MiB": 2 * params * 4 / 2**20, "vocab": len(vocab)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="batch 4, 2 timed steps")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", nargs="*", default=None, help="row names to run (default: all)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.batch, args.steps = 4, 2
    if args.child:
        config, overrides = json.loads(args.child)
        print(json.dumps(measure(config, overrides, args.batch, args.steps, args.threads)))
        return
    rows = []
    for name, config, overrides in CONFIGS:
        if args.only and name not in args.only:
            continue
        cmd = [sys.executable, __file__, "--child", json.dumps([config, overrides]), "--batch", str(args.batch),
               "--steps", str(args.steps), "--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        rows.append((name, json.loads(out)))
        print(f"measured {name}", file=sys.stderr, flush=True)
    base = rows[0][1]
    print(f"batch {args.batch}, {args.steps} timed training step(s), {args.threads} thread(s), CPU time; "
          f"ratios against {rows[0][0]} of this run")
    print("| config | V | params (M) | train q/s (x) | infer q/s (x) | peak RSS MiB (x) | Adam state MiB |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['vocab']} | {r['params_M']:.1f} | {r['train_q_per_s']:.2f} "
              f"({r['train_q_per_s'] / base['train_q_per_s']:.2f}) | {r['infer_q_per_s']:.1f} "
              f"({r['infer_q_per_s'] / base['infer_q_per_s']:.2f}) | {r['peak_rss_MiB']:.0f} "
              f"({r['peak_rss_MiB'] / base['peak_rss_MiB']:.2f}) | {r['adam_state_MiB']:.0f} |")
    print(f"base RSS of a process after importing torch: {base['base_rss_MiB']:.0f} MiB")


if __name__ == "__main__":
    main()
