"""Where a training step's time goes, for the three CPU configs (issue 16, second half).

For ``mmn/cpu`` (grounding), ``retrieval/synthvl_cpu`` and ``tempclr/synthvl_cpu`` on random
256-d features at 2 clips/s written to a real HDF5 file (full size: Charades-STA's 5,336
videos / 12,404 queries, videos 12-48 s), the script trains with the configs' own pipelines,
models, optimisers and grad clipping in a plain loop that times each phase of every step:

    data       HDF5 reads + resampling / item building + collate (``next(loader)``)
    text       the model's text encoding (frozen-text cache look-ups, encoder calls on misses)
    forward    the rest of ``training_losses``
    backward   ``loss.backward()``
    optimiser  grad clip + ``step`` + ``zero_grad``

The retrieval and TempCLR loaders read their split into the pre-padded feature bank when it is
built (before epoch 1; printed as the train loader's set-up time; ``+nobank`` rows pad from the
memo per step instead, ``data.feature_bank=false``).

It runs two epochs (epoch 1 starts with an empty text cache, epoch 2 is the steady state), then
the model-only time: forward + backward + optimiser over as many batches of epoch 3, pre-built
untimed, in the same run. Printed: ms per step and share of the step per phase, the data + text share against the
15 % target (judged on epoch 2; ``--check`` turns a miss into exit status 1), and epoch time /
model-only time. Seed 0 everywhere. The dual-encoder cpu configs default to
``model.frozen_text: precompute`` (eval-mode text vectors computed before epoch 1); ``+lazy``
rows run them with ``model.frozen_text=lazy`` (the encoder in training mode inside the step, as
before; see docs/engine.md). ``mmn/cpu`` and the ``+lazy`` rows keep the arithmetic of the code
before issue 16 (``--fingerprint`` compares two versions).

Like the engine, it first applies :func:`vidlang.ops.memory.retain_freed_memory` (glibc keeps
freed blocks for the next step instead of returning them to the OS); ``--no-retain`` leaves
malloc as it is, to measure what that saves.

    python benchmarks/bench_step.py            # Charades-STA size (takes a while on 2 cores)
    python benchmarks/bench_step.py --quick    # 400 videos (for `make bench`)
    python benchmarks/bench_step.py --configs mmn/cpu --videos 1000
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

TARGET_SHARE = 0.15
DIM, RATE = 256, 2.0  # feature width, clips per second
FULL_VIDEOS, FULL_QUERIES = 5_336, 12_404  # Charades-STA train + test
# "+lazy": the same config with model.frozen_text=lazy (the frozen encoder runs in training
# mode inside the step, the cpu configs' default before issue 16); "+precompute" forces the
# (now default) eval-mode precompute; "+workers": one DataLoader worker; "+nobank": batches
# padded from the memo's ragged tensors per step (data.feature_bank=false, as before issue 16)
CONFIGS = ("mmn/cpu", "retrieval/synthvl_cpu", "retrieval/synthvl_cpu+lazy",
           "tempclr/synthvl_cpu", "tempclr/synthvl_cpu+lazy")
VARIANTS = {"precompute": {"model": {"frozen_text": "precompute"}},
            "lazy": {"model": {"frozen_text": "lazy"}},
            "workers": {"data": {"num_workers": 1}},
            "nobank": {"data": {"feature_bank": False}}}
PHASES = ("data", "text", "forward", "backward", "optimiser")
DATA_PARTS = ("hdf5", "collate")  # sub-phases of data (the rest: resampling / item building)

_SUBJECTS = ("a person", "the man", "a woman", "someone", "the child", "a cook", "the player")
_VERBS = ("opens", "closes", "holds", "puts down", "picks up", "looks at", "washes", "throws",
          "cuts", "pours", "turns on", "sits on", "walks to", "takes", "eats", "drinks")
_OBJECTS = ("the door", "a cup", "the laptop", "a towel", "the box", "some food", "a book",
            "the window", "a phone", "the table", "a bag", "the light", "a pillow", "the sink")
_TAILS = ("", " quickly", " slowly", " again", " in the kitchen", " then smiles",
          " while laughing", " near the bed", " for a while", " at the end")


@dataclass
class Video:
    video_id: str
    duration: float
    sentences: list[str]
    windows: list[tuple[float, float]]


def make_videos(n_videos: int, n_queries: int, seed: int = 0) -> list[Video]:
    """Videos of 12-48 s with 2+ queries each (``n_queries`` in all), non-overlapping windows
    in time order (so every video also forms a TempCLR sequence)."""
    rng = np.random.default_rng(seed)
    counts = np.full(n_videos, n_queries // n_videos)
    counts[rng.permutation(n_videos)[: n_queries - int(counts.sum())]] += 1
    videos = []
    for v, k in enumerate(counts):
        duration = float(np.round(rng.uniform(12, 48), 2))
        cuts = np.sort(rng.uniform(0, duration, 2 * int(k)))
        windows = [(float(cuts[2 * i]), float(max(cuts[2 * i + 1], cuts[2 * i] + 0.5)))
                   for i in range(int(k))]
        sentences = [f"{_SUBJECTS[rng.integers(len(_SUBJECTS))]} {_VERBS[rng.integers(len(_VERBS))]} "
                     f"{_OBJECTS[rng.integers(len(_OBJECTS))]}{_TAILS[rng.integers(len(_TAILS))]}"
                     for _ in range(int(k))]
        videos.append(Video(f"vid{v:05d}", duration, sentences, windows))
    return videos


def write_features(path: Path, videos: list[Video], seed: int = 0) -> None:
    """One [round(2 * duration), 256] float32 dataset per video."""
    import h5py

    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as h5:
        for v in videos:
            rows = max(1, int(round(v.duration * RATE)))
            h5.create_dataset(v.video_id, data=rng.standard_normal((rows, DIM), dtype=np.float32))


def build(name: str, videos: list[Video], features: Path, root: Path,
          overrides: dict[str, Any] | None = None) -> tuple[Any, Any, Any]:
    """(config, model, pipeline) of config ``name`` on the synthetic videos (``overrides``:
    extra config keys, e.g. ``{"data": {"feature_cache_mb": 0}}``)."""
    from omegaconf import OmegaConf

    from vidlang.data.records import GroundingRecord, Paragraph
    from vidlang.engine.checkpoint import build_model
    from vidlang.engine.config import build_config, load_raw_config
    from vidlang.engine.pipelines.alignment import AlignmentPipeline
    from vidlang.engine.pipelines.grounding import GroundingPipeline
    from vidlang.engine.pipelines.retrieval import RetrievalEntry, RetrievalPipeline

    name, *variants = name.split("+")
    width = {"input_dim": DIM} if name.startswith("mmn") else {"video_dim": DIM}
    cfg = build_config(OmegaConf.merge(load_raw_config(name), *(VARIANTS[v] for v in variants), {
        "model": width,
        "data": {"root": str(root), "features": str(features), "select_split": None},
        "trainer": {"accelerator": "cpu", "progress_bar": False}}, overrides or {}))
    torch.manual_seed(cfg.seed)
    model = build_model(cfg)
    spec = model.feature_spec()
    if model.task == "grounding":
        recs = [GroundingRecord(f"{v.video_id}_{i}", v.video_id, v.duration, s, (w,))
                for v in videos for i, (s, w) in enumerate(zip(v.sentences, v.windows))]
        pipe: Any = GroundingPipeline(cfg, spec, records={cfg.data.train_split: recs})
    elif model.task == "retrieval":
        entries = [RetrievalEntry(v.video_id, v.duration, tuple(v.sentences)) for v in videos]
        pipe = RetrievalPipeline(cfg, spec, entries={cfg.data.train_split: entries})
    else:
        paras = [Paragraph(v.video_id, v.duration, tuple(v.sentences), tuple(v.windows))
                 for v in videos]
        pipe = AlignmentPipeline(cfg, spec, paragraphs={cfg.data.train_split: paras})
    return cfg, model, pipe


class Clock:
    """Seconds per named phase, summed."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.total[name] += time.perf_counter() - start

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self(name):
                return fn(*args, **kwargs)
        return timed


