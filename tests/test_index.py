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
