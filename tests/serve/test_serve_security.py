"""`vidlang serve` refuses what it must: path traversal in every spelling, symlinks out of the
video folder, unknown ids, oversized or malformed parameters - each with the right status, a
JSON message, and no file outside the collection opened (checked with an audit hook)."""

from __future__ import annotations

import http.client
import json
import shutil
import sys
from pathlib import Path

import pytest

from serve_support import live_server

MARKER = b"SECRET-OUTSIDE-THE-COLLECTION"
_opened: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if _opened is not None and event == "open" and args and isinstance(args[0], (str, bytes, Path)):
        _opened.append(str(args[0]))


sys.addaudithook(_audit)


@pytest.fixture(scope="module")
def guarded(serve_demo, tmp_path_factory):
    """A collection whose video folder holds one real file, one symlink to a file outside it,
    and a symlinked folder pointing outside; plus the outside folder with a secret."""
    from fastapi.testclient import TestClient

    from vidlang.serve import Collection, create_app

    base = tmp_path_factory.mktemp("serve_security")
    ids = json.loads((serve_demo.index / "ids.json").read_text())
    outside, videos = base / "outside", base / "videos"
    outside.mkdir()
    videos.mkdir()
    (outside / "secret.webm").write_bytes(MARKER + (serve_demo.web / f"{ids[1]}.webm").read_bytes())
    (outside / f"{ids[2]}.webm").write_bytes(MARKER)
    (outside / "passwd").write_bytes(MARKER)
    shutil.copyfile(serve_demo.web / f"{ids[0]}.webm", videos / f"{ids[0]}.webm")
    (videos / f"{ids[1]}.webm").symlink_to(outside / "secret.webm")
    (videos / "linked").symlink_to(outside, target_is_directory=True)
    collection = Collection.load(serve_demo.index, None, videos)
    app = create_app(collection)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield {"client": client, "app": app, "collection": collection, "ids": ids, "outside": outside,
               "videos": videos}
    collection.close()


@pytest.fixture
def watch_opens():
    global _opened
    _opened = []
    yield _opened
    _opened = None


def _outside_untouched(opened: list[str], outside: Path) -> None:
    bad = [p for p in opened if str(outside) in p or "passwd" in p or "secret" in p]
    assert not bad, f"opened outside the collection: {bad}"


def test_symlinks_out_of_the_folder_are_not_registered(guarded) -> None:
    c, ids = guarded["collection"], guarded["ids"]
    assert set(c.videos) == {ids[0]}
    assert ids[1] in c.refused and "outside the video folder" in c.refused[ids[1]]
    assert ids[2] not in c.videos  # only reachable through a symlinked folder: not even listed
    assert guarded["client"].get("/healthz").json()["refused"] == 1
    ok = guarded["client"].get(f"/media/{ids[0]}")
    assert ok.status_code == 200 and ok.content == (guarded["videos"] / f"{ids[0]}.webm").read_bytes()