def _text_hooks(model: Any) -> list[tuple[Any, str]]:
    """(object, method name) pairs that turn strings into encoder outputs, cache included:
    MMN's ``encode_text``; the dual encoder's shared cache (``sentences`` / ``encode``) where
    the model has one (``frozen_text_cache``), else its ``_encode_raw_text`` (older code)."""
    if model.task == "grounding":
        return [(model, "encode_text")]
    if hasattr(model, "frozen_text_cache") and not model.cfg.train_text_encoder:
        cache = model.frozen_text_cache()
        return [(cache, "sentences"), (cache, "encode")]
    return [(model, "_encode_raw_text")]


@contextlib.contextmanager
def instrumented(model: Any, loader: Any, clock: Clock) -> Iterator[None]:
    """Time HDF5 reads, collate and text encoding for the duration of the block."""
    from vidlang.engine.pipelines.features import FeatureDataset

    raw = FeatureDataset.raw_features
    collate = loader.collate_fn
    hooks = _text_hooks(model)
    FeatureDataset.raw_features = clock.wrap("hdf5", raw)  # type: ignore[method-assign]
    loader.collate_fn = clock.wrap("collate", collate)
    for obj, name in hooks:
        setattr(obj, name, clock.wrap("text", getattr(obj, name)))
    try:
        yield
    finally:
        FeatureDataset.raw_features = raw  # type: ignore[method-assign]
        loader.collate_fn = collate
        for obj, name in hooks:
            delattr(obj, name)


