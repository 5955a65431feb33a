"""The Milvus backend (Milvus Lite, embedded) against the FAISS backend on the same vectors:
the same records, exact top-10 sets, recall of the approximate indexes after a commit, add /
delete / reopen, filters, and one-line errors. One Milvus Lite database for the whole module."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from vidlang.index import IndexParams, VideoIndex, VideoIndexError  # noqa: E402

N, DIM = 3000, 32


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("milvus") / "lite.db")


@pytest.fixture(scope="module")
def data() -> dict:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((40, DIM))
    x = centres[rng.integers(0, 40, N + 50)] + 0.5 * rng.standard_normal((N + 50, DIM))
    ids = [f"{('cam', 'web', 'lab')[i % 3]}_{i:05d}" for i in range(N)]
    durations = [float(5 + i % 120) if i % 11 else None for i in range(N)]
    return {"x": x[:N].astype(np.float32), "q": x[N:].astype(np.float32), "ids": ids, "dur": durations}


def _sets(rows) -> list[set[str]]:
    return [{h.video_id for h in row} for row in rows]


def _recall(got, truth) -> float:
    return float(np.mean([len(a & b) / max(1, len(b)) for a, b in zip(got, truth)]))


def test_exact_milvus_equals_faiss_flat_with_records_and_filters(db, data, tmp_path):
    src = {"features": "/feats.h5", "key_pattern": None}
    faiss_index = VideoIndex.build(data["x"], data["ids"], durations=data["dur"], source=src)
    milvus = VideoIndex.build(data["x"], data["ids"], durations=data["dur"], source=src,
                              backend="milvus", uri=db, collection="exact")
    milvus.save(tmp_path / "m")
    assert len(milvus) == N
    for kwargs in ({}, {"video_id_prefix": "web_"}, {"min_duration": 30, "max_duration": 60},
                   {"video_id_prefix": "lab_", "min_duration": 100}):
        a, b = faiss_index.search(data["q"], 10, **kwargs), milvus.search(data["q"], 10, **kwargs)
        assert _sets(a) == _sets(b), kwargs
        for ra, rb in zip(a, b):  # the same records and scores, hit by hit
            assert [(h.video_id, h.start, h.end, h.duration, h.features) for h in ra] == \
                [(h.video_id, h.start, h.end, h.duration, h.features) for h in rb]
            np.testing.assert_allclose([h.score for h in ra], [h.score for h in rb], atol=1e-5)
    unknown = next(h for h in milvus.search(data["x"][[11]], 1) for h in h)
    assert unknown.video_id == "lab_00011" and unknown.duration is None and unknown.end is None


@pytest.mark.parametrize("kind,params,low", [
    ("ivf", {"nlist": 32, "nprobe": 8}, {"nprobe": 1}),
    ("hnsw", {"hnsw_m": 16, "ef_search": 64}, {"ef_search": 10}),
])
def test_approximate_index_recall_after_commit(db, data, kind, params, low):
    """recall@10 >= 0.95 against exact search at the documented settings; and the index really is
    used after the commit (a tighter query knob loses recall on unclustered vectors, which brute
    force would not)."""
    truth = _sets(VideoIndex.build(data["x"], data["ids"]).search(data["q"], 10))
    index = VideoIndex.build(data["x"], data["ids"], IndexParams(kind=kind, **params),
                             backend="milvus", uri=db, collection=f"approx_{kind}")
    index.commit()
    assert _recall(_sets(index.search(data["q"], 10)), truth) >= 0.95

    rng = np.random.default_rng(1)
    flat = rng.standard_normal((N, DIM)).astype(np.float32)
    q = rng.standard_normal((50, DIM)).astype(np.float32)
    exact = _sets(VideoIndex.build(flat, data["ids"]).search(q, 10))
    tight = {**params, **low}
    uni = VideoIndex.build(flat, data["ids"], IndexParams(kind=kind, **tight), backend="milvus", uri=db,
                           collection=f"uniform_{kind}")
    assert _recall(_sets(uni.search(q, 10)), exact) == 1.0  # not sealed yet: brute force
    uni.commit()
    assert _recall(_sets(uni.search(q, 10)), exact) < 0.9


def test_add_delete_and_reopen(db, data, tmp_path):
    x, ids = data["x"][:600], data["ids"][:600]
    index = VideoIndex.build(x[:400], ids[:400], backend="milvus", uri=db, collection="crud",
                             source={"features": "/one.h5", "key_pattern": None})
    index.add(x[400:], ids[400:], source={"features": "/two", "key_pattern": None})
    with pytest.raises(VideoIndexError, match="already in the index: cam_00000"):
        index.add(x[:1], ids[:1])
    assert index.delete([ids[3], ids[450], "missing"]) == 2
    assert len(index) == 598 and index.contains([ids[3], ids[4]]) == {ids[4]}
    index.save(tmp_path / "idx")
    before = index.search(data["q"], 10)
    index.close()
    meta = json.loads((tmp_path / "idx" / "meta.json").read_text())
    assert (meta["backend"], meta["collection"]) == ("milvus", "crud")
    again = VideoIndex.load(tmp_path / "idx")
    after = again.search(data["q"], 10)
    assert [[(h.video_id, round(h.score, 5)) for h in r] for r in after] == \
        [[(h.video_id, round(h.score, 5)) for h in r] for r in before]
    assert again.search(x[[500]], 1)[0][0].features == "/two"
    assert again.search(x[[100]], 1)[0][0].features == "/one.h5"
    assert sorted(again.video_ids) == sorted(v for v in ids if v not in (ids[3], ids[450]))


def test_clear_errors(db, data, tmp_path):
    index = VideoIndex.build(data["x"][:50], data["ids"][:50], backend="milvus", uri=db, collection="errs")
    index.save(tmp_path / "m")
    with pytest.raises(VideoIndexError, match="built by the milvus backend, not faiss"):
        VideoIndex.load(tmp_path / "m", backend="faiss")
    VideoIndex.build(data["x"][:50], data["ids"][:50]).save(tmp_path / "f")
    with pytest.raises(VideoIndexError, match="already holds a faiss index"):
        index.save(tmp_path / "f")
    with pytest.raises(VideoIndexError, match="query dimension 8 does not match the index \\(32\\)"):
        index.search(np.ones((1, 8)))
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    (tmp_path / "m" / "meta.json").write_text(json.dumps({**meta, "dim": 64}))
    with pytest.raises(VideoIndexError, match="holds 32-d vectors but the index folder says dim 64"):
        VideoIndex.load(tmp_path / "m")
    (tmp_path / "m" / "meta.json").write_text(json.dumps(meta))
    index._backend.drop()
    with pytest.raises(VideoIndexError, match="has no collection 'errs'"):
        VideoIndex.load(tmp_path / "m")
    t0 = time.perf_counter()
    with pytest.raises(VideoIndexError, match="cannot reach the Milvus server at http://127.0.0.1:1 "):
        VideoIndex.build(data["x"][:5], data["ids"][:5], backend="milvus", uri="http://127.0.0.1:1")
    assert time.perf_counter() - t0 < 10
    with pytest.raises(VideoIndexError, match="must end with .db"):
        VideoIndex.build(data["x"][:5], data["ids"][:5], backend="milvus", uri=str(tmp_path / "lite"))
    with pytest.raises(VideoIndexError, match="invalid Milvus collection name"):
        VideoIndex.build(data["x"][:5], data["ids"][:5], backend="milvus", uri=db, collection="1-bad")


def test_lite_file_is_one_process_at_a_time(db, data, tmp_path):
    import subprocess
    import sys

    index = VideoIndex.build(data["x"][:20], data["ids"][:20], backend="milvus", uri=db, collection="busy")
    index.save(tmp_path / "busy")
    code = f"from vidlang.index import VideoIndex; VideoIndex.load({str(tmp_path / 'busy')!r})"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert f"cannot open Milvus Lite at {db} " in r.stderr and "another process" in r.stderr
