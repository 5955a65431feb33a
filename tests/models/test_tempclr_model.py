"""TempCLR end to end on a tiny SynthVL: config -> pipeline -> training steps -> evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vidlang.engine.config import load_config
from vidlang.engine.pipelines.alignment import AlignmentPipeline
from vidlang.errors import ConfigError
from vidlang.models.base import TrainState
from vidlang.models.tempclr import TempCLR
from vidlang.registry import MODELS, PIPELINES

FAST = ["model.video_dim=32", "model.text.name=word", "model.text.dim=32", "model.embed_dim=32",
        "data.batch_size=8", "data.eval_batch_size=16"]


@pytest.fixture(scope="module")
def tiny_synthvl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vidlang.data.synthvl import generate

    return generate(tmp_path_factory.mktemp("synthvl"), preset="tiny", seed=0,
                    shuffled_order_distractors=0.5)


def _setup(root: Path, config: str, extra: tuple[str, ...] = ()) -> tuple[TempCLR, AlignmentPipeline]:
    cfg = load_config(config, [f"data.root={root}", *FAST, *extra])
    torch.manual_seed(cfg.seed)
    model = MODELS.get(cfg.model_name)(cfg.model)
    pipeline = PIPELINES.get(model.task)(cfg, model.feature_spec())
    return model, pipeline


def _train(model: TempCLR, pipeline: AlignmentPipeline, epochs: int) -> list[float]:
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses, step = [], 0
    for epoch in range(epochs):
        loader = pipeline.train_loader()
        loader.sampler.set_epoch(epoch)  # type: ignore[union-attr]
        epoch_loss = 0.0
        for batch in loader:
            out = model.training_losses(batch, TrainState(epoch=epoch + 1, step=step))
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
            epoch_loss += float(out["loss"].detach())
            step += 1
        losses.append(epoch_loss)
    return losses


def _evaluate(model: TempCLR, pipeline: AlignmentPipeline, split: str = "val") -> dict:
    model.eval()
    outputs = [pipeline.eval_step(model, b) for b in pipeline.eval_loader(split)]
    return pipeline.evaluate(model, outputs, split)


def test_end_to_end_tiny_synthvl(tiny_synthvl: Path) -> None:
    model, pipeline = _setup(tiny_synthvl, "tempclr/synthvl_cpu")
    first = next(iter(pipeline.train_loader()))
    out = model.training_losses(first, TrainState())
    assert set(out) >= {"clip_nce", "align", "loss"}
    torch.testing.assert_close(out["loss"], out["clip_nce"] + out["align"])
    # same seed -> same numbers
    twin, _ = _setup(tiny_synthvl, "tempclr/synthvl_cpu")
    torch.testing.assert_close(twin.training_losses(first, TrainState())["loss"], out["loss"])

    losses = _train(model, pipeline, epochs=2)
    assert losses[-1] < losses[0]
    metrics = _evaluate(model, pipeline)
    assert metrics["videos"] == 12.0
    for bg in ("bg_removed", "bg_kept"):  # the synthvl configs score both background modes
        for scorer in ("cap_avg", "dtw", "otam"):
            r1, r5, r10 = (metrics[f"p2v/{bg}/{scorer}/R@{k}"] for k in (1, 5, 10))
            assert 0.0 <= r1 <= r5 <= r10 <= 100.0
    # 4 s windows over the tiny preset's ~25 s videos
    assert 3.0 < metrics["p2v/bg_kept/windows_per_video"] < 15.0
    # few-shot v2v from the SynthVL labels ("<first verb> -> <last verb>"): no class of the
    # tiny val split has two videos (skipped, with the reason); the test split has two
    assert "need 2" in metrics["v2v/skipped"]
    test = _evaluate(model, pipeline, "test")
    for kind in ("dtw", "otam", "mean_pool"):
        assert 0.0 <= test[f"v2v/{kind}/acc"] <= 100.0
    assert test["v2v/queries"] >= 1 and test["v2v/classes"] >= 2
    assert 0.0 <= metrics["steps/recall"] <= 100.0
    assert metrics["normalise"] == "path" and metrics["reproduce_upstream_quirks"] is False


def test_clip_level_baseline_and_segment_negatives(tiny_synthvl: Path) -> None:
    base, pipeline = _setup(tiny_synthvl, "tempclr/synthvl_cliplevel_cpu")
    batch = next(iter(pipeline.train_loader()))
    out = base.training_losses(batch, TrainState())
    assert "align" not in out and "clip_nce" in out
    seg, _ = _setup(tiny_synthvl, "tempclr/synthvl_cpu",
                    ("model.negatives=segment", "model.inner_shuffle=true",
                     "model.align_kind=softotam", "model.infonce_reduction=sum"))
    out = seg.training_losses(batch, TrainState())
    out["loss"].backward()
    assert torch.isfinite(out["align"]) and float(out["align"].detach()) > 0
    for flag in ("eval.overrides.reproduce_upstream_quirks=true",
                 "model.tempclr_faithful_eval=true"):  # the model key is the older name
        quirky, qpipe = _setup(tiny_synthvl, "tempclr/synthvl_cpu", (flag,))
        metrics = _evaluate(quirky, qpipe)
        assert metrics["normalise"] == "area" and metrics["reproduce_upstream_quirks"] is True


@pytest.mark.parametrize("override,key", [
    ("model.align_kind=dtw", "model.align_kind"),
    ("model.negatives=clips", "model.negatives"),
    ("model.trainable=layernorm", "model.trainable"),
    ("model.infonce_reduction=max", "model.infonce_reduction"),
])
def test_bad_config_names_the_key(tiny_synthvl: Path, override: str, key: str) -> None:
    cfg = load_config("tempclr/synthvl_cpu", [f"data.root={tiny_synthvl}", *FAST, override])
    with pytest.raises(ConfigError, match=key):
        MODELS.get(cfg.model_name)(cfg.model)


def test_layernorm_policy_trains_only_layernorms(tiny_synthvl: Path) -> None:
    model, _ = _setup(tiny_synthvl, "tempclr/synthvl_cpu",
                      ("model.trainable=layernorm", "model.temporal=seqTransf",
                       "model.temporal_layers=1"))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("norm" in n for n in trainable)