TRAVERSALS = [
    "/media/../../../../etc/passwd",
    "/media/..%2f..%2f..%2fetc%2fpasswd",
    "/media/%2e%2e%2f%2e%2e%2foutside%2fsecret.webm",
    "/media/%2e%2e",
    "/media/..%252f..%252foutside%252fsecret",
    "/media/%252e%252e%252fsecret",
    "/media/%2Fetc%2Fpasswd",
    "/media//etc/passwd",
    "/media/..%5c..%5coutside%5csecret.webm",
    "/media/secret",
    "/media/secret.webm",
    "/media/linked",
    "/media/~root",
    "/media/a%00b",
    "/thumbs/..%2f..%2foutside%2fsecret.jpg",
    "/thumbs/%2e%2e.jpg",
    "/static/..%2f..%2f__init__.py",
    "/static/../collection.py",
    "/api/videos/..%2f..%2fetc%2fpasswd",
    "/api/videos/%2e%2e/moments?q=x",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_is_refused_in_process(guarded, watch_opens, path) -> None:
    r = guarded["client"].get(path)
    assert r.status_code in (400, 404), (path, r.status_code)
    assert MARKER not in r.content and "error" in r.json()
    _outside_untouched(watch_opens, guarded["outside"])


def test_traversal_is_refused_on_the_wire(guarded, watch_opens) -> None:
    """The same paths sent byte for byte to a real server (httpx would normalise ``..`` away),
    plus a bare ``..`` and the absolute path of the secret itself."""
    secret = str(guarded["outside"] / "secret.webm")
    raw = [*TRAVERSALS, "/media/..", "/media/" + secret, "/media/" + secret.replace("/", "%2f"), "/media/.%2e/.%2e/" + secret]
    ids = guarded["ids"]
    with live_server(guarded["app"]) as base:
        host, port = base.removeprefix("http://").split(":")
        for path in raw:
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            conn.close()
            assert response.status in (400, 404), (path, response.status)
            assert MARKER not in body, path
        # a symlinked id is refused over the wire too
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", f"/media/{ids[1]}", headers={"Range": "bytes=0-100"})
        response = conn.getresponse()
        assert response.status == 404 and MARKER not in response.read()
        conn.close()
    _outside_untouched(watch_opens, guarded["outside"])


@pytest.mark.parametrize("path", ["/api/videos/nope", "/api/videos/nope/moments?q=x", "/media/nope",
                                  "/thumbs/nope.jpg", "/api/videos/svv9999"])
def test_unknown_ids_are_404(guarded, path) -> None:
    r = guarded["client"].get(path)
    assert r.status_code == 404 and "no video" in r.json()["error"]


@pytest.mark.parametrize("path", ["/api/videos/a%20b", "/api/videos/a;b", "/media/%20", "/thumbs/a*b.jpg"])
def test_malformed_ids_are_400(guarded, path) -> None:
    r = guarded["client"].get(path)
    assert r.status_code == 400 and "video id" in r.json()["error"]


@pytest.mark.parametrize("params, message", [
    ({"q": "x", "k": "0"}, "k: must be between 1 and 100"),
    ({"q": "x", "k": "-3"}, "k: must be between 1 and 100"),
    ({"q": "x", "k": "101"}, "k: must be between 1 and 100"),
    ({"q": "x", "k": "999999999999999999999"}, "k: must be between 1 and 100"),
    ({"q": "x", "k": "abc"}, "k: expected a whole number"),
    ({"q": "x", "k": "1.5"}, "k: expected a whole number"),
    ({"q": "x", "moments": "-1"}, "moments: must be between 0 and 20"),
    ({"q": "x", "moments": "many"}, "moments: expected a whole number"),
    ({"q": "   "}, "q: give a non-empty sentence"),
    ({"q": "a\x01b"}, "q: control characters"),
    ({"q": "x" * 301}, "q: 301 characters; the limit is 300"),
    ({"q": "x" * 20_000}, "q: 20000 characters; the limit is 300"),
    ({}, "q: Field required"),
])
def test_bad_parameters_are_422_with_a_message(guarded, params, message) -> None:
    r = guarded["client"].get("/api/search", params=params)
    assert r.status_code == 422
    assert message in r.json()["error"] and "Traceback" not in r.text


def test_moments_without_a_grounding_model_and_crashes_are_json(guarded, monkeypatch) -> None:
    client, ids = guarded["client"], guarded["ids"]
    r = client.get(f"/api/videos/{ids[0]}/moments", params={"q": "the red square"})
    assert r.status_code == 501 and "--grounding-ckpt" in r.json()["error"]
    results = client.get("/api/search", params={"q": "the red square", "k": 2}).json()["results"]
    assert [r["moments"] for r in results] == [[], []]

    def boom(*args, **kwargs):
        raise RuntimeError("boom at /secret/internal/path")

    monkeypatch.setattr(guarded["collection"], "search", boom)
    r = client.get("/api/search", params={"q": "x"})
    assert r.status_code == 500 and r.json() == {"error": "internal error (see the server log)", "status": 500}
    assert "boom" not in r.text and "Traceback" not in r.text
