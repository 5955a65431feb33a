"""A tiny grounding model and fake data for the engine tests (not a test module itself).

Each fake video has T clips of D features; the clips inside a query's window carry the
one-hot code of the query's event word, so a bag-of-words x clip bilinear scorer can learn it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from vidlang.data.features.spec import FeatureSpec
from vidlang.data.records import GroundingRecord
from vidlang.models.base import TrainState, VidlangModel
from vidlang.registry import MODELS

EVENTS = ("jumps", "sits", "waves", "runs")


@dataclass
class ToyConfig:
    feat_dim: int = 8
    hidden: int = 16
    vocab: int = 64
    dropout: float = 0.1
    top_k: int = 5


@MODELS.register("engine_toy")
class ToyGrounder(VidlangModel):
    """Per-clip relevance = <W feat_t, mean word embedding>; windows = best contiguous runs."""

    task = "grounding"
    config_class = ToyConfig

    def __init__(self, cfg: ToyConfig) -> None:
        super().__init__(cfg)
        self.clip = nn.Linear(cfg.feat_dim, cfg.hidden)
        self.words = nn.Embedding(cfg.vocab, cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)
        self.epochs_seen: list[int] = []

    def _text(self, queries: list[str]) -> torch.Tensor:
        ids = [[zlib.crc32(w.encode()) % self.cfg.vocab for w in q.lower().split()] for q in queries]
        return torch.stack([self.words(torch.tensor(i)).mean(0) for i in ids])

    def _scores(self, batch: dict[str, Any]) -> torch.Tensor:
        clips = self.drop(self.clip(batch["feats"]))[batch["query_video"]]  # [Q, T, H]
        return torch.einsum("qth,qh->qt", clips, self._text(batch["queries"]))

    def on_train_epoch_start(self, state: TrainState) -> None:
        self.epochs_seen.append(state.epoch)

    def prepare(self, train_records) -> None:
        self.prepared_with = [r.qid for r in train_records]

    def training_losses(self, batch: dict[str, Any], state: TrainState) -> dict[str, torch.Tensor]:
        logits = self._scores(batch)
        t = logits.shape[1]
        dur = batch["durations"][batch["query_video"]]
        centers = (torch.arange(t) + 0.5) / t * dur[:, None]
        w = batch["windows"]
        target = ((centers >= w[:, :1]) & (centers <= w[:, 1:])).float()
        bce = nn.functional.binary_cross_entropy_with_logits(logits, target)
        reg = 1e-4 * sum((p**2).sum() for p in self.parameters())
        return {"loss": bce + reg, "bce": bce, "reg": reg}

    @torch.no_grad()
    def predict(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        probs = torch.sigmoid(self._scores(batch))
        out = []
        for q, qid in enumerate(batch["qids"]):
            row = int(batch["query_video"][q])
            t = int(batch["feat_mask"][row].sum())
            dur = float(batch["durations"][row])
            p = probs[q, :t]
            cands = [(float((p[i:j + 1] - 0.5).sum()), i, j) for i in range(t) for j in range(i, t)]
            cands.sort(reverse=True)
            out.append({"qid": qid, "pred_relevant_windows": [
                [i * dur / t, (j + 1) * dur / t, s] for s, i, j in cands[: self.cfg.top_k]]})
        return out

    def feature_spec(self) -> FeatureSpec:
        return FeatureSpec()


def fake_grounding_data(n_videos: int = 12, clips: int = 12, dim: int = 8, queries: int = 2,
                        seed: int = 0, split: str = "train") -> tuple[list[GroundingRecord], dict[str, np.ndarray]]:
    """Records and features where each query's window holds its event's one-hot code."""
    rng = np.random.default_rng(seed)
    records, feats = [], {}
    for v in range(n_videos):
        vid = f"{split}_v{v}"
        duration = float(clips)  # 1 s per clip
        x = rng.normal(0, 0.3, size=(clips, dim)).astype(np.float32)
        for q in range(queries):
            event = int(rng.integers(len(EVENTS)))
            s = int(rng.integers(0, clips - 3))
            e = int(rng.integers(s + 2, clips))
            x[s:e, event] += 2.0
            records.append(GroundingRecord(qid=f"{vid}_q{q}", video_id=vid, duration=duration,
                                           query=f"a person {EVENTS[event]}", windows=((float(s), float(e)),),
                                           split=split))
        feats[vid] = x
    return records, feats


def write_fake_dataset(root, n_train: int = 9, n_val: int = 4, n_test: int = 4) -> tuple[str, str]:
    """Fake data on disk in the catalog's ``qvhighlights`` layout + an HDF5 feature store.

    Returns (annotation root, feature file).
    """
    from pathlib import Path

    import h5py

    from vidlang.data.records import write_grounding_jsonl

    root = Path(root)
    (root / "qvhighlights").mkdir(parents=True, exist_ok=True)
    files = {"train": "highlight_train_release.jsonl", "val": "highlight_val_release.jsonl",
             "test": "highlight_test_with_gt.jsonl"}
    feats_path = root / "features.h5"
    with h5py.File(feats_path, "w") as h5:
        for seed, (split, n) in enumerate((("train", n_train), ("val", n_val), ("test", n_test))):
            records, feats = fake_grounding_data(n_videos=n, seed=seed, split=split)
            write_grounding_jsonl(records, root / "qvhighlights" / files[split])
            for vid, x in feats.items():
                h5.create_dataset(vid, data=x)
    return str(root), str(feats_path)
