"""Decode + ``basic`` extraction speed and peak memory, short video vs long video.

    python benchmarks/bench_extract.py --quick   # 30 s vs 3 min of 640x360 video (for `make bench`)
    python benchmarks/bench_extract.py           # 2 min vs 60 min of 640x360 video, 25 fps

Each video is generated once (libx264, a moving square over a drifting gradient) into
``--cache-dir`` (default: a temp dir), then extracted in a fresh Python process that reports
wall and CPU time, video seconds per wall / CPU second (the box is shared, so CPU time is
the steadier figure), and its peak RSS (``ru_maxrss``) next to the RSS
after imports. Flat memory means the long video's peak is about the short one's.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def generate(path: Path, seconds: float, fps: int, width: int = 640, height: int = 360) -> Path:
    """A synthetic H.264 video: a gradient drifting sideways with a square crossing it."""
    import av

    if path.exists():
        return path
    tmp = path.with_name(path.stem + ".partial.mp4")
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([(xx * 255 // width), (yy * 255 // height), 255 - (xx * 255 // width)], -1).astype(np.uint8)
    with av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "28"}
        for i in range(int(seconds * fps)):
            img = np.roll(base, i % width, axis=1)
            x = (7 * i) % (width - 60)
            img[150:210, x:x + 60] = (230, 40, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.rename(path)
    return path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def measure(path: Path) -> dict[str, float]:
    """Extract ``path`` with the basic extractor in this process; timings and peak RSS."""
    from vidlang.video import build_extractor

    extractor = build_extractor("basic")
    baseline = peak_rss_mb()
    started, cpu_started = time.perf_counter(), time.process_time()
    feats, duration = extractor.extract(path)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {"video_s": duration, "clips": int(feats.shape[0]), "wall_s": wall, "cpu_s": cpu,
            "video_s_per_wall_s": duration / wall, "video_s_per_cpu_s": duration / cpu,
            "rss_after_imports_mb": baseline, "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="30 s vs 3 min of video")
    ap.add_argument("--short-seconds", type=float, default=None)
    ap.add_argument("--long-seconds", type=float, default=None)
    ap.add_argument("--fps", type=int, default=25, help="frame rate of the generated videos")
    ap.add_argument("--cache-dir", type=Path, default=None, help="keep generated videos here")
    ap.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure is not None:
        print(json.dumps(measure(args.measure)))
        return
    short = args.short_seconds or (30.0 if args.quick else 120.0)
    long = args.long_seconds or (180.0 if args.quick else 3600.0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.cache_dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for seconds in (short, long):
            started = time.perf_counter()
            path = generate(folder / f"bench_{int(seconds)}s_{args.fps}fps_640x360.mp4", seconds, args.fps)
            made = time.perf_counter() - started
            out = subprocess.run([sys.executable, __file__, "--measure", str(path)], check=True,
                                 capture_output=True, text=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            row["generate_s"] = made
            rows.append(row)
    print(f"basic extractor (fps 4, 64x64 frames, 2 s clips) on 640x360 H.264 at {args.fps} fps")
    print(f"{'video':>9} {'clips':>6} {'wall s':>8} {'CPU s':>7} {'video s / wall s':>17} "
          f"{'video s / CPU s':>16} {'RSS after imports':>18} {'peak RSS':>9}")
    for r in rows:
        print(f"{r['video_s']:8.0f}s {r['clips']:6d} {r['wall_s']:8.1f} {r['cpu_s']:7.1f} "
              f"{r['video_s_per_wall_s']:17.1f} {r['video_s_per_cpu_s']:16.1f} "
              f"{r['rss_after_imports_mb']:15.0f} MB {r['peak_rss_mb']:6.0f} MB")
    growth = rows[1]["peak_rss_mb"] - rows[0]["peak_rss_mb"]
    print(f"peak RSS, long minus short: {growth:+.0f} MB for {rows[1]['video_s'] / rows[0]['video_s']:.0f}x the video")


if __name__ == "__main__":
    main()
