import numpy as np
import pytest

from vidlang.index import IndexParams, VideoIndex, VideoIndexError


def _clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, dim))
    return centres[rng.integers(0, 8, n)] + 0.3 * rng.normal(size=(n, dim))


def test_flat_search_ranks_exactly_by_cosine(tmp_path):
    emb = _clustered(50, 16)
    ids = [f"v{i}" for i in range(50)]
    index = VideoIndex.build(emb, ids, model={"name": "dual_encoder", "fingerprint": "abc"})
    q = emb[[3, 17]] + 0.01
    hits = index.search(q, k=5)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    expected = np.argsort(-(qn @ unit.T), axis=1)[:, :5]
    assert [[h.video_id for h in row] for row in hits] == [[ids[j] for j in row] for row in expected]
    assert hits[0][0].video_id == "v3" and hits[0][0].rank == 0
    assert hits[0][0].score == pytest.approx(float(qn[0] @ unit[3]), abs=1e-5)


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_build_add_save_load_round_trip(tmp_path, kind):
    emb = _clustered(300, 8, seed=1)
    ids = [f"v{i}" for i in range(300)]
    params = IndexParams(kind=kind, nlist=4, nprobe=4, train_size=300)
    index = VideoIndex.build(emb[:200], ids[:200], params)
    index.add(emb[200:], ids[200:])  # grows without rebuilding
    assert len(index) == 300
    before = index.search(emb[250:253], k=3)
    assert before[0][0].video_id == "v250"
    index.save(tmp_path / "idx")
    loaded = VideoIndex.load(tmp_path / "idx")
    after = loaded.search(emb[250:253], k=3)
    assert [[h.video_id for h in r] for r in after] == [[h.video_id for h in r] for r in before]
    assert loaded.meta.params.kind == kind


def test_error_cases(tmp_path):
    emb = _clustered(20, 8)
    ids = [f"v{i}" for i in range(20)]
    index = VideoIndex.build(emb, ids, model={"name": "dmae", "fingerprint": "x1"})
    with pytest.raises(VideoIndexError, match="query dimension 4 does not match the index \\(8\\)"):
        index.search(np.ones((1, 4)))
    with pytest.raises(VideoIndexError, match="already in the index: v3"):
        index.add(emb[:1], ["v3"])
    with pytest.raises(VideoIndexError, match="built with model"):
        index.check_model({"name": "dmae", "fingerprint": "other"})
    index.check_model({"name": "dmae", "fingerprint": "x1"})
    empty = VideoIndex.build(np.zeros((0, 8)), [])
    with pytest.raises(VideoIndexError, match="empty"):
        empty.search(np.ones((1, 8)))
    with pytest.raises(VideoIndexError, match="needs at least 64 vectors"):
        VideoIndex.build(emb, ids, IndexParams(kind="ivf", nlist=64))
    with pytest.raises(VideoIndexError, match="not a vidlang video index"):
        VideoIndex.load(tmp_path)
    with pytest.raises(VideoIndexError, match="unknown index kind 'lsh'"):
        VideoIndex.build(emb, ids, IndexParams(kind="lsh"))


def _truth(emb: np.ndarray, q: np.ndarray, ids: list[str], k: int, allowed=None) -> list[set[str]]:
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sims = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ unit.T
    if allowed is not None:
        sims[:, ~allowed] = -np.inf
    return [{ids[j] for j in row[:k] if np.isfinite(sims[i, j])} for i, row in enumerate(np.argsort(-sims, axis=1))]


