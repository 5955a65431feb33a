"""Engine overhead: seconds per training step through ``vidlang.engine.train`` (Lightning,
logging, checkpoints, seeded sampler) vs a plain PyTorch loop over the same batches, and the
grounding loader's throughput reading + resampling from an HDF5 store.

The per-step figure is marginal: (time of an E-epoch run - time of a 1-epoch run) / the extra
steps, so the fixed start-up cost (Trainer, loggers, final model export, curves.png) is reported
apart. Target: the engine adds at most 15 ms per step over the plain loop (2-core CPU), i.e. it
is negligible next to any real model's step. Inputs are random; seed 0.

    python benchmarks/bench_engine.py           # 64 videos, 5 epochs
    python benchmarks/bench_engine.py --quick   # 32 videos, 5 epochs (for `make bench`)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vidlang.data.features.spec import FeatureSpec
from vidlang.data.records import GroundingRecord, write_grounding_jsonl
from vidlang.models.base import TrainState, VidlangModel
from vidlang.registry import MODELS

MAX_OVERHEAD_MS = 15.0
CLIPS, DIM = 128, 256


@dataclass
class BenchConfig:
    dim: int = DIM
    clips: int = 32


@MODELS.register("bench_engine_mlp")
class BenchModel(VidlangModel):
    """A small per-clip MLP scorer: cheap enough that engine overhead is visible."""

    task = "grounding"
    config_class = BenchConfig

    def __init__(self, cfg: BenchConfig) -> None:
        super().__init__(cfg)
        self.net = nn.Sequential(nn.Linear(cfg.dim, 64), nn.ReLU(), nn.Linear(64, 1))

    def feature_spec(self) -> FeatureSpec:
        return FeatureSpec(mode="segment_mean", num_rows=self.cfg.clips, l2_normalise=True)

    def training_losses(self, batch: dict[str, Any], state: TrainState) -> dict[str, torch.Tensor]:
        logits = self.net(batch["feats"]).squeeze(-1)[batch["query_video"]]
        t = logits.shape[1]
        centers = (torch.arange(t) + 0.5) / t * batch["durations"][batch["query_video"], None]
        w = batch["windows"]
        target = ((centers >= w[:, :1]) & (centers <= w[:, 1:])).float()
        loss = nn.functional.binary_cross_entropy_with_logits(logits, target)
        return {"loss": loss}

    @torch.no_grad()
    def predict(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"qid": q, "pred_relevant_windows": [[0.0, 1.0, 1.0]]} for q in batch["qids"]]


def write_data(root: Path, videos: int) -> tuple[str, str]:
    import h5py

    rng = np.random.default_rng(0)
    (root / "qvhighlights").mkdir(parents=True)
    records = []
    with h5py.File(root / "f.h5", "w") as h5:
        for v in range(videos):
            h5.create_dataset(f"v{v}", data=rng.normal(size=(CLIPS, DIM)).astype(np.float32))
            for q in range(3):
                s = float(rng.uniform(0, 80))
                records.append(GroundingRecord(f"v{v}_{q}", f"v{v}", 128.0, "a query", ((s, s + 20.0),)))
    write_grounding_jsonl(records, root / "qvhighlights" / "highlight_train_release.jsonl")
    return str(root), str(root / "f.h5")


def engine_seconds(cfg: Any, pipe: Any, out: Path) -> float:
    from vidlang.engine.run import train

    start = time.perf_counter()
    train(cfg, out, pipeline=pipe)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    videos, epochs = (32, 5) if args.quick else (64, 5)
    torch.set_num_threads(1)
    from omegaconf import OmegaConf

    from vidlang.engine.config import build_config, load_raw_config
    from vidlang.engine.pipelines.grounding import GroundingPipeline

    with tempfile.TemporaryDirectory() as tmp:
        root, feats = write_data(Path(tmp) / "data", videos)

        def config(n_epochs: int) -> Any:
            return build_config(OmegaConf.merge(load_raw_config("dataset/qvhighlights"), {
                "model": {"name": "bench_engine_mlp"},
                "data": {"root": root, "features": feats, "batch_size": 4, "select_split": None},
                "trainer": {"max_epochs": n_epochs, "accelerator": "cpu", "progress_bar": False},
                "optim": {"lr": 1e-3}}))

        cfg = config(epochs)
        pipe = GroundingPipeline(cfg, BenchModel(cfg.model).feature_spec())
        start = time.perf_counter()
        batches = [b for _ in range(epochs - 1) for b in pipe.train_loader()]
        load_s = time.perf_counter() - start
        steps = len(batches)  # the extra steps of the long run over the 1-epoch run

        torch.manual_seed(0)
        plain = BenchModel(cfg.model)
        opt = torch.optim.AdamW(plain.parameters(), lr=1e-3)
        start = time.perf_counter()
        for b in batches:
            opt.zero_grad()
            plain.training_losses(b, TrainState())["loss"].backward()
            opt.step()
        plain_step = (time.perf_counter() - start + load_s) / steps  # the engine loads too

        short = engine_seconds(config(1), pipe, Path(tmp) / "short")
        long = engine_seconds(cfg, pipe, Path(tmp) / "long")
    engine_step = (long - short) / steps
    fixed = short - engine_step * steps / (epochs - 1)
    overhead_ms = (engine_step - plain_step) * 1000
    print(f"loader: {videos * (epochs - 1)} videos ({CLIPS}x{DIM} HDF5 -> 32 segment means) in "
          f"{load_s:.2f} s = {videos * (epochs - 1) / load_s:.0f} videos/s")
    print(f"plain loop (incl. loading): {plain_step * 1000:.1f} ms/step")
    print(f"engine, marginal per step ({steps} extra steps): {engine_step * 1000:.1f} ms/step; "
          f"fixed start-up + end-of-run cost: {fixed:.2f} s")
    print(f"engine overhead: {overhead_ms:.1f} ms/step (target <= {MAX_OVERHEAD_MS} ms)")
    return 0 if overhead_ms <= MAX_OVERHEAD_MS else 1


if __name__ == "__main__":
    sys.exit(main())
