"""MMN throughput: efficient masked conv stack vs the straightforward one, in the same run.

For the paper-size Charades config (N 16, 512 channels, 8 layers of 5x5, first layer padded by
16) and the `cpu` config, prints training throughput (videos/s, forward + backward + AdamW
step), scoring throughput (queries/s, eval-mode forward that produces every cell's score) and
peak resident memory of each path, then their ratios. Each measurement runs in a fresh process
so peak memory is its own. Before timing, the two paths are checked to give the same outputs
(max |diff| of the IoU logits, the ranking scores and the loss, training mode, same weights).
"Efficient" is the model as configured (``model.conv_algorithm: auto``: Winograd F(4x4, 5x5)
on the mask's support for the 512-wide paper stack, the support GEMM for the 64-wide `cpu`
stack); the conv-stack line also times the other algorithm on the same weights.

The text encoder is the bundled MiniLM, frozen (the paper freezes DistilBERT for the first
epochs), so both paths pay the same text cost. Inputs are random; seed 0. On a shared machine
the CPU-time ratio (work done) is steadier than the wall-clock one; both are printed.

    python benchmarks/bench_mmn.py            # full: batch 8 videos x 3 queries, 4 steps
    python benchmarks/bench_mmn.py --quick    # batch 2, 2 steps (for `make bench`)
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

CONFIGS = {"paper": "model/mmn", "cpu": "model/mmn_cpu"}


def build(config: str) -> Any:
    """An MMN of the named model config with the offline MiniLM (paper: DistilBERT not here)."""
    from vidlang.engine.config import load_raw_config, validate_section
    from vidlang.models.mmn import MMN, MMNConfig

    raw = load_raw_config(CONFIGS[config], ["model.text.name=minilm", "model.text.path=null"])
    fields = {k: v for k, v in raw.model.items() if k != "name"}
    return MMN(validate_section(MMNConfig, fields, "model"))


def make_batch(model: Any, videos: int, queries_per_video: int, seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    q = videos * queries_per_video
    durations = 20 + 20 * torch.rand(videos, generator=g)
    qv = torch.arange(videos).repeat_interleave(queries_per_video)
    start = torch.rand(q, generator=g) * 0.6 * durations[qv]
    length = (0.1 + 0.3 * torch.rand(q, generator=g)) * durations[qv]
    return {
        "video_ids": [f"v{i}" for i in range(videos)],
        "feats": torch.randn(videos, cfg.num_pre_clips, cfg.input_dim, generator=g),
        "feat_mask": torch.ones(videos, cfg.num_pre_clips, dtype=torch.bool),
        "durations": durations,
        "queries": [f"a person does thing number {i} quickly" for i in range(q)],
        "qids": [f"q{i}" for i in range(q)],
        "query_video": qv,
        "windows": torch.stack([start, torch.minimum(start + length, durations[qv])], 1),
    }


def check_equal(config: str, videos: int) -> dict[str, float]:
    """Max |difference| between the efficient and the reference path (training mode)."""
    from _reference_mmn import use_reference_stack
    from vidlang.models.base import TrainState

    torch.manual_seed(0)
    fast = build(config)
    slow = copy.deepcopy(fast)
    use_reference_stack(slow)
    for model in (fast, slow):
        model.text_encoder.eval()  # no dropout: both paths must see the same sentence vectors
    batch = make_batch(fast, videos, 3, seed=1)
    with torch.no_grad():
        out_f, out_s = fast(batch), slow(batch)
        loss_f = fast.training_losses(batch, TrainState())["loss"]
        loss_s = slow.training_losses(batch, TrainState())["loss"]
    mask = fast.mask2d
    return {"iou_logits": float((out_f.iou_logits - out_s.iou_logits)[:, mask].abs().max()),
            "rank": float((out_f.rank - out_s.rank).abs().max()),
            "loss": float((loss_f - loss_s).abs())}


def stack_seconds_per_video(config: str, videos: int, repeats: int) -> dict[str, float]:
    """CPU seconds per video of forward + backward through the conv stack alone (training-mode
    BN): the model's stack (``conv_algorithm`` auto), each explicit algorithm, and the
    straightforward dense stack, alternating in one process on the same weights."""
    from _reference_mmn import reference_stack_forward
    from vidlang.models.blocks.masked_conv import MaskedConvStack

    model = build(config)
    stack = model.fusion.stack
    n = model.cfg.num_clips
    x = torch.randn(videos, model.cfg.featpool_hidden, n, n,
                    generator=torch.Generator().manual_seed(3)) * model.mask2d
    paths: dict[str, Any] = {f"efficient ({stack.algorithm})": stack}
    for algorithm in ("winograd", "support"):
        if algorithm != stack.algorithm and (algorithm != "winograd" or model.cfg.conv_kernel <= 5):
            other = MaskedConvStack(model.cfg.featpool_hidden, model.cfg.conv_hidden,
                                    model.cfg.conv_kernel, model.cfg.conv_layers, model.mask2d,
                                    model.cfg.batch_norm, algorithm)
            other.load_state_dict(stack.state_dict())
            paths[algorithm] = other
    paths["straightforward"] = lambda t: reference_stack_forward(stack, t)
    totals = dict.fromkeys(paths, 0.0)
    for rep in range(repeats + 1):
        for name, fn in paths.items():
            t0 = time.process_time()
            xx = x.clone().requires_grad_()
            fn(xx).square().mean().backward()
            if rep:  # the first round is a warm-up
                totals[name] += time.process_time() - t0
    return {name: total / repeats / videos for name, total in totals.items()}


def _reset_peak_rss() -> int:
    """Reset the kernel's peak-RSS counter (Linux) so the peak covers only what follows;
    returns the current RSS in kB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status_kb("VmRSS")


