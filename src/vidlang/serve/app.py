"""The FastAPI application of ``vidlang serve``: JSON API, the search page, video streaming.

Every route validates its input before touching the collection; every error is a JSON object
``{"error": message, "status": code}`` (an HTML page for the search page), never a traceback.
Video files and thumbnails are looked up by id in the table built at start-up
(:func:`vidlang.serve.media.register_videos`): no part of a request becomes a path.
"""


import logging
from importlib import resources
from typing import Any

from vidlang.errors import ConfigError, VidlangError
from vidlang.serve.collection import Collection
from vidlang.serve.media import MEDIA_TYPES, is_safe_id

log = logging.getLogger("vidlang.serve")

#: static files, read once from the package; served from memory by name
STATIC = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self'; "
       "media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


class ApiError(Exception):
    """A refused request: HTTP ``status`` and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _read_static() -> dict[str, bytes]:
    pkg = resources.files("vidlang.serve") / "static"
    return {name: (pkg / name).read_bytes() for name in STATIC}


def _template() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("vidlang.serve", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    return env.get_template("index.html")


def check_query(collection: Collection, q: str | None) -> str:
    """The stripped query, or an :class:`ApiError` saying what is wrong with it."""
    text = (q or "").strip()
    if not text:
        raise ApiError(422, "q: give a non-empty sentence to search for")
    cap = collection.settings.max_query_chars
    if len(text) > cap:
        raise ApiError(422, f"q: {len(text)} characters; the limit is {cap}")
    if any(ord(c) < 32 for c in text):
        raise ApiError(422, "q: control characters are not allowed")
    return text


def check_int(name: str, raw: str | None, default: int, low: int, high: int) -> int:
    """``raw`` as an int in ``[low, high]`` (``default`` when absent), else an ApiError."""
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(422, f"{name}: expected a whole number, got {raw[:40]!r}") from None
    if not low <= value <= high:
        raise ApiError(422, f"{name}: must be between {low} and {high}, got {value}")
    return value


def check_video(collection: Collection, video_id: str) -> str:
    """``video_id`` if the index holds it: 400 for a malformed id, 404 for an unknown one."""
    if not is_safe_id(video_id):
        raise ApiError(400, "video id: only letters, digits, '_', '-' and '.' (no '..' or '/')")
    if not collection.knows(video_id):
        raise ApiError(404, f"no video {video_id!r} in this collection")
    return video_id


def create_app(collection: Collection) -> Any:
    """The ASGI app serving ``collection`` (loaded once by the caller, shared by all requests)."""
    from fastapi import FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from vidlang import __version__

    static = _read_static()
    page = _template()
    s = collection.settings
    app = FastAPI(title="vidlang serve", version=__version__,
                  description="Search a video collection by text and jump to the moment.")
    app.state.collection = collection

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message, "status": status}, status_code=status)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ())[1:]) or "request"
        return error(422, f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(VidlangError)
    async def _vidlang(request: Request, exc: VidlangError) -> JSONResponse:
        return error(501 if isinstance(exc, ConfigError) else 400, str(exc))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request %s failed", request.url.path)
        return error(500, "internal error (see the server log)")

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        if response.status_code >= 400 and response.headers.get("content-type", "").startswith("text/plain"):
            # Starlette's own refusals (a Range it cannot serve) come as plain text: make them JSON
            body = b"".join([chunk async for chunk in response.body_iterator]).decode(errors="replace")
            message = body.strip() or ("Range: not satisfiable for this file (its size is in Content-Range)"
                                       if response.status_code == 416 else "refused")
            refused = error(response.status_code, message)
            if "content-range" in response.headers:
                refused.headers["Content-Range"] = response.headers["content-range"]
            response = refused
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if response.headers.get("content-type", "").startswith("text/html") and request.url.path == "/":
            response.headers["Content-Security-Policy"] = CSP
        return response

    # ------------------------------------------------------------------------------ JSON API
    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, Any]:
        """Liveness and what is loaded."""
        return {"status": "ok", **collection.summary()}

    @app.get("/api/search", tags=["search"])
    def api_search(q: str = Query(..., description=f"The sentence (1..{s.max_query_chars} characters)."),
                   k: str | None = Query(None, description=f"Videos to return, 1..{s.max_k} (default 10)."),
                   moments: str | None = Query(None, description=f"Moments per video, 0..{s.max_moments} (default 3).")
                   ) -> dict[str, Any]:
        """Ranked videos for a sentence; with a grounding model, each video's best moments
        ``[start_s, end_s, score]``."""
        query = check_query(collection, q)
        top = check_int("k", k, 10, 1, s.max_k)
        n_moments = check_int("moments", moments, 3, 0, s.max_moments)
        results = collection.search(query, top, n_moments)
        return {"query": query, "k": top, "collection_size": len(collection.index), "results": results}

    @app.get("/api/videos/{video_id}", tags=["videos"])
    def api_video(video_id: str) -> dict[str, Any]:
        """Metadata of an indexed video (duration, whether its file is served)."""
        return collection.video_info(check_video(collection, video_id))

    @app.get("/api/videos/{video_id}/moments", tags=["videos"])
    def api_moments(video_id: str, q: str = Query(...), k: str | None = Query(None)) -> dict[str, Any]:
        """The best windows for a sentence inside one video (needs --grounding-ckpt)."""
        vid = check_video(collection, video_id)
        query = check_query(collection, q)
        top = check_int("k", k, 5, 1, s.max_moments)
        return {"video_id": vid, "query": query, "moments": collection.moments(vid, query, top)}

    # ------------------------------------------------------------------------------ media
    @app.get("/media/{video_id}", tags=["media"], response_class=Response)
    def media(video_id: str) -> Any:
        """The registered video file, with HTTP Range support (206 / 416)."""
        vid = check_video(collection, video_id)
        path = collection.videos.get(vid)
        if path is None:
            raise ApiError(404, f"video {vid!r} is indexed but its file is not served")
        return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream"),
                            headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/thumbs/{name}", tags=["media"], response_class=Response)
    def thumb(name: str) -> Response:
        """A keyframe of a registered video as JPEG (made once, then cached)."""
        if not name.endswith(".jpg"):
            raise ApiError(404, "thumbnails are /thumbs/<video id>.jpg")
        vid = check_video(collection, name[: -len(".jpg")])
        if vid not in collection.videos:
            raise ApiError(404, f"video {vid!r} is indexed but its file is not served")
        return Response(collection.thumbnail(vid), media_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/static/{name}", include_in_schema=False)
    def static_file(name: str) -> Response:
        if name not in static:
            raise ApiError(404, "no such static file")
        return Response(static[name], media_type=STATIC[name], headers={"Cache-Control": "no-cache"})

    # ------------------------------------------------------------------------------ the page
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index_page(q: str | None = None, k: str | None = None) -> HTMLResponse:
        query, top, results, message, status = (q or "").strip(), 10, [], "", 200
        try:
            top = check_int("k", k, 10, 1, s.max_k)
            if q is not None:
                query = check_query(collection, q)
                results = collection.search(query, top, moments=3, windows=s.timeline_windows)
        except ApiError as e:
            message, status = e.message, e.status
        except VidlangError as e:
            message, status = str(e), 400
        html = page.render(query=query[: s.max_query_chars], k=top, max_k=s.max_k, results=results,
                           message=message, summary=collection.summary(), max_chars=s.max_query_chars,
                           searched=q is not None and not message)
        return HTMLResponse(html, status_code=status)

    return app
