"""AlignmentPredictor: a TempCLR run folder -> step times and paragraph-to-video scores, from a
video file or from features, equal to what the evaluation path (``TempCLR.predict`` on the
alignment batch) computes for the same video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inference_support import BASIC, basic_collection, save_run
from vidlang.errors import ConfigError, DataError
from vidlang.inference import AlignmentPredictor

SENTENCES = ["the red square starts on the right", "it slides to the left", "it stops on the left"]
SMALL = ["model.text.name=word", "model.text.dim=32", "model.embed_dim=32"]


@pytest.fixture(scope="module")
def tempclr_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], Path]:
    root = tmp_path_factory.mktemp("align")
    videos, feats, dim = basic_collection(root / "data")
    run = save_run("tempclr/synthvl_cpu",
                   [f"data.features={feats}", f"model.video_dim={dim}", *SMALL,
                    "eval.overrides.window=1.0", "eval.overrides.stride=1.0"], root / "run")
    return run, videos, feats


def test_video_file_and_its_features_give_the_same_alignment(tempclr_run) -> None:
    from vidlang.video.features import features_for_video

    run, videos, _ = tempclr_run
    predictor = AlignmentPredictor.from_pretrained(run, device="cpu")
    assert (predictor.options.window, predictor.options.stride) == (1.0, 1.0)  # the run's eval options
    from_file = predictor.predict(videos[0], SENTENCES)
    feats, seconds = features_for_video(videos[0], "basic", **BASIC)
    from_feats = predictor.predict(feats, SENTENCES, duration=seconds)
    assert from_file == from_feats
    times = from_file["step_times"]
    assert len(times) == len(SENTENCES) and times == sorted(times)
    assert all(0 <= t <= seconds for t in times)
    assert len(from_file["windows"]) == 3 and np.isfinite(from_file["score"])
    for kind in ("otam", "cap_avg"):
        assert np.isfinite(predictor.predict(feats, SENTENCES, seconds, kind=kind)["score"])


def test_embeddings_equal_the_evaluation_path(tempclr_run) -> None:
    """The predictor's frames, windows and sentence vectors are TempCLR.predict's for a batch
    holding the same video (bit for bit), and its step times and score are the pipeline's
    decoding and background-kept scoring of those."""
    from vidlang.engine.pipelines.alignment import (
        AlignmentItem,
        collate_alignment,
        cut_windows,
        window_frames,
    )
    from vidlang.engine.pipelines.features import prepare_features
    from vidlang.metrics.alignment import background_kept_scores
    from vidlang.metrics.step_decoding import decode_step_times
    from vidlang.video.features import features_for_video

    run, videos, _ = tempclr_run
    predictor = AlignmentPredictor.from_pretrained(run, device="cpu")
    model = predictor.model
    raw, seconds = features_for_video(videos[1], "basic", **BASIC)
    feats = prepare_features(raw, model.feature_spec(), "v")
    windows = [(0.0, 1.0), (1.0, 2.0), (2.0, seconds)]
    bg = cut_windows(seconds, 1.0, 1.0)
    rows = [window_frames(w, feats.shape[0], seconds, 32, "v") for w in windows]
    bg_rows = [window_frames(w, feats.shape[0], seconds, 32, "v") for w in bg]
    item = AlignmentItem("v", feats, seconds, SENTENCES, windows, rows, bg, bg_rows)
    expected = model.predict(collate_alignment([item]))[0]

    emb = predictor.embed_video(raw, seconds)
    text = predictor.embed_paragraph(SENTENCES)
    assert torch.equal(emb.frames, expected["frames"])
    assert torch.equal(emb.windows, expected["bg_clips"])
    assert torch.equal(emb.pooled, expected["pooled"])
    assert torch.equal(text, expected["text"])
    assert emb.window_spans == expected["bg_windows"]

    out = predictor.predict(raw, SENTENCES, seconds)
    assert out["step_times"] == decode_step_times(expected["frames"].float(), expected["text"].float(), seconds)
    ones = torch.ones(1, len(SENTENCES), dtype=torch.bool)
    wmask = torch.ones(1, len(bg), dtype=torch.bool)
    sim = background_kept_scores(expected["text"].float()[None], ones, expected["bg_clips"].float()[None],
                                 wmask, "dtw", "path", 1.3)
    assert out["score"] == float(sim[0, 0])


def test_bad_inputs_are_refused(tempclr_run) -> None:
    from engine_toy import ToyConfig, ToyGrounder

    run, videos, _ = tempclr_run
    predictor = AlignmentPredictor.from_pretrained(run, device="cpu")
    with pytest.raises(ConfigError, match="needs an alignment model"):
        AlignmentPredictor(ToyGrounder(ToyConfig()))
    with pytest.raises(DataError, match="duration"):
        predictor.predict(np.ones((3, predictor.model.cfg.video_dim), np.float32), SENTENCES)
    with pytest.raises(DataError, match="non-empty"):
        predictor.predict(videos[0], ["ok", "  "])
    with pytest.raises(ConfigError, match="kind"):
        predictor.predict(videos[0], SENTENCES, kind="nearest")
    with pytest.raises(DataError, match="from_pretrained"):
        AlignmentPredictor(predictor.model).predict(videos[0], SENTENCES)