def _status_kb(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _peak_rss_kb() -> int:
    return _status_kb("VmHWM")


def _measure(config: str, reference: bool, videos: int, steps: int, threads: int,
             queue: Any) -> None:
    torch.set_num_threads(threads)
    from _reference_mmn import use_reference_stack
    from vidlang.models.base import TrainState

    torch.manual_seed(0)
    model = build(config)
    if reference:
        use_reference_stack(model)
    batch = make_batch(model, videos, 3, seed=2)
    state = TrainState(epoch=1)
    model.on_train_epoch_start(state)  # text encoder frozen, as in the paper's first epochs
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    base_rss = _reset_peak_rss()

    def train_step() -> None:
        opt.zero_grad(set_to_none=True)
        model.training_losses(batch, state)["loss"].backward()
        opt.step()

    model.train()
    train_step()  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        train_step()
    train_s, train_cpu = (time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps
    model.eval()
    with torch.no_grad():
        model(batch)
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            model(batch).rank.sum().item()
        infer_s, infer_cpu = (time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps
    peak = _peak_rss_kb()
    queue.put({"train_videos_s": videos / train_s, "infer_queries_s": 3 * videos / infer_s,
               "train_cpu_s_per_video": train_cpu / videos,
               "infer_cpu_s_per_query": infer_cpu / (3 * videos),
               "peak_rss_mb": peak / 1024, "rss_over_model_mb": (peak - base_rss) / 1024})


def measure(config: str, reference: bool, videos: int, steps: int, threads: int) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(config, reference, videos, steps, threads, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small batch and few steps")
    parser.add_argument("--videos", type=int, default=None, help="videos per batch (8 full, 2 quick)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (4 full, 2 quick)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args(argv)
    videos = args.videos or (2 if args.quick else 8)
    steps = args.steps or (2 if args.quick else 4)
    torch.set_num_threads(args.threads)
    print(f"bench_mmn: {videos} videos x 3 queries per batch, {steps} timed steps, "
          f"{args.threads} threads, seed 0")
    for config in args.configs:
        diff = check_equal(config, min(videos, 2))
        print(f"[{config}] efficient vs straightforward, max |diff|: "
              + ", ".join(f"{k} {v:.2e}" for k, v in diff.items())
              + ("  (OK <= 1e-4)" if max(diff.values()) <= 1e-4 else "  (MISMATCH > 1e-4)"))
        stack_s = stack_seconds_per_video(config, videos, steps)
        ref = stack_s["straightforward"]
        print(f"[{config}] conv stack alone, forward + backward, CPU-s/video: "
              + ", ".join(f"{k} {v:.3f}" + ("" if k == "straightforward" else f" ({ref / v:.2f}x)")
                          for k, v in stack_s.items()))
        fast = measure(config, False, videos, steps, args.threads)
        slow = measure(config, True, videos, steps, args.threads)
        for name, res in (("straightforward", slow), ("efficient", fast)):
            print(f"[{config}] {name:>15}: train {res['train_videos_s']:7.2f} videos/s "
                  f"({1 / res['train_videos_s']:.3f} s/video, "
                  f"{res['train_cpu_s_per_video']:.3f} CPU-s/video)  scoring "
                  f"{res['infer_queries_s']:8.1f} queries/s "
                  f"({res['infer_cpu_s_per_query'] * 1e3:.1f} CPU-ms/query)  peak RSS "
                  f"{res['peak_rss_mb']:6.0f} MB (+{res['rss_over_model_mb']:.0f} MB over the model)")
        print(f"[{config}] speed-up efficient vs straightforward: train "
              f"{fast['train_videos_s'] / slow['train_videos_s']:.2f}x wall, "
              f"{slow['train_cpu_s_per_video'] / fast['train_cpu_s_per_video']:.2f}x CPU time; "
              f"scoring {fast['infer_queries_s'] / slow['infer_queries_s']:.2f}x wall, "
              f"{slow['infer_cpu_s_per_query'] / fast['infer_cpu_s_per_query']:.2f}x CPU time; "
              f"peak-memory increment "
              f"{fast['rss_over_model_mb'] / max(slow['rss_over_model_mb'], 1e-9):.2f}x")


if __name__ == "__main__":
    main()