def test_records_and_filters_are_exact(tmp_path):
    emb = _clustered(400, 16, seed=3)
    ids = [f"{'cam' if i % 3 else 'web'}_{i:04d}" for i in range(400)]
    durations = [float(i % 50) if i % 7 else None for i in range(400)]
    index = VideoIndex.build(emb, ids, durations=durations, source={"features": "/a.h5", "key_pattern": None})
    q = emb[[5, 80, 301]] + 0.05
    hit = index.search(q, k=1)[0][0]
    assert (hit.video_id, hit.start, hit.end, hit.duration, hit.features) == ("cam_0005", 0.0, 5.0, 5.0, "/a.h5")
    dur = np.array([-1.0 if d is None else d for d in durations])
    cases = [({"video_id_prefix": "web_"}, np.array([v.startswith("web_") for v in ids])),
             ({"min_duration": 10, "max_duration": 20}, (dur >= 10) & (dur <= 20)),
             ({"video_id_prefix": "cam_", "max_duration": 3}, np.array([v.startswith("cam_") for v in ids])
              & (dur >= 0) & (dur <= 3))]
    for kwargs, allowed in cases:
        got = [{h.video_id for h in row} for row in index.search(q, k=10, **kwargs)]
        assert got == _truth(emb, q, ids, 10, allowed), kwargs
    assert index.search(q, k=5, video_id_prefix="nothing") == [[], [], []]
    with pytest.raises(VideoIndexError, match="min_duration 5.0 is larger than max_duration 1.0"):
        index.search(q, min_duration=5.0, max_duration=1.0)
    with pytest.raises(VideoIndexError, match="k must be an integer >= 1, got 0"):
        index.search(q, k=0)
    with pytest.raises(VideoIndexError, match="embed sentences first"):
        index.search("a sentence")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_delete_by_video_id_then_reload(tmp_path, kind):
    emb = _clustered(300, 8, seed=4)
    ids = [f"v{i}" for i in range(300)]
    index = VideoIndex.build(emb, ids, IndexParams(kind=kind, nlist=4, nprobe=4, train_size=300),
                             durations=[float(i) for i in range(300)])
    assert index.delete(["v10", "v11", "nope"]) == 2
    assert len(index) == 298 and not index.contains(["v10", "v11"]) and index.contains(["v12"]) == {"v12"}
    hits = index.search(emb[[10, 12]], k=3)
    assert "v10" not in {h.video_id for h in hits[0]} and hits[1][0].video_id == "v12"
    assert hits[1][0].duration == 12.0  # records stay aligned with the vectors after a delete
    index.add(emb[10:11], ["v10"], durations=[10.0])  # and the id can come back
    index.save(tmp_path / "idx")
    again = VideoIndex.load(tmp_path / "idx")
    assert [[h.video_id for h in r] for r in again.search(emb[[10, 12]], k=3)] == \
        [[h.video_id for h in r] for r in index.search(emb[[10, 12]], k=3)]
    assert again.search(emb[[10]], k=1)[0][0].duration == 10.0


def test_each_video_remembers_its_feature_store(tmp_path):
    emb = _clustered(40, 8, seed=5)
    ids = [f"v{i}" for i in range(40)]
    index = VideoIndex.build(emb[:20], ids[:20], source={"features": "/first.h5", "key_pattern": None})
    index.add(emb[20:], ids[20:], source={"features": "/second", "key_pattern": None})
    index.save(tmp_path / "idx")
    again = VideoIndex.load(tmp_path / "idx")
    assert again.search(emb[[3]], k=1)[0][0].features == "/first.h5"
    assert again.search(emb[[33]], k=1)[0][0].features == "/second"
    assert again.meta.source == {"features": "/first.h5", "key_pattern": None}  # format-1 readers


def test_index_of_format_1_still_loads(tmp_path):
    import json

    emb = _clustered(30, 8, seed=6)
    VideoIndex.build(emb, [f"v{i}" for i in range(30)], source={"features": "/old.h5"}).save(tmp_path)
    (tmp_path / "records.npz").unlink()
    meta = json.loads((tmp_path / "meta.json").read_text())
    for key in ("sources", "backend", "uri", "collection"):
        meta.pop(key)
    meta["format_version"] = 1
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    hit = VideoIndex.load(tmp_path).search(emb[[4]], k=1)[0][0]
    assert (hit.video_id, hit.duration, hit.features) == ("v4", None, "/old.h5")


def test_non_finite_vectors_and_corrupt_files_are_refused(tmp_path):
    emb = _clustered(20, 8)
    ids = [f"v{i}" for i in range(20)]
    bad = emb.copy()
    bad[7, 2] = np.nan
    with pytest.raises(VideoIndexError, match=r"1 embeddings hold NaN/inf \(e.g. v7\)"):
        VideoIndex.build(bad, ids)
    index = VideoIndex.build(emb, ids)
    with pytest.raises(VideoIndexError, match="query vectors hold NaN/inf"):
        index.search(np.full((1, 8), np.inf))
    index.save(tmp_path)
    blob = (tmp_path / "index.faiss").read_bytes()
    (tmp_path / "index.faiss").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(VideoIndexError, match=r"index.faiss: not a readable FAISS index \(truncated"):
        VideoIndex.load(tmp_path)
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(VideoIndexError, match="meta.json: unreadable index metadata"):
        VideoIndex.load(tmp_path)
