"""End to end: the `mmn/cpu` config trains on a tiny SynthVL (loss falls) and predicts
well-formed, NMS-consistent windows. Not a timing test."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_synthvl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vidlang.data.synthvl import generate

    return generate(tmp_path_factory.mktemp("synthvl_tiny"), "tiny", seed=0)


def _iou(a: list[float], b: list[float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


@pytest.mark.parametrize("config", ["mmn/cpu", "2dtan/cpu"])
def test_cpu_config_trains_and_predicts(tiny_synthvl: Path, config: str) -> None:
    from vidlang.engine import load_config
    from vidlang.engine.checkpoint import build_model
    from vidlang.engine.evaluation import build_pipeline
    from vidlang.models.base import TrainState

    cfg = load_config(config, [f"data.root={tiny_synthvl}", "model.input_dim=32", "seed=0",
                               "data.batch_size=8"])
    torch.manual_seed(0)
    model = build_model(cfg)
    pipeline = build_pipeline(cfg, model)
    batches = list(pipeline.train_loader())
    state = TrainState(epoch=1, max_epochs=1)
    model.on_train_epoch_start(state)
    opt = torch.optim.AdamW([g for g in model.param_groups(3e-3)], lr=3e-3)
    probe = batches[0]

    def probe_loss() -> float:
        torch.manual_seed(1)
        with torch.no_grad():
            return float(model.training_losses(probe, state)["loss"])

    before = probe_loss()
    model.train()
    for step in range(12):
        opt.zero_grad()
        model.training_losses(batches[step % len(batches)], state)["loss"].backward()
        opt.step()
    after = probe_loss()
    assert after < 0.9 * before, (before, after)

    model.eval()
    test_batch = next(iter(pipeline.eval_loader("test")))
    raw = model.predict(test_batch)
    for p in raw:   # ranked candidates, no suppression: NMS is the pipeline's post-processing
        scores = [w[2] for w in p["pred_relevant_windows"]]
        assert scores == sorted(scores, reverse=True)
    preds = pipeline.eval_step(model, test_batch)
    conv = pipeline.postprocess.convention
    assert sum(map(len, (p["pred_relevant_windows"] for p in preds))) < \
        sum(map(len, (p["pred_relevant_windows"] for p in raw)))
    assert [p["qid"] for p in preds] == test_batch["qids"]
    for p, video in zip(preds, test_batch["query_video"].tolist()):
        duration = float(test_batch["durations"][video])
        windows = p["pred_relevant_windows"]
        assert windows, "every query gets at least one window"
        if conv.topk_cap is not None:
            assert len(windows) <= conv.topk_cap
        scores = [w[2] for w in windows]
        assert scores == sorted(scores, reverse=True)
        for i, w in enumerate(windows):
            assert 0.0 <= w[0] < w[1] <= duration + 1e-6
            for other in windows[:i]:
                assert _iou(w, other) <= conv.nms_thresh + 1e-9, "NMS leaves no overlap"