def train_step(model: Any, opt: Any, cfg: Any, batch: dict[str, Any], state: Any,
               clock: Clock) -> float:
    """One optimiser step as the engine does it (losses, backward, norm clip, step)."""
    with clock("model"):
        losses = model.training_losses(batch, state)
    with clock("backward"):
        losses["loss"].backward()
    with clock("optimiser"):
        if cfg.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(
                [p for g in opt.param_groups for p in g["params"]], cfg.optim.grad_clip)
        opt.step()
        opt.zero_grad()
    return float(losses["loss"].detach())


def phases(clock: Clock, steps: int) -> dict[str, float]:
    """Seconds per step of each phase (forward = losses minus text)."""
    t = clock.total
    out = {"data": t["data"], "text": t["text"], "forward": t["model"] - t["text"],
           "backward": t["backward"], "optimiser": t["optimiser"],
           "hdf5": t["hdf5"], "collate": t["collate"]}
    return {k: v / steps for k, v in out.items()}


def run_config(name: str, videos: list[Video], features: Path, root: Path,
               max_steps: int | None) -> dict[str, Any]:
    from vidlang.engine.optim import build_optimizer
    from vidlang.engine.run import prepare_model
    from vidlang.models.base import TrainState

    cfg, model, pipe = build(name, videos, features, root)
    start = time.perf_counter()
    prepare_model(model, pipe)  # as the engine does before training (precompute: text)
    prepare_s = time.perf_counter() - start
    opt = build_optimizer(model.param_groups(cfg.optim.lr), cfg.optim)
    opt.zero_grad()
    model.train()
    start = time.perf_counter()
    loader = pipe.train_loader()  # reads the split into the feature bank when it fits
    loader_s = time.perf_counter() - start
    step, epochs = 0, []
    for epoch in (1, 2):
        loader.sampler.set_epoch(epoch - 1)
        model.on_train_epoch_start(TrainState(epoch=epoch, step=step, max_epochs=2))
        clock = Clock()
        n = 0
        start = time.perf_counter()
        with instrumented(model, loader, clock):
            it = iter(loader)
            while max_steps is None or n < max_steps:
                with clock("data"):
                    batch = next(it, None)
                if batch is None:
                    break
                train_step(model, opt, cfg, batch,
                           TrainState(epoch=epoch, step=step, max_epochs=2), clock)
                step, n = step + 1, n + 1
        epochs.append({"wall": time.perf_counter() - start, "steps": n, **phases(clock, n)})
    # the model-only pass's batches: the next epoch's, built untimed. (Keeping epoch 2's own
    # batches alive would make each of its batches land in never-used memory, whose first touch
    # is slow on a VM, so epoch 2's data phase would measure that instead of training.)
    loader.sampler.set_epoch(2)
    kept: list[Any] = []
    for batch in loader:
        kept.append(batch)
        if len(kept) == epochs[-1]["steps"]:
            break
    clock = Clock()
    start = time.perf_counter()
    with instrumented(model, loader, clock):
        for batch in kept:
            train_step(model, opt, cfg, batch, TrainState(epoch=2, step=step, max_epochs=2), clock)
            step += 1
    model_only = {"wall": time.perf_counter() - start, "steps": len(kept), **phases(clock, len(kept))}
    return {"name": name, "epochs": epochs, "model_only": model_only,
            "batch_size": cfg.data.batch_size, "prepare": prepare_s, "loader": loader_s}


