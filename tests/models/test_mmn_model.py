"""MMN / 2D-TAN model: shapes, losses, schedules, configs and the offline-text-encoder error."""

from __future__ import annotations

import pytest
import torch

from vidlang.errors import ConfigError, DataError
from vidlang.models.base import TrainState
from vidlang.models.mmn import MMN, MMNConfig, TwoDTAN, TwoDTANConfig
from vidlang.registry import MODELS
from vidlang.text.config import TextEncoderConfig

TINY = dict(input_dim=8, featpool_hidden=8, conv_hidden=8, conv_layers=4, joint_dim=8,
            text=TextEncoderConfig(name="word", dim=16, vocab_size=64, freeze_epochs=2,
                                   lr_mult=0.1))


def tiny_batch(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return dict(video_ids=["a", "b"], feats=torch.randn(2, 32, 8, generator=g),
                feat_mask=torch.ones(2, 32, dtype=torch.bool),
                durations=torch.tensor([30.0, 20.0]),
                queries=["a man runs", "he sits down", "a dog barks"], qids=["q1", "q2", "q3"],
                query_video=torch.tensor([0, 0, 1]),
                windows=torch.tensor([[1.0, 10.0], [12.0, 25.0], [3.0, 8.0]]))


def test_registered_by_name() -> None:
    assert MODELS.get("mmn") is MMN and MODELS.get("2dtan") is TwoDTAN
    assert MMN.task == "grounding"


@pytest.mark.parametrize("cls,cfg_cls", [(MMN, MMNConfig), (TwoDTAN, TwoDTANConfig)])
def test_losses_are_finite_and_reach_every_trainable_part(cls: type, cfg_cls: type) -> None:
    torch.manual_seed(0)
    model = cls(cfg_cls(**TINY))
    model.on_train_epoch_start(TrainState(epoch=3))
    losses = model.training_losses(tiny_batch(), TrainState(epoch=3))
    assert torch.isfinite(losses["loss"])
    assert ("loss_mm_video" in losses) == (cls is MMN), "2D-TAN is BCE only"
    losses["loss"].backward()
    assert model.featpool.conv.weight.grad is not None
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.text_encoder.parameters())


def test_text_encoder_freeze_schedule_and_lr_multiplier() -> None:
    model = MMN(MMNConfig(**TINY))
    model.on_train_epoch_start(TrainState(epoch=2))
    assert not any(p.requires_grad for p in model.text_encoder.parameters())
    model.on_train_epoch_start(TrainState(epoch=3))
    assert all(p.requires_grad for p in model.text_encoder.parameters())
    groups = model.param_groups(1e-3)
    text_ids = {id(p) for p in model.text_encoder.parameters()}
    text_group = [g for g in groups if {id(p) for p in g["params"]} == text_ids]
    assert len(text_group) == 1 and text_group[0]["lr"] == pytest.approx(1e-4)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_contrastive_weight_drops_to_one_percent_after_only_iou() -> None:
    model = MMN(MMNConfig(**TINY, contrastive_weight=0.05, only_iou_epochs=7))
    assert model.contrastive_weight(7) == pytest.approx(0.05)
    assert model.contrastive_weight(8) == pytest.approx(0.0005)
    batch = tiny_batch()
    torch.manual_seed(0)
    early = model.training_losses(batch, TrainState(epoch=1))
    late = model.training_losses(batch, TrainState(epoch=8))
    mm = early["loss_mm_video"] + early["loss_mm_sent"]
    assert (early["loss"] - early["loss_iou"]).item() == pytest.approx(0.05 * mm.item(), rel=1e-4)
    mm_late = late["loss_mm_video"] + late["loss_mm_sent"]
    assert (late["loss"] - late["loss_iou"]).item() == pytest.approx(0.0005 * mm_late.item(),
                                                                     rel=1e-3)


def test_quirk_flag_reaches_the_loss() -> None:
    batch = tiny_batch()
    torch.manual_seed(0)
    clean = MMN(MMNConfig(**TINY))
    quirky = MMN(MMNConfig(**TINY, reproduce_upstream_quirks=True))
    quirky.load_state_dict(clean.state_dict())
    a = clean.training_losses(batch, TrainState())
    b = quirky.training_losses(batch, TrainState())
    assert a["loss_mm_video"].item() == pytest.approx(b["loss_mm_video"].item(), rel=1e-5)
    assert b["loss_mm_sent"].item() > a["loss_mm_sent"].item()


def test_empty_ground_truth_names_the_query() -> None:
    batch = tiny_batch()
    batch["windows"][1] = torch.tensor([25.0, 25.0])
    with pytest.raises(DataError, match="q2"):
        MMN(MMNConfig(**TINY)).training_losses(batch, TrainState())


def test_bad_config_values_name_the_key() -> None:
    with pytest.raises(ConfigError, match="model.fusion"):
        MMN(MMNConfig(**{**TINY, "fusion": "middle"}))
    with pytest.raises(ConfigError, match="model.num_pre_clips"):
        MMN(MMNConfig(**{**TINY, "num_pre_clips": 30}))
    with pytest.raises(ConfigError, match="model.conv_algorithm: unknown 'fft'"):
        MMN(MMNConfig(**{**TINY, "conv_algorithm": "fft"}))
    with pytest.raises(ConfigError, match="model.input_dim"):
        MMN(MMNConfig(**TINY))({**tiny_batch(), "feats": torch.randn(2, 32, 5)})


def test_paper_config_without_local_distilbert_fails_with_a_clear_message(tmp_path) -> None:
    missing = tmp_path / "no-such-distilbert"
    cfg = MMNConfig(**{**TINY, "text": TextEncoderConfig(name="hf", path=str(missing))})
    with pytest.raises(ConfigError, match=r"model\.text\.path.*local"):
        MMN(cfg)


@pytest.mark.parametrize("name", ["mmn/charades_sta", "mmn/activitynet", "mmn/tacos",
                                  "2dtan/charades_sta", "2dtan/activitynet", "2dtan/tacos"])
def test_paper_configs_carry_the_paper_values(name: str) -> None:
    from vidlang.engine import load_config

    cfg = load_config(name)
    m = cfg.model
    expected = {"charades_sta": (16, 136, 5, 8), "activitynet": (64, 1104, 9, 4),
                "tacos": (128, 2548, 5, 8)}[name.split("/")[1]]
    from vidlang.models.blocks.proposal_map import sparse_mask

    assert (m.num_clips, int(sparse_mask(m.num_clips, m.pooling_counts).sum()), m.conv_kernel,
            m.conv_layers) == expected
    if name.startswith("mmn/"):
        assert m.text.name == "hf" and m.text.path == "distilbert-base-uncased"
        assert cfg.optim.name == "adamw" and cfg.optim.grad_clip == 5.0
        assert cfg.optim.scheduler.name == "multistep" and m.batch_norm and m.fusion == "late"
    else:
        assert m.fusion == "early" and not m.batch_norm and m.contrastive_weight == 0
        from vidlang.engine.pipelines.grounding import grounding_postprocess

        conv = grounding_postprocess(cfg).convention
        assert cfg.eval.preset == "2dtan" and conv.topk_cap == 5 and conv.nms_thresh == \
            {"charades_sta": 0.45, "activitynet": 0.5, "tacos": 0.4}[name.split("/")[1]]
