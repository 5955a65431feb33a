"""Video files for the service: which files may be served, keyframe thumbnails, and a
transcode to a codec browsers play (FFmpeg's mpeg4, SynthVL-video's default, is not one)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

from vidlang.errors import DataError

#: what a video id may look like in a request; anything else is refused before any lookup
SAFE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}$")
#: browser-playable containers first, when one id has several files
MEDIA_TYPES = {".webm": "video/webm", ".mp4": "video/mp4", ".m4v": "video/mp4", ".ogv": "video/ogg",
               ".mov": "video/quicktime", ".mkv": "video/x-matroska"}


def is_safe_id(video_id: str) -> bool:
    """True when ``video_id`` is a plain name: no separator, no ``..``, no control character."""
    return bool(SAFE_ID.match(video_id)) and ".." not in video_id


def register_videos(folder: str | Path, wanted: Iterable[str]) -> tuple[dict[str, Path], dict[str, str]]:
    """Map each id of ``wanted`` to its video file under ``folder`` (searched recursively; the
    id is the file name without extension), once, at start-up.

    Returns ``(served, refused)``: ``served`` maps id -> resolved path of a regular file inside
    ``folder``; ``refused`` maps id -> why a file was not registered (a symlink or a path that
    resolves outside the folder, an unsafe id). Ids with no file are simply absent. Requests
    only ever look ids up in ``served``; no request text is joined to a path.
    """
    from vidlang.video.decode import VIDEO_SUFFIXES

    root = Path(folder)
    if not root.is_dir():
        raise DataError("--videos: not a folder", root)
    root = root.resolve()
    want = set(wanted)
    rank = {s: i for i, s in enumerate(MEDIA_TYPES)}
    candidates: dict[str, list[Path]] = {}
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in VIDEO_SUFFIXES and p.stem in want:
            candidates.setdefault(p.stem, []).append(p)
    served: dict[str, Path] = {}
    refused: dict[str, str] = {}
    for vid, paths in sorted(candidates.items()):
        if not is_safe_id(vid):
            refused[vid] = "the id has characters that are not served"
            continue
        for p in sorted(paths, key=lambda q: (rank.get(q.suffix.lower(), len(rank)), str(q))):
            real = p.resolve()
            if not real.is_relative_to(root):
                refused[vid] = f"{p} resolves outside the video folder ({real})"
                continue
            if not real.is_file():
                refused[vid] = f"{p} is not a regular file"
                continue
            served[vid] = real
            refused.pop(vid, None)
            break
    return served, refused


def keyframe_jpeg(path: str | Path, at: float = 0.3, width: int = 192) -> bytes:
    """A JPEG of the keyframe at or before ``at`` (a fraction of the duration) of a video,
    ``width`` pixels wide (small videos are scaled up without smoothing)."""
    import av
    from PIL import Image

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if container.duration:
                container.seek(int(container.duration * at), backward=True, any_frame=False)
            image = None
            for frame in container.decode(stream):
                image = frame.to_image()
                break
    except (av.error.FFmpegError, IndexError, OSError) as e:
        raise DataError(f"cannot read a frame ({e})", path) from None
    if image is None:
        raise DataError("no decodable frame", path)
    height = max(1, round(image.height * width / image.width))
    resample = Image.Resampling.NEAREST if image.width < width else Image.Resampling.BILINEAR
    out = io.BytesIO()
    image.resize((width, height), resample).save(out, format="JPEG", quality=85)
    return out.getvalue()


def transcode_for_web(src: str | Path, dst: str | Path, codec: str = "libvpx", bit_rate: int = 800_000,
                      keyframe_seconds: float = 1.0) -> Path:
    """Re-encode ``src``'s video stream to WebM (VP8 by default; ``libvpx-vp9`` for VP9) at
    ``dst``, keeping every frame's timestamp, with a keyframe at least every
    ``keyframe_seconds`` so a browser seeks quickly. Audio is dropped."""
    import av

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".part")
    try:
        with av.open(str(src)) as inp, av.open(str(tmp), "w", format="webm") as out:
            istream = inp.streams.video[0]
            rate = istream.average_rate or Fraction(25)
            ostream = out.add_stream(codec, rate=rate)
            ostream.width, ostream.height = istream.codec_context.width, istream.codec_context.height
            ostream.pix_fmt = "yuv420p"
            ostream.bit_rate = bit_rate
            ostream.gop_size = max(1, int(round(float(rate) * keyframe_seconds)))
            ostream.codec_context.time_base = istream.time_base
            ostream.options = {"threads": "1", "deadline": "good", "cpu-used": "4"}
            start = istream.start_time or 0
            for frame in inp.decode(istream):
                if frame.pts is None:
                    continue
                frame.pts -= start
                frame.time_base = istream.time_base
                for packet in ostream.encode(frame.reformat(format="yuv420p")):
                    out.mux(packet)
            for packet in ostream.encode():
                out.mux(packet)
    except (av.error.FFmpegError, IndexError) as e:
        tmp.unlink(missing_ok=True)
        raise DataError(f"cannot transcode ({e})", src) from None
    tmp.replace(dst)
    return dst