def fingerprint(name: str, videos: list[Video], features: Path, root: Path, steps: int,
                overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Losses of every step and a hash of the final weights after 2 epochs of at most
    ``steps`` steps each (the check that a fast path leaves the arithmetic unchanged)."""
    import hashlib

    from vidlang.engine.optim import build_optimizer
    from vidlang.engine.run import prepare_model
    from vidlang.models.base import TrainState

    cfg, model, pipe = build(name, videos, features, root, overrides)
    prepare_model(model, pipe)
    opt = build_optimizer(model.param_groups(cfg.optim.lr), cfg.optim)
    opt.zero_grad()
    model.train()
    loader = pipe.train_loader()
    losses: list[str] = []
    step = 0
    for epoch in (1, 2):
        loader.sampler.set_epoch(epoch - 1)
        model.on_train_epoch_start(TrainState(epoch=epoch, step=step, max_epochs=2))
        for n, batch in enumerate(loader):
            if n >= steps:
                break
            losses.append(repr(train_step(model, opt, cfg, batch,
                                          TrainState(epoch=epoch, step=step, max_epochs=2), Clock())))
            step += 1
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return {"config": name, "losses": losses, "weights_sha256": digest.hexdigest()}


def report(res: dict[str, Any]) -> bool:
    """Print one config's table; True when epoch 2's data + text share meets the target."""
    print(f"\n== {res['name']}  (batch {res['batch_size']}, "
          f"{res['epochs'][0]['steps']} steps per epoch)")
    head = "".join(f"{p:>17}" for p in PHASES)
    print(f"{'':22}{head}{'step ms':>10}{'data+text':>11}")
    ok = True
    for label, row in (("epoch 1 (cold cache)", res["epochs"][0]),
                       ("epoch 2", res["epochs"][1]), ("model only", res["model_only"])):
        step = sum(row[p] for p in PHASES)
        cells = "".join(f"{row[p] * 1000:9.1f} ({row[p] / step:5.1%})" for p in PHASES)
        share = (row["data"] + row["text"]) / step
        print(f"{label:22}{cells}{step * 1000:10.1f}{share:11.1%}")
        if label == "epoch 2":
            ok = share <= TARGET_SHARE
            data = row["data"]
            rest = data - row["hdf5"] - row["collate"]
            print(f"{'':22}data = hdf5 {row['hdf5'] * 1000:.1f} + resample/items "
                  f"{rest * 1000:.1f} + collate {row['collate'] * 1000:.1f} ms/step")
    e1, e2, mo = res["epochs"][0], res["epochs"][1], res["model_only"]
    if res["prepare"] >= 0.05:
        print(f"before epoch 1 (model.prepare, e.g. text precompute): {res['prepare']:.1f} s")
    if res["loader"] >= 0.05:
        print(f"before epoch 1 (train loader: features read into the bank): {res['loader']:.1f} s")
    print(f"epoch time: epoch 1 {e1['wall']:.1f} s, epoch 2 {e2['wall']:.1f} s; model only "
          f"{mo['wall']:.1f} s -> epoch 2 / model only = {e2['wall'] / mo['wall']:.2f}x, "
          f"epoch 1 / model only = {e1['wall'] / mo['wall']:.2f}x")
    print(f"data + text share of an epoch-2 step: {(e2['data'] + e2['text']) / sum(e2[p] for p in PHASES):.1%} "
          f"(target <= {TARGET_SHARE:.0%}): {'ok' if ok else 'MISSED'}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="400 videos, 60 steps per epoch at most")
    ap.add_argument("--videos", type=int, default=None, help="number of videos (default 5,336)")
    ap.add_argument("--max-steps", type=int, default=None, help="steps per epoch at most")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS),
                    help="config names, with +lazy / +precompute / +workers / +nobank for variants")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 when a config misses the target (timings on a shared machine "
                         "are noisy, so `make bench` only prints)")
    ap.add_argument("--fingerprint", metavar="JSON", default=None,
                    help="only write losses + weight hashes of 2 short epochs per config (160 "
                         "videos) to JSON, to compare two versions of the code (the code before "
                         "issue 16's precompute default: compare its retrieval/tempclr rows with "
                         "this version's +lazy rows)")
    ap.add_argument("--no-retain", action="store_true",
                    help="leave glibc's malloc as it is (the engine's trainer.retain_freed_memory="
                         "false), to measure what vidlang.ops.memory saves")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if not args.no_retain:
        from vidlang.ops.memory import retain_freed_memory

        # as the engine does before training (trainer.retain_freed_memory, default true)
        print(f"retain_freed_memory: {'applied' if retain_freed_memory() else 'not available here'}")
    if args.fingerprint:
        import json

        with tempfile.TemporaryDirectory() as tmp:
            videos = make_videos(160, 372)
            write_features(Path(tmp) / "features.h5", videos)
            prints = [fingerprint(name, videos, Path(tmp) / "features.h5", Path(tmp), 3)
                      for name in args.configs if "+workers" not in name]
        Path(args.fingerprint).write_text(json.dumps(prints, indent=1), encoding="utf-8")
        print(json.dumps(prints, indent=1))
        return 0
    n_videos = args.videos or (400 if args.quick else FULL_VIDEOS)
    n_queries = round(n_videos * FULL_QUERIES / FULL_VIDEOS)
    max_steps = args.max_steps or (60 if args.quick else None)
    print(f"{n_videos} videos, {n_queries} queries, {DIM}-d features at {RATE:g} clips/s; "
          f"torch threads {torch.get_num_threads()}; load average {os.getloadavg()[0]:.2f}")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        videos = make_videos(n_videos, n_queries)
        features = Path(tmp) / "features.h5"
        start = time.perf_counter()
        write_features(features, videos)
        print(f"wrote {features.stat().st_size / 2**20:.0f} MiB of features in "
              f"{time.perf_counter() - start:.1f} s")
        for name in args.configs:
            ok &= report(run_config(name, videos, features, Path(tmp), max_steps))
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
