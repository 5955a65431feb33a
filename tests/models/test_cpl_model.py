"""CPL/CCR models end to end on a tiny SynthVL: weak supervision (timestamps never read),
deterministic evaluation, checkpoint round trip, and a short training run whose loss falls."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from vidlang.data.records import GroundingRecord
from vidlang.engine.config import load_config
from vidlang.engine.pipelines.grounding import GroundingPipeline, collate_grounding
from vidlang.models.base import TrainState
from vidlang.registry import MODELS

TINY_MODEL = ["model.frame_dim=32", "model.num_clips=16", "model.num_props_clips=8", "model.hidden=32",
              "model.ffn_dim=64", "model.word_dim=32", "model.vocab_size=60", "model.heads=2"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    """Tiny models run fastest on one thread (and do not fight other jobs for cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vidlang.data.synthvl import generate

    root = tmp_path_factory.mktemp("synthvl_tiny")
    generate(root, preset="tiny", seed=0)
    return root


def _setup(name: str, root: Path, *extra: str) -> tuple[Any, GroundingPipeline]:
    cfg = load_config(name, [f"data.root={root}", "data.batch_size=16", *TINY_MODEL, *extra])
    torch.manual_seed(0)
    model = MODELS.get(cfg.model_name)(cfg.model)
    pipe = GroundingPipeline(cfg, model.feature_spec())
    model.prepare(pipe.records("train"))
    return model, pipe


class NoWindows(dict):
    """A batch that fails the test if anything reads the ground-truth windows."""

    def __getitem__(self, key: str) -> Any:
        if key == "windows":
            raise AssertionError("a weakly supervised model read batch['windows']")
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default


@pytest.mark.parametrize("name", ["cpl/cpu", "ccr/cpu"])
def test_garbage_timestamps_give_bit_identical_losses(name: str, tiny_root: Path) -> None:
    model, pipe = _setup(name, tiny_root)
    records = pipe.records("train")[:12]
    gen = torch.Generator().manual_seed(1)
    garbage = [dataclasses.replace(r, windows=tuple((float(a), float(b)) for a, b in torch.rand(1, 2, generator=gen) * -1e6))
               for r in records]
    ds = pipe.dataset("train", "query")
    items = [ds[i] for i in range(12)]
    garbage_items = [dataclasses.replace(it, records=[g]) for it, g in zip(items, garbage)]
    losses = []
    for its in (items, garbage_items):
        batch = collate_grounding(its)
        torch.manual_seed(5)
        model.train()
        out = model.training_losses(NoWindows(batch), TrainState(epoch=2, step=3, max_epochs=4))
        losses.append({k: v.detach() for k, v in out.items()})
    assert isinstance(garbage[0], GroundingRecord) and garbage[0].windows != records[0].windows
    assert losses[0].keys() == losses[1].keys()
    for key in losses[0]:
        assert torch.equal(losses[0][key], losses[1][key]), key


def test_evaluation_is_deterministic_per_query(tiny_root: Path) -> None:
    model, pipe = _setup("ccr/cpu", tiny_root)
    model.eval()
    batch = next(iter(pipe.eval_loader("test")))
    first = model.predict(NoWindows(batch))
    torch.manual_seed(123)  # the global RNG must not matter
    assert model.predict(batch) == first
    one = {k: batch[k] for k in ("feats", "feat_mask", "durations")}
    row = int(batch["query_video"][3])
    alone = {"feats": one["feats"][row: row + 1], "feat_mask": one["feat_mask"][row: row + 1],
             "durations": one["durations"][row: row + 1], "queries": [batch["queries"][3]],
             "qids": [batch["qids"][3]], "query_video": torch.tensor([0])}
    got = model.predict(alone)[0]["pred_relevant_windows"]
    assert torch.allclose(torch.tensor(got), torch.tensor(first[3]["pred_relevant_windows"]), atol=1e-4)


def test_checkpoint_round_trip_restores_the_vocabulary(tiny_root: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_model, save_model

    model, pipe = _setup("cpl/cpu", tiny_root, "model.vote=true")
    model.eval()
    save_model(model, str(tmp_path / "m.safetensors"))
    fresh = MODELS.get("cpl")(model.cfg)
    load_model(fresh, str(tmp_path / "m.safetensors"))
    fresh.eval()
    assert fresh.vocab.words == model.vocab.words
    batch = next(iter(pipe.eval_loader("test")))
    assert fresh.predict(batch) == model.predict(batch)


@pytest.mark.parametrize("name", ["cpl/cpu", "ccr/cpu"])
def test_short_training_lowers_the_loss_and_predictions_are_well_formed(name: str, tiny_root: Path) -> None:
    model, pipe = _setup(name, tiny_root)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    train = next(iter(pipe.train_loader()))  # one batch of 16 queries, a few steps
    history = []
    for step in range(12):
        model.train()
        loss = model.training_losses(NoWindows(train), TrainState(epoch=1 + step // 4, step=step, max_epochs=3))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert all(torch.isfinite(torch.tensor(history)))
    assert sum(history[-3:]) / 3 < 0.9 * sum(history[:3]) / 3
    model.eval()
    batch = next(iter(pipe.eval_loader("test")))
    preds = model.predict(batch)
    assert [p["qid"] for p in preds] == batch["qids"]
    for p, vid in zip(preds, batch["query_video"].tolist()):
        rows = torch.tensor(p["pred_relevant_windows"])
        duration = float(batch["durations"][vid])
        assert rows.shape == (model.cfg.num_proposals, 3)
        assert (rows[:, 0] >= 0).all() and (rows[:, 1] <= duration + 1e-4).all() and (rows[:, 0] <= rows[:, 1]).all()
        assert (rows[:-1, 2] >= rows[1:, 2]).all()  # ranked best first
