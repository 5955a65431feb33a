"""The ``clip`` path end to end with a tiny randomly initialised CLIP saved to a temp folder:
extraction gives features of the declared dim, the text tower shares the space, and the
zero-shot baseline returns well-formed windows and retrieval scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from video_support import make_tiny_clip, moving_square, write_video
from vidlang.errors import ConfigError
from vidlang.models.zeroshot import (
    ZeroShotCLIP,
    ZeroShotConfig,
    runs_above,
    windows_from_similarity,
)
from vidlang.text import TextEncoderConfig, build_text_encoder
from vidlang.video import features_for_video, iter_clips
from vidlang.video.collection import extract_collection, list_videos
from vidlang.video.extractors import build_extractor


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip", projection_dim=24)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("v") / "square.mp4", n_frames=40, fps=8,
                       frame=moving_square(+1, n_frames=40))


def test_clip_extractor_gives_declared_dim_per_clip(tiny_clip: Path, video: Path, tmp_path: Path) -> None:
    ext = build_extractor("clip", model=str(tiny_clip), fps=2, batch_size=2)
    assert ext.dim == 24 and ext.frame_size.width == 32
    feats, duration = ext.extract(video)
    assert feats.shape == (3, 24) and duration == pytest.approx(5.0)
    # each row is the mean of unit-norm frame embeddings
    assert np.all(np.linalg.norm(feats, axis=1) <= 1.0 + 1e-5)
    clips = list(iter_clips(video, fps=2, size=ext.frame_size))
    np.testing.assert_allclose(feats[0], ext.frame_embeddings(clips[0].frames).mean(0), atol=1e-6)
    report = extract_collection(list_videos([video]), ext, tmp_path / "f.h5")
    assert report.extracted == 1


def test_unavailable_checkpoint_fails_without_downloading(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--model: cannot load CLIP checkpoint .*never downloads"):
        build_extractor("clip", model="no-such-org/no-such-clip-model")
    with pytest.raises(ConfigError, match="needs a CLIP checkpoint"):
        build_extractor("clip")


def test_text_tower_shares_the_image_space(tiny_clip: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    enc = build_text_encoder(TextEncoderConfig(name="clip", path=str(tiny_clip))).eval()
    out = enc(["the red square moves to the left", "a cat"])
    assert out.sentence.shape == (2, 24) and out.tokens.shape[-1] == 24 and enc.dim == 24
    assert out.mask.sum(1).tolist() == [len(w) for w in out.words]
    model = AutoModel.from_pretrained(str(tiny_clip), local_files_only=True)
    tok = AutoTokenizer.from_pretrained(str(tiny_clip), local_files_only=True)
    ref = model.get_text_features(**tok(["a cat"], return_tensors="pt"))
    ref = getattr(ref, "pooler_output", ref)
    torch.testing.assert_close(out.sentence[1:2], ref, atol=1e-5, rtol=1e-5)


def test_zero_shot_grounding_and_retrieval(tiny_clip: Path, video: Path) -> None:
    feats, duration = features_for_video(video, "clip", model=str(tiny_clip), fps=4, clip_seconds=1.0)
    model = ZeroShotCLIP(ZeroShotConfig(text=TextEncoderConfig(name="clip", path=str(tiny_clip))))
    queries = ["the red square moves to the right", "a blue circle"]
    results = model.ground(feats, queries, duration)
    assert len(results) == 2
    for windows in results:
        assert 1 <= len(windows) <= model.cfg.top_k
        scores = [w[2] for w in windows]
        assert scores == sorted(scores, reverse=True)
        for start, end, _ in windows:
            assert 0 <= start < end <= duration + 1e-9
    scores = model.retrieval_scores(queries, [feats, feats[::-1] * 0.5 + 0.1])
    assert scores.shape == (2, 2) and np.all(np.abs(scores) <= 1 + 1e-5)
    with pytest.raises(ConfigError, match="same checkpoint"):
        model.ground(np.zeros((4, 7), np.float32), queries, duration)


def test_windows_follow_runs_of_high_similarity() -> None:
    assert runs_above(np.array([0, 1, 1, 0, 1, 0]), 0.5) == [(1, 3), (4, 5)]
    assert runs_above(np.array([1, 1, 0, 1]), 0.5, min_len=2) == [(0, 2)]
    sim = np.array([0.1, 0.1, 0.9, 0.95, 0.9, 0.1, 0.1, 0.1])
    best = windows_from_similarity(sim, 16.0, ZeroShotConfig())[0]
    assert best[:2] == [4.0, 10.0]
