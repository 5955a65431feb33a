"""`vidlang serve` JSON API, page and video streaming, in process (fastapi.testclient), on the
tiny collection of serve_support: results equal the models' own answers, ranges are byte-exact,
the models are loaded once, concurrent requests agree with sequential ones."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

QUERY = "the red square moves to the left"


@pytest.fixture(scope="module")
def collection(serve_demo):
    from vidlang.serve import Collection

    c = Collection.load(serve_demo.index, serve_demo.grounding, serve_demo.web)
    yield c
    c.close()


@pytest.fixture(scope="module")
def client(collection):
    from fastapi.testclient import TestClient

    from vidlang.serve import create_app

    with TestClient(create_app(collection), raise_server_exceptions=False) as c:
        yield c


def _durations(serve_demo) -> dict[str, float]:
    return json.loads((serve_demo.data / "features.h5").with_name("durations.json").read_text())


def _same_windows(got: list[list[float]], alone: list[list[float]]) -> None:
    """``got`` are the best len(got) windows of ``alone`` with the same scores; near-ties may
    come in another order when videos are scored in one batch, so compare by window."""
    by_window = {(round(s, 2), round(e, 2)): score for s, e, score in alone}
    for s, e, score in got:
        assert by_window[(round(s, 2), round(e, 2))] == pytest.approx(score, abs=1e-4)
    best = sorted((w[2] for w in alone), reverse=True)[: len(got)]
    np.testing.assert_allclose(sorted((w[2] for w in got), reverse=True), best, atol=1e-4)


def _same_answer(mine: list[dict], alone: list[dict]) -> None:
    """A search answered in a batch equals the same search answered alone: same videos in the
    same order with the same scores, moments with the same best score. Which near-tied window
    survives NMS may change (the batch pads the queries' tokens; this barely trained MMN scores
    many windows within 1e-6 of each other)."""
    assert [r["video_id"] for r in mine] == [r["video_id"] for r in alone]
    np.testing.assert_allclose([r["score"] for r in mine], [r["score"] for r in alone], atol=1e-5)
    for a, b in zip(mine, alone):
        assert len(a["moments"]) == len(b["moments"])
        if b["moments"]:
            assert a["moments"][0][2] == pytest.approx(b["moments"][0][2], abs=1e-4)
        assert all(0 <= s < e <= a["duration"] + 1e-6 for s, e, _ in a["moments"])


def test_health_and_openapi(client, serve_demo) -> None:
    health = client.get("/healthz").json()
    ids = json.loads((serve_demo.index / "ids.json").read_text())
    assert health == {"status": "ok", "videos": len(ids), "playable": len(ids), "refused": 0,
                      "model": "dual_encoder", "grounding": True}
    spec = client.get("/openapi.json").json()
    assert {"/api/search", "/api/videos/{video_id}", "/api/videos/{video_id}/moments", "/healthz"} <= set(spec["paths"])
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_search_ranks_like_the_index_and_localises_like_the_model(client, collection, serve_demo) -> None:
    from vidlang.data.features import open_feature_store
    from vidlang.index import VideoIndex
    from vidlang.inference import GroundingPredictor, RetrievalPredictor

    body = client.get("/api/search", params={"q": QUERY, "k": 4, "moments": 2}).json()
    results = body["results"]
    assert body["query"] == QUERY and body["k"] == 4 and len(results) == 4
    assert [r["rank"] for r in results] == [1, 2, 3, 4]
    # the ranking of a freshly loaded model + index, independent of the service's objects
    index = VideoIndex.load(serve_demo.index)
    expected = index.search(RetrievalPredictor.from_pretrained(serve_demo.retrieval).embed_text(QUERY), 4)[0]
    assert [r["video_id"] for r in results] == [h.video_id for h in expected]
    np.testing.assert_allclose([r["score"] for r in results], [h.score for h in expected], atol=1e-5)
    # moments: the grounding model's own top-2 on each video's stored features
    grounding = GroundingPredictor.from_pretrained(serve_demo.grounding)
    durations = _durations(serve_demo)
    with open_feature_store(serve_demo.features) as store:
        for r in results:
            assert r["duration"] == pytest.approx(durations[r["video_id"]])
            assert r["video_url"] == f"/media/{r['video_id']}"
            assert len(r["moments"]) == 2
            _same_windows(r["moments"], grounding.predict(store[r["video_id"]], QUERY, durations[r["video_id"]])[0])
            for start, end, _score in r["moments"]:
                assert 0.0 <= start < end <= r["duration"] + 1e-6
    none = client.get("/api/search", params={"q": QUERY, "k": 2, "moments": 0}).json()["results"]
    assert [r["moments"] for r in none] == [[], []]


def test_batched_grounding_equals_one_video_at_a_time(collection, serve_demo) -> None:
    """predict_many pads videos of different lengths into one batch: same windows as predict."""
    from vidlang.data.features import open_feature_store

    durations = _durations(serve_demo)
    ids = sorted(durations)[:4]
    assert len({round(durations[v], 2) for v in ids}) > 1  # really different lengths
    with open_feature_store(serve_demo.features) as store:
        items = [(store[v], durations[v]) for v in ids]
    batched = collection.grounding.predict_many(items, QUERY)
    for (feats, dur), got in zip(items, batched):
        alone = collection.grounding.predict(feats, QUERY, dur)[0]
        assert len(got) == len(alone)
        _same_windows(got, alone)
        assert [w[2] for w in got] == sorted((w[2] for w in got), reverse=True)


def test_video_and_moment_endpoints(client, collection, serve_demo) -> None:
    vid = sorted(_durations(serve_demo))[1]
    info = client.get(f"/api/videos/{vid}").json()
    assert info == {"video_id": vid, "duration": pytest.approx(_durations(serve_demo)[vid]), "playable": True,
                    "video_url": f"/media/{vid}", "thumbnail_url": f"/thumbs/{vid}.jpg"}
    got = client.get(f"/api/videos/{vid}/moments", params={"q": QUERY, "k": 3}).json()
    assert got["video_id"] == vid and len(got["moments"]) == 3
    from vidlang.data.features import open_feature_store

    with open_feature_store(serve_demo.features) as store:
        own = collection.grounding.predict(store[vid], QUERY, info["duration"])[0]
    _same_windows(got["moments"], own)


def test_inference_predictors_read_video_files_like_the_store(collection, serve_demo) -> None:
    """A new video file goes through the extractor the models were trained with: its vector and
    moments equal the ones computed from the extracted feature file."""
    from vidlang.data.features import open_feature_store

    vid = sorted(_durations(serve_demo))[2]
    mp4 = serve_demo.data / "videos" / f"{vid}.mp4"
    with open_feature_store(serve_demo.features) as store:
        from_store = collection.retrieval.embed_store(store, [vid])[0]
        feats, duration = store[vid], store.duration(vid)
    np.testing.assert_allclose(collection.retrieval.embed_video(mp4), from_store, atol=1e-5)
    np.testing.assert_allclose(collection.retrieval.embed_features([feats])[0], from_store, atol=1e-6)
    np.testing.assert_allclose(collection.grounding.predict_video(mp4, QUERY, top_k=3)[0],
                               collection.grounding.predict(feats, QUERY, duration, top_k=3)[0], atol=1e-4)


@pytest.mark.parametrize("spec", ["bytes=0-0", "bytes=10-99", "bytes=-100", "bytes=500-", "bytes=0-99999999"])
def test_range_requests_return_the_exact_slice(client, collection, spec) -> None:
    vid = sorted(collection.videos)[0]
    data = collection.videos[vid].read_bytes()
    size = len(data)
    first, last = spec[6:].split("-")
    if first == "":
        start, end = size - int(last), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    r = client.get(f"/media/{vid}", headers={"Range": spec})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes {start}-{end}/{size}"
    assert r.headers["content-type"] == "video/webm" and r.headers["accept-ranges"] == "bytes"
    assert r.content == data[start:end + 1]


def test_whole_file_and_bad_ranges(client, collection) -> None:
    vid = sorted(collection.videos)[0]
    data = collection.videos[vid].read_bytes()
    whole = client.get(f"/media/{vid}")
    assert whole.status_code == 200 and whole.content == data
    for spec in (f"bytes={len(data)}-", f"bytes={len(data) + 10}-{len(data) + 20}"):
        r = client.get(f"/media/{vid}", headers={"Range": spec})
        assert r.status_code == 416, spec
        assert r.headers["content-range"] == f"bytes */{len(data)}"
        assert "not satisfiable" in r.json()["error"]
    for spec in ("bytes=abc", "bytes=9-2", "items=0-5"):
        r = client.get(f"/media/{vid}", headers={"Range": spec})
        assert r.status_code == 400 and "range" in r.json()["error"].lower(), spec


def test_thumbnail_is_a_cached_keyframe(client, collection) -> None:
    import io

    from PIL import Image

    vid = sorted(collection.videos)[3]
    first = client.get(f"/thumbs/{vid}.jpg")
    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(first.content))
    assert image.format == "JPEG" and image.width == 192
    assert np.asarray(image).std() > 1.0  # a picture, not a flat placeholder
    assert vid in collection._thumbs
    collection.videos_backup = dict(collection.videos)
    try:  # served from the cache: the file is not decoded again
        collection.videos[vid] = Path("/nonexistent/file.webm")
        assert client.get(f"/thumbs/{vid}.jpg").content == first.content
    finally:
        collection.videos.update(collection.videos_backup)


def test_page_shows_the_api_results(client) -> None:
    api = client.get("/api/search", params={"q": QUERY, "k": 3}).json()["results"]
    page = client.get("/", params={"q": QUERY, "k": 3})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    ids = re.findall(r'<article class="result" data-video="([^"]+)"', page.text)
    assert ids == [r["video_id"] for r in api]
    assert f'value="{QUERY}"' in page.text
    for r in api:
        assert f'src="{r["thumbnail_url"]}"' in page.text
        for start, end, _ in r["moments"]:
            assert f'data-start="{start}" data-end="{end}"' in page.text
    # nothing the page loads comes from another host (it works offline)
    refs = re.findall(r'(?:src|href)="([^"]*)"', page.text)
    assert refs and all(ref.startswith("/") and not ref.startswith("//") for ref in refs), refs
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert 'class="result"' not in client.get("/").text


def test_page_reports_bad_input(client) -> None:
    bad = client.get("/", params={"q": QUERY, "k": "abc"})
    assert bad.status_code == 422 and "k: expected a whole number" in bad.text and 'class="result"' not in bad.text
    long = client.get("/", params={"q": "x" * 1000})
    assert long.status_code == 422 and "the limit is 300" in long.text


def test_models_load_once_and_concurrent_requests_agree(client, monkeypatch) -> None:
    import vidlang.engine.checkpoint as checkpoint

    def no_reload(*args, **kwargs):
        raise AssertionError("a model was loaded while serving a request")

    monkeypatch.setattr(checkpoint, "load_model", no_reload)
    queries = [QUERY, "the blue circle grows", "the green triangle disappears", "a yellow diamond spins"]
    sequential = {q: client.get("/api/search", params={"q": q, "k": 5}).json() for q in queries}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda q: (q, client.get("/api/search", params={"q": q, "k": 5})), queries * 6))
    for q, r in answers:
        assert r.status_code == 200
        _same_answer(r.json()["results"], sequential[q]["results"])


def test_searches_that_wait_are_answered_together_with_the_same_results(collection, monkeypatch) -> None:
    """While the model is busy, searches queue; the next pass answers them in one batch (one
    text-encoder call, one grounding batch) with the answers each gets alone."""
    import threading

    queries = [QUERY, "the blue circle grows", "the green triangle disappears", "a yellow diamond spins",
               "the purple square moves up", "the cyan circle shrinks"]
    alone = {(q, k): collection.search(q, k, moments=2) for q in queries for k in (3, 5)}
    sizes: list[int] = []
    answer = collection._answer
    monkeypatch.setattr(collection, "_answer", lambda batch: (sizes.append(len(batch)), answer(batch))[1])
    got: dict[tuple[str, int], list] = {}
    with collection._compute:  # the model is "busy": every search below has to wait
        threads = [threading.Thread(target=lambda q=q, k=k: got.__setitem__((q, k), collection.search(q, k, 2)))
                   for q, k in alone]
        for t in threads:
            t.start()
        while len(collection._queue) < len(threads):
            threading.Event().wait(0.01)
    for t in threads:
        t.join(timeout=120)
    assert sizes == [len(threads)]  # one pass for all twelve
    for key, results in alone.items():
        mine = got[key]
        _same_answer(mine, results)


def test_cli_help_and_missing_index(tmp_path) -> None:
    import subprocess
    import sys

    exe = Path(sys.executable).parent / "vidlang"
    help_text = subprocess.run([exe, "serve", "--help"], capture_output=True, text=True, check=True).stdout
    for option in ("--grounding-ckpt", "--videos", "--host", "--port"):
        assert option in help_text
    done = subprocess.run([exe, "serve", str(tmp_path / "nope")], capture_output=True, text=True)
    assert done.returncode == 2 and "not a vidlang video index" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_serves_the_collection(serve_demo) -> None:
    """`vidlang serve` through the installed entry point: a real uvicorn on a free port."""
    import subprocess
    import sys
    import time

    import httpx

    from serve_support import free_port

    port = free_port()
    exe = Path(sys.executable).parent / "vidlang"
    proc = subprocess.Popen([exe, "serve", str(serve_demo.index), "--grounding-ckpt", str(serve_demo.grounding),
                             "--videos", str(serve_demo.web), "--port", str(port), "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            try:
                health = httpx.get(base + "/healthz", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "vidlang serve did not answer within 180 s"
                time.sleep(0.3)
        assert health.json()["grounding"] is True
        found = httpx.get(base + "/api/search", params={"q": QUERY, "k": 2}, timeout=60).json()["results"]
        assert len(found) == 2 and all(len(r["moments"]) == 3 for r in found)
        part = httpx.get(base + found[0]["video_url"], headers={"Range": "bytes=0-9"}, timeout=10)
        assert part.status_code == 206 and len(part.content) == 10
    finally:
        proc.terminate()
        out, _err = proc.communicate(timeout=30)
    ids = json.loads((serve_demo.index / "ids.json").read_text())
    assert f"loaded {len(ids)} videos ({len(ids)} with a playable file, 0 refused)" in out
