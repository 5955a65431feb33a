"""Predict from a video FILE through the predictors: the file is featurised with the extractor
recorded in the run's training features, and the result is exactly the prediction on those
features (grounding windows, retrieval vector)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference_support import BASIC, basic_collection, save_run
from vidlang.errors import DataError
from vidlang.inference import GroundingPredictor, RetrievalPredictor
from vidlang.inference.run_folder import extractor_for_checkpoint, training_clip_seconds
from vidlang.video.features import features_for_video

QUERY = "the red square slides to the left"


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], Path, int]:
    root = tmp_path_factory.mktemp("infer_video")
    videos, feats, dim = basic_collection(root / "data")
    return root, videos, feats, dim


@pytest.fixture(scope="module")
def grounding_run(collection) -> Path:
    import engine_toy  # noqa: F401  (registers the toy grounding model)

    root, _, feats, dim = collection
    cfg = root / "toy.yaml"
    cfg.write_text("defaults: [dataset/qvhighlights]\n"
                   f"model: {{name: engine_toy, feat_dim: {dim}}}\n"
                   f"data: {{root: {root}, features: {feats}}}\n")
    return save_run(cfg, [], root / "grounding")


def test_the_run_folder_names_the_recorded_extractor(collection, grounding_run) -> None:
    assert extractor_for_checkpoint(grounding_run) == ("basic", {**BASIC, "grid": 4})
    assert training_clip_seconds(grounding_run) == 1.0


def test_grounding_predict_on_a_video_file(collection, grounding_run) -> None:
    _, videos, _, _ = collection
    predictor = GroundingPredictor.from_pretrained(grounding_run, device="cpu")
    feats, seconds = features_for_video(videos[0], "basic", **BASIC)
    expected = predictor.predict(feats, [QUERY, "it waits"], seconds, top_k=0)
    assert predictor.predict(videos[0], [QUERY, "it waits"], top_k=0) == expected
    assert predictor.predict(str(videos[0]), [QUERY, "it waits"], top_k=0) == expected
    assert predictor.predict_video(videos[0], [QUERY, "it waits"]) == expected
    assert all(0 <= w[0] < w[1] <= seconds for w in expected[0])
    # an explicit duration wins over the decoded one, as with features
    assert predictor.predict(videos[0], QUERY, duration=6.0) == predictor.predict(feats, QUERY, 6.0)
    with pytest.raises(DataError, match="duration"):
        predictor.predict(feats, QUERY)


def test_retrieval_predict_on_a_video_file(collection) -> None:
    root, videos, feats_file, dim = collection
    run = save_run("retrieval/synthvl_cpu", [f"data.features={feats_file}", f"model.video_dim={dim}",
                                             "model.text.name=word", "model.text.dim=32",
                                             "model.embed_dim=32"], root / "retrieval")
    predictor = RetrievalPredictor.from_pretrained(run)
    feats = [features_for_video(v, "basic", **BASIC)[0] for v in videos]
    expected = predictor.embed_features(feats)  # a batch of both (what the index holds)
    for i, video in enumerate(videos):
        got = predictor.predict(video)  # a batch of one: the same vector up to float rounding
        assert np.array_equal(got, predictor.embed_features([feats[i]])[0])
        np.testing.assert_allclose(got, expected[i], atol=1e-6)
        assert np.array_equal(predictor.predict(feats[i]), got)
        assert np.array_equal(predictor.embed_video(video), got)
    from vidlang.data.features import open_feature_store

    with open_feature_store(feats_file) as store:  # the collection's features: the same vectors
        assert store.video_ids() == [v.stem for v in videos]
        assert np.array_equal(predictor.embed_store(store, store.video_ids()), expected)


def test_a_predictor_without_a_run_folder_cannot_read_a_file(collection, grounding_run) -> None:
    _, videos, _, _ = collection
    model = GroundingPredictor.from_pretrained(grounding_run, device="cpu").model
    with pytest.raises(DataError, match="from_pretrained"):
        GroundingPredictor(model).predict(videos[0], QUERY)
