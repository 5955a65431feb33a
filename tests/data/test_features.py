"""Feature stores, the canonical feature file and resampling, checked by hand on tiny arrays."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from vidlang.data.features import (
    CanonicalFeatureStore,
    CanonicalH5Writer,
    HDF5FeatureStore,
    NpyFolderStore,
    fixed_bin_pool,
    open_feature_store,
    resample,
    segment_average,
    uniform_pick,
    write_canonical_h5,
)
from vidlang.data.features.spec import FeatureSpec
from vidlang.errors import ConfigError, DataError
from vidlang.registry import FEATURE_STORES


def _ramp(t: int, d: int = 2) -> np.ndarray:
    """Row i = [i, 10 i, ...] so bin means are easy to check by hand."""
    return (np.arange(t, dtype=np.float32)[:, None] * (10.0 ** np.arange(d, dtype=np.float32)))


# ---------------------------------------------------------------- resampling


def test_segment_average_drops_last_frame_like_mmn() -> None:
    # T=5, P=2: b = round([0, 2.5, 5]) = [0, 2, 5] -> clamped [0, 2, 4]; rows 0-1 and 2-3.
    out = segment_average(_ramp(5), 2, l2_normalise=False)
    np.testing.assert_allclose(out[:, 0], [0.5, 2.5])  # row 4 (the last frame) is in no mean


def test_segment_average_empty_segment_repeats_row_and_last_frame_can_appear() -> None:
    # T=3, P=4: b = round([0, .75, 1.5, 2.25, 3]) = [0, 1, 2, 2, 3] -> [0, 1, 2, 2, 2]
    out = segment_average(_ramp(3), 4, l2_normalise=False)
    np.testing.assert_allclose(out[:, 0], [0.0, 1.0, 2.0, 2.0])


def test_segment_average_normalises_each_step_before_averaging() -> None:
    feats = np.array([[3.0, 4.0], [0.0, 2.0], [9.0, 9.0]], dtype=np.float32)
    out = segment_average(feats, 1, l2_normalise=True)
    # T=3, P=1: b = [0, round(3)=3] clamped to [0, 2], so rows 0..1 (normalised) are averaged
    np.testing.assert_allclose(out[0], [(0.6 + 0.0) / 2, (0.8 + 1.0) / 2], rtol=1e-6)


def test_fixed_bin_pool_uses_every_frame_by_default() -> None:
    out = fixed_bin_pool(_ramp(5), 2)
    np.testing.assert_allclose(out[:, 0], [0.5, 3.0])  # rows 0-1 and 2-4
    faithful = fixed_bin_pool(_ramp(5), 2, drop_last_frame=True)
    np.testing.assert_allclose(faithful, segment_average(_ramp(5), 2, l2_normalise=False))


def test_fixed_bin_pool_empty_bins_repeat_nearest_frame() -> None:
    out = fixed_bin_pool(_ramp(2), 4)  # edges round([0, .5, 1, 1.5, 2]) = [0, 0, 1, 2, 2]
    np.testing.assert_allclose(out[:, 0], [0.0, 0.0, 1.0, 1.0])
    assert out.shape == (4, 2) and out.dtype == np.float32


def test_fixed_bin_pool_matches_a_loop_reference() -> None:
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(37, 3)).astype(np.float32)
    edges = np.round(np.arange(8) * 37 / 7).astype(int)
    ref = np.stack([feats[s:e].mean(0) if e > s else feats[min(s, 36)]
                    for s, e in zip(edges[:-1], edges[1:])])
    np.testing.assert_array_equal(fixed_bin_pool(feats, 7), ref)  # same float32 arithmetic


def test_uniform_pick_cpl_50_of_200() -> None:
    picked = uniform_pick(_ramp(200, 1), 50)[:, 0].astype(int)
    assert picked[0] == 0 and picked[-1] == 199 and len(picked) == 50
    assert picked[1] == 4 and picked[2] == 8  # round(4.06), round(8.12): stride-4 selection
    np.testing.assert_array_equal(uniform_pick(_ramp(4, 1), 3)[:, 0], [0, 2, 3])  # 1.5 -> 2


def test_resample_dispatches_on_spec_mode() -> None:
    feats = _ramp(9)
    np.testing.assert_allclose(resample(feats, FeatureSpec("segment_mean", 3, False)),
                               segment_average(feats, 3, l2_normalise=False))
    np.testing.assert_allclose(resample(feats, FeatureSpec("fixed_bin", 3)), fixed_bin_pool(feats, 3))
    np.testing.assert_allclose(resample(feats, FeatureSpec("uniform", 3)), feats[[0, 4, 8]])
    normed = resample(feats[1:], FeatureSpec("none", None, True))
    np.testing.assert_allclose(np.linalg.norm(normed, axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ConfigError, match="feature_spec.num_rows"):
        resample(feats, FeatureSpec("uniform"))
    with pytest.raises(ConfigError, match="unknown 'bogus'"):
        resample(feats, FeatureSpec("bogus", 3))
    with pytest.raises(DataError, match="shape"):
        resample(np.zeros((0, 4)), FeatureSpec("uniform", 2))


# ---------------------------------------------------------------- canonical file


def _items() -> list[tuple[str, np.ndarray, float]]:
    rng = np.random.default_rng(1)
    return [("vidA", rng.normal(size=(4, 3)), 8.0), ("vidB", rng.normal(size=(6, 3)), 12.5)]


def test_canonical_roundtrip_and_layout(tmp_path: Path) -> None:
    path = write_canonical_h5(tmp_path / "f.h5", _items(), clip_seconds=2.0)
    with h5py.File(path, "r") as f:
        assert f.attrs["vidlang_format"] == "features" and int(f.attrs["version"]) == 1
        assert int(f.attrs["feature_dim"]) == 3 and float(f.attrs["clip_seconds"]) == 2.0
        assert f["vidB"].dtype == np.float32 and f["vidB"].shape == (6, 3)
    assert json.loads((tmp_path / "durations.json").read_text()) == {"vidA": 8.0, "vidB": 12.5}
    with open_feature_store(path) as store:
        assert isinstance(store, CanonicalFeatureStore)
        assert store.video_ids() == ["vidA", "vidB"] and store.dim == 3
        assert store.duration("vidB") == 12.5 and store.clip_seconds == 2.0
        np.testing.assert_allclose(store["vidA"], _items()[0][1].astype(np.float32))
        assert "vidA" in store and "nope" not in store


def test_canonical_files_are_byte_identical(tmp_path: Path) -> None:
    digests = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        path = write_canonical_h5(tmp_path / name / "f.h5", _items(), 2.0)
        digests.append(hashlib.sha256(path.read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_writer_resume_and_checks(tmp_path: Path) -> None:
    path = tmp_path / "f.h5"
    with CanonicalH5Writer(path, clip_seconds=math.nan) as w:
        w.add("v1", np.ones((2, 4)), 3.0)
        with pytest.raises(DataError, match="feature dim 5"):
            w.add("v2", np.ones((2, 5)), 3.0)
        with pytest.raises(DataError, match="NaN"):
            w.add("v3", np.full((2, 4), np.nan), 3.0)
        with pytest.raises(DataError, match="written twice"):
            w.add("v1", np.ones((2, 4)), 3.0)
    with CanonicalH5Writer(path, clip_seconds=math.nan, resume=True) as w:
        assert "v1" in w and "v2" not in w
        w.add("v2", np.zeros((1, 4)), 1.5)
    assert json.loads((tmp_path / "durations.json").read_text()) == {"v1": 3.0, "v2": 1.5}
    with pytest.raises(DataError, match="cannot resume"):
        CanonicalH5Writer(path, clip_seconds=1.0, resume=True)


# ---------------------------------------------------------------- other stores


def test_hdf5_store_with_key_pattern_and_missing_id(tmp_path: Path) -> None:
    path = tmp_path / "c3d.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("v_a/c3d_features", data=np.ones((5, 500), dtype=np.float64))
        f.create_dataset("v_b/c3d_features", data=np.zeros((3, 500)))
        f.create_group("v_c")  # no features under the key
    store = open_feature_store(path, key_pattern="{vid}/c3d_features")
    assert isinstance(store, HDF5FeatureStore) and not isinstance(store, CanonicalFeatureStore)
    assert store.video_ids() == ["v_a", "v_b"] and store.dim == 500
    assert store["v_a"].dtype == np.float32 and store.duration("v_a") is None
    with pytest.raises(DataError, match=r"c3d\.hdf5 \(record v_c\): video id not in"):
        store["v_c"]
    with pytest.raises(KeyError):
        store["v_zzz"]
    store.close()


def test_npy_folder_store(tmp_path: Path) -> None:
    np.save(tmp_path / "x1.npy", np.arange(6, dtype=np.float32).reshape(3, 2))
    np.savez(tmp_path / "x2.npz", features=np.ones((2, 2)))
    (tmp_path / "durations.json").write_text('{"x1": 4.0}')
    store = open_feature_store(tmp_path)
    assert isinstance(store, NpyFolderStore)
    assert store.video_ids() == ["x1", "x2"] and store.dim == 2
    assert store["x1"][2, 1] == 5.0 and store["x2"].shape == (2, 2)
    assert store.duration("x1") == 4.0 and store.duration("x2") is None
    with pytest.raises(DataError, match="record x3"):
        store["x3"]


def test_registry_and_missing_path(tmp_path: Path) -> None:
    assert {"hdf5", "canonical", "npy_folder"} <= set(FEATURE_STORES.names())
    with pytest.raises(DataError, match="not found"):
        open_feature_store(tmp_path / "none.h5")
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    with pytest.raises(DataError, match="cannot open as HDF5"):
        open_feature_store(bad)


@pytest.mark.parametrize(("t", "p"), [(3, 4), (16, 16), (37, 16), (100, 32), (257, 64), (1000, 7)])
def test_segment_average_matches_the_mmn_loop_rule(t: int, p: int) -> None:
    """Loop form of mmn.md §2: b_k = min(round(k T / P), T - 1); mean of rows b_k..b_{k+1}-1,
    or row b_k when that range is empty."""
    feats = np.random.default_rng(t * 1000 + p).normal(size=(t, 5)).astype(np.float32)
    normed = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    b = np.minimum(np.round(np.arange(p + 1) * t / p).astype(int), t - 1)
    ref = np.stack([normed[b[k]:b[k + 1]].mean(0) if b[k + 1] > b[k] else normed[b[k]] for k in range(p)])
    np.testing.assert_allclose(segment_average(feats, p), ref, rtol=1e-6, atol=1e-7)
    raw = segment_average(feats, p, l2_normalise=False)
    ref_raw = np.stack([feats[b[k]:b[k + 1]].mean(0) if b[k + 1] > b[k] else feats[b[k]] for k in range(p)])
    np.testing.assert_array_equal(raw, ref_raw)  # bit-identical to the upstream per-bin mean


def test_hdf5_store_pickles_without_its_handle(tmp_path: Path) -> None:
    """DataLoader workers receive the store pickled; it reopens the file on first use."""
    import pickle

    path = write_canonical_h5(tmp_path / "f.h5", _items(), 2.0)
    store = open_feature_store(path)
    first = store["vidA"]
    clone = pickle.loads(pickle.dumps(store))
    np.testing.assert_array_equal(clone["vidA"], first)
    store.close()
    clone.close()
