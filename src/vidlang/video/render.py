"""SynthVL-video: SynthVL-style scripts rendered to real MP4 files (docs/video.md).

Each video shows one to three coloured shapes (square, circle, triangle, diamond) on a plain
or graded grey background. A script is a sequence of non-overlapping events - a shape
appears, disappears, moves left / right / up / down, grows, shrinks, spins or changes colour -
and every event gets one sentence ("the red square moves to the left") with its window in
seconds. Colours are distinct within a video, so every sentence names one shape. The folder
uses SynthVL's canonical layout (``meta.json``, ``{split}.jsonl``, ``videos_{split}.jsonl``)
plus ``videos/<vid>.mp4``, so the ``synthvl`` dataset reads it once features are extracted.
Same seed and settings -> the same scripts and pixels (and, with the same FFmpeg, the same
files).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from vidlang.data.records import GroundingRecord, write_grounding_jsonl
from vidlang.errors import ConfigError

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "yellow": (235, 215, 40), "green": (40, 185, 60),
    "cyan": (40, 205, 215), "blue": (45, 70, 225), "purple": (175, 55, 205),
}
SHAPES = ("square", "circle", "triangle", "diamond")
BACKGROUNDS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "black": ((15, 15, 15), (15, 15, 15)), "dark": ((70, 70, 70), (70, 70, 70)),
    "light": ((185, 185, 185), (185, 185, 185)), "white": ((240, 240, 240), (240, 240, 240)),
    "dusk": ((25, 25, 25), (110, 110, 110)), "fog": ((150, 150, 150), (235, 235, 235)),
}
MOVES = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}
ACTIONS = ("appear", "disappear", "move_left", "move_right", "move_up", "move_down", "grow",
           "shrink", "spin", "change_colour")
TEMPLATES: dict[str, tuple[str, ...]] = {
    "appear": ("the {o} appears", "the {o} shows up"),
    "disappear": ("the {o} disappears", "the {o} vanishes"),
    "move_left": ("the {o} moves to the left", "the {o} slides left"),
    "move_right": ("the {o} moves to the right", "the {o} slides right"),
    "move_up": ("the {o} moves up", "the {o} rises"),
    "move_down": ("the {o} moves down", "the {o} drops down"),
    "grow": ("the {o} grows", "the {o} gets bigger"),
    "shrink": ("the {o} shrinks", "the {o} gets smaller"),
    "spin": ("the {o} spins", "the {o} rotates"),
    "change_colour": ("the {o} turns {c}", "the {o} changes colour to {c}"),
}
SPLIT_OF_REMAINDER = {8: "val", 9: "test"}  # video index % 10 -> split; the rest is train
SPLITS = ("train", "val", "test")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class VideoSetConfig:
    """Size and look of a SynthVL-video set (``vidlang synth --video --set key=value``)."""

    n_videos: int = 300
    min_seconds: float = 10.0
    max_seconds: float = 40.0
    size: int = 64
    fps: int = 8
    max_objects: int = 3
    min_event_seconds: float = 2.0
    max_event_seconds: float = 6.0
    # FFmpeg's native mpeg4 encoder is byte-deterministic; libx264 (crf) is smaller but its
    # output was seen to differ between two runs of the same frames, so it is opt-in.
    codec: str = "mpeg4"
    bit_rate: int = 2_000_000
    crf: int = 18

    def check(self) -> VideoSetConfig:
        if self.n_videos < 1 or self.size < 16 or self.size % 2 or self.fps < 1:
            raise ConfigError("synth --video: need n_videos >= 1, an even size >= 16 and fps >= 1")
        if not 0 < self.min_event_seconds <= self.max_event_seconds:
            raise ConfigError("synth --video: need 0 < min_event_seconds <= max_event_seconds")
        if not self.min_event_seconds + 1.0 <= self.min_seconds <= self.max_seconds:
            raise ConfigError("synth --video: need min_event_seconds + 1 <= min_seconds <= max_seconds")
        if not 1 <= self.max_objects <= len(COLOURS):
            raise ConfigError(f"synth --video: max_objects must be in 1..{len(COLOURS)}")
        return self


VIDEO_PRESETS: dict[str, VideoSetConfig] = {
    "tiny": VideoSetConfig(n_videos=10, min_seconds=4.0, max_seconds=8.0, size=32, max_objects=2,
                           min_event_seconds=1.0, max_event_seconds=3.0),
    "small": VideoSetConfig(),
}


def make_video_config(preset: str = "small", **overrides: Any) -> VideoSetConfig:
    """The preset's settings with ``overrides`` (unknown keys are a ConfigError)."""
    if preset not in VIDEO_PRESETS:
        raise ConfigError(f"synth --video: unknown preset {preset!r}; known: {', '.join(VIDEO_PRESETS)}")
    known = {f.name for f in fields(VideoSetConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"synth --video: unknown setting(s) {unknown}; known: {sorted(known)}")
    return replace(VIDEO_PRESETS[preset], **overrides).check()


@dataclass
class Shape:
    """One object's state: centre and half-size as fractions of the frame, angle in degrees,
    colour name and visibility scale (0 hidden, 1 shown)."""

    shape: str
    colour: str
    x: float
    y: float
    size: float
    angle: float
    shown: float


@dataclass(frozen=True)
class Event:
    """One scripted event of object ``obj`` on [start, end) seconds."""

    obj: int
    action: str
    start: float
    end: float
    to_colour: str | None = None
    distance: float = 0.0


@dataclass
class Script:
    """A video's initial shapes, background, events and their sentences."""

    vid: str
    duration: float
    background: str
    shapes: list[Shape]
    events: list[Event]
    sentences: list[str]


# ----------------------------------------------------------------------------- script planning

def _feasible(state: Shape, action: str, others: list[Shape]) -> dict[str, Any] | None:
    """Parameters that make ``action`` possible for ``state`` now, or None."""
    margin = state.size + 0.04
    if action == "appear":
        return {} if state.shown == 0 else None
    if state.shown == 0:
        return None
    if action == "disappear":
        return {}
    if action.startswith("move_"):
        dx, dy = MOVES[action[5:]]
        pos = state.x if dx else state.y
        room = (pos - margin) if (dx or dy) < 0 else (1 - margin - pos)
        return {"distance": min(room, 0.45)} if room >= 0.25 else None
    if action == "grow":
        return {} if state.size * 1.6 <= 0.24 and min(state.x, state.y, 1 - state.x, 1 - state.y) > state.size * 1.6 else None
    if action == "shrink":
        return {} if state.size / 1.6 >= 0.06 else None
    if action == "spin":
        return {} if state.shape != "circle" else None
    if action == "change_colour":
        used = {o.colour for o in others} | {state.colour}
        free = [c for c in COLOURS if c not in used]
        return {"choices": free} if free else None
    raise AssertionError(action)


def _apply(state: Shape, event: Event, progress: float) -> Shape:
    """``state`` after ``progress`` (0..1) of ``event``."""
    p = min(max(progress, 0.0), 1.0)
    s = replace(state)
    if event.action == "appear":
        s.shown = p
    elif event.action == "disappear":
        s.shown = 1.0 - p
    elif event.action.startswith("move_"):
        dx, dy = MOVES[event.action[5:]]
        s.x += dx * event.distance * p
        s.y += dy * event.distance * p
    elif event.action == "grow":
        s.size *= 1.6 ** p
    elif event.action == "shrink":
        s.size /= 1.6 ** p
    elif event.action == "spin":
        s.angle += 180.0 * p
    elif event.action == "change_colour":
        if p >= 1.0 and event.to_colour is not None:
            s.colour = event.to_colour
    return s


def _name(state: Shape) -> str:
    return f"{state.colour} {state.shape}"


def plan_script(vid: str, cfg: VideoSetConfig, rng: np.random.Generator) -> Script:
    """A random script: shapes, background and a sequence of feasible, distinctly described
    events with window ends on frame times."""
    frame = 1.0 / cfg.fps
    duration = float(round(rng.uniform(cfg.min_seconds, cfg.max_seconds) * cfg.fps) * frame)
    n_obj = int(rng.integers(1, cfg.max_objects + 1))
    colours = [str(c) for c in rng.choice(list(COLOURS), size=n_obj, replace=False)]
    shapes = []
    for k in range(n_obj):
        size = float(rng.uniform(0.08, 0.14))
        shapes.append(Shape(str(rng.choice(SHAPES)), colours[k], float(rng.uniform(0.25, 0.75)),
                            float(rng.uniform(0.25, 0.75)), size, float(rng.uniform(0, 90)),
                            float(rng.random() < 0.8)))
    background = str(rng.choice(list(BACKGROUNDS)))
    state = [replace(s) for s in shapes]
    events: list[Event] = []
    sentences: list[str] = []
    described: set[str] = set()
    t = float(np.round(rng.uniform(0.5, 2.0) / frame) * frame)
    while t + cfg.min_event_seconds <= duration - 0.5:
        length = float(rng.uniform(cfg.min_event_seconds, cfg.max_event_seconds))
        end = float(min(np.round((t + length) / frame) * frame, duration - 0.5))
        options = []
        for k in range(n_obj):
            for action in ACTIONS:
                params = _feasible(state[k], action, [s for j, s in enumerate(state) if j != k])
                if params is not None and f"{_name(state[k])}|{action}" not in described:
                    options.append((k, action, params))
        if not options or end - t < cfg.min_event_seconds * 0.75:
            break
        k, action, params = options[int(rng.integers(len(options)))]
        to_colour = str(rng.choice(params["choices"])) if action == "change_colour" else None
        event = Event(k, action, round(t, 6), round(end, 6), to_colour, float(params.get("distance", 0.0)))
        template = TEMPLATES[action][int(rng.integers(len(TEMPLATES[action])))]
        sentences.append(template.format(o=_name(state[k]), c=to_colour))
        described.add(f"{_name(state[k])}|{action}")
        events.append(event)
        state[k] = _apply(state[k], event, 1.0)
        t = float(np.round((end + rng.uniform(0.5, 3.0)) / frame) * frame)
    return Script(vid, duration, background, shapes, events, sentences)


def shapes_at(script: Script, t: float) -> list[Shape]:
    """Every shape's state at time ``t`` (colour changes blend while they happen)."""
    out = []
    for k, initial in enumerate(script.shapes):
        s = replace(initial)
        blend: tuple[str, str, float] | None = None
        for ev in script.events:
            if ev.obj != k or ev.start > t:
                continue
            progress = (t - ev.start) / (ev.end - ev.start)
            if ev.action == "change_colour" and progress < 1.0 and ev.to_colour:
                blend = (s.colour, ev.to_colour, progress)
            s = _apply(s, ev, progress)
        out.append(s if blend is None else replace(s, colour=f"{blend[0]}>{blend[1]}>{blend[2]:.4f}"))
    return out


# ----------------------------------------------------------------------------- rasterising

def _rgb(colour: str) -> np.ndarray:
    if ">" in colour:
        a, b, p = colour.split(">")
        return (1 - float(p)) * np.array(COLOURS[a], np.float32) + float(p) * np.array(COLOURS[b], np.float32)
    return np.array(COLOURS[colour], np.float32)


def _mask(s: Shape, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    r = s.size * s.shown
    dx, dy = xs - s.x, ys - s.y
    a = math.radians(s.angle)
    u = dx * math.cos(a) + dy * math.sin(a)
    v = -dx * math.sin(a) + dy * math.cos(a)
    if s.shape == "circle":
        return dx * dx + dy * dy <= r * r
    if s.shape == "square":
        return (np.abs(u) <= r) & (np.abs(v) <= r)
    if s.shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.35 * r
    # triangle: equilateral, circumradius 1.3 r, one vertex along -v
    R = 1.3 * r
    inside = np.ones_like(u, dtype=bool)
    for k in range(3):
        theta = math.radians(90 + 120 * k)
        inside &= (u * math.cos(theta) + v * math.sin(theta)) <= R / 2
    return inside


def background_image(name: str, size: int, texture: np.ndarray) -> np.ndarray:
    """[size, size, 3] float background: a vertical grade between two greys plus a fixed texture."""
    top, bottom = (np.array(c, np.float32) for c in BACKGROUNDS[name])
    w = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    return np.broadcast_to((1 - w) * top + w * bottom, (size, size, 3)) + texture


def render_frame(script: Script, t: float, background: np.ndarray) -> np.ndarray:
    """[size, size, 3] uint8 frame of ``script`` at time ``t``."""
    size = background.shape[0]
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size
    xs, ys = np.meshgrid(grid, grid)
    img = background.copy()
    for s in shapes_at(script, t):
        if s.shown * s.size * size < 0.5:
            continue
        img[_mask(s, xs, ys)] = _rgb(s.colour)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def write_mp4(path: Path, frames: Callable[[int], np.ndarray], n_frames: int, fps: int, codec: str,
              crf: int, bit_rate: int = 2_000_000) -> None:
    """Encode ``n_frames`` frames (``frames(i)`` -> [H, W, 3] uint8) to an MP4 at ``fps``."""
    import av

    first = frames(0)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = first.shape[1], first.shape[0]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "medium", "threads": "1"}
        else:
            stream.bit_rate = bit_rate
            stream.options = {"threads": "1"}
        for i in range(n_frames):
            img = first if i == 0 else frames(i)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def render_video(script: Script, cfg: VideoSetConfig, path: Path, rng: np.random.Generator) -> None:
    """Render ``script`` to an MP4 at ``path``."""
    texture = rng.normal(0.0, 4.0, size=(cfg.size, cfg.size, 1)).astype(np.float32)
    background = background_image(script.background, cfg.size, texture)
    n_frames = int(round(script.duration * cfg.fps))
    write_mp4(path, lambda i: render_frame(script, i / cfg.fps, background), n_frames, cfg.fps,
              cfg.codec, cfg.crf, cfg.bit_rate)


# ----------------------------------------------------------------------------- the folder

def split_of(index: int) -> str:
    return SPLIT_OF_REMAINDER.get(index % 10, "train")


def _video_json(script: Script, split: str) -> dict[str, Any]:
    windows = [[e.start, e.end] for e in script.events]
    return {
        "vid": script.vid, "split": split, "duration": script.duration,
        "captions": [". ".join(script.sentences) or "nothing happens"],
        "paragraph": {"sentences": list(script.sentences), "windows": windows},
        "events": [{"object": script.shapes[e.obj].shape, "action": e.action, "to_colour": e.to_colour,
                    "phrase": sent, "start": e.start, "end": e.end}
                   for e, sent in zip(script.events, script.sentences)],
        "background": script.background,
        "shapes": [asdict(s) for s in script.shapes],
        "questions": [], "partner": None, "relation": None,
    }


def render_synthvl_video(out_dir: str | Path, preset: str = "small", seed: int = 0,
                         progress: Callable[[int], None] | None = None, **overrides: Any) -> Path:
    """Write a SynthVL-video folder: ``videos/<vid>.mp4``, ``{split}.jsonl``,
    ``videos_{split}.jsonl`` and ``meta.json``. ``progress(1)`` after each video."""
    cfg = make_video_config(preset, **overrides)
    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    records: dict[str, list[GroundingRecord]] = {s: [] for s in SPLITS}
    videos: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for index in range(cfg.n_videos):
        plan_rng, pixel_rng = (np.random.default_rng(s) for s in
                               np.random.SeedSequence([int(seed), 0x51DE0, index]).spawn(2))
        split = split_of(index)
        script = plan_script(f"svv{index:04d}", cfg, plan_rng)
        render_video(script, cfg, out / "videos" / f"{script.vid}.mp4", pixel_rng)
        for q, (ev, sentence) in enumerate(zip(script.events, script.sentences)):
            records[split].append(GroundingRecord(f"{script.vid}_q{q}", script.vid, script.duration,
                                                  sentence, ((ev.start, ev.end),), split=split,
                                                  extra={"event_index": q, "action": ev.action}))
        videos[split].append(_video_json(script, split))
        if progress is not None:
            progress(1)
    for split in SPLITS:
        write_grounding_jsonl(records[split], out / f"{split}.jsonl")
        with open(out / f"videos_{split}.jsonl", "w", encoding="utf-8") as f:
            for v in videos[split]:
                f.write(json.dumps(v) + "\n")
    counts = {s: {"videos": len(videos[s]), "queries": len(records[s])} for s in SPLITS}
    meta = {"format": "synthvl", "kind": "video", "version": FORMAT_VERSION, "preset": preset,
            "seed": int(seed), "overrides": dict(sorted(overrides.items())), "params": asdict(cfg),
            "splits": list(SPLITS), "counts": counts, "colours": list(COLOURS), "shapes": list(SHAPES),
            "actions": list(ACTIONS),
            "layout": {"videos/<vid>.mp4": "the rendered videos", "{split}.jsonl": "grounding records",
                       "videos_{split}.jsonl": "per video: captions, paragraph, events, shapes",
                       "features.h5": "written by `vidlang extract videos --out features.h5`"}}
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return out


def synth_video_command(out: Path, preset: str, seed: int, overrides: list[str]) -> None:
    """``vidlang synth --video``: render with a progress bar and print what was written."""
    import time

    import yaml
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    params: dict[str, Any] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set: expected key=value, got {item!r}")
        params[key.strip()] = yaml.safe_load(value)
    cfg = make_video_config(preset, **params)
    console = Console()
    started = time.perf_counter()
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(f"synthvl-video {preset} seed {seed}", total=cfg.n_videos)
        render_synthvl_video(out, preset, seed, progress=lambda n: bar.advance(task, n), **params)
    meta = json.loads((Path(out) / "meta.json").read_text(encoding="utf-8"))
    counts = ", ".join(f"{s}: {c['videos']} videos / {c['queries']} queries" for s, c in meta["counts"].items())
    console.print(f"wrote {out} in {time.perf_counter() - started:.1f} s ({counts}; {cfg.size}x{cfg.size}, "
                  f"{cfg.fps} fps). Next: vidlang extract {Path(out) / 'videos'} --extractor basic "
                  f"--out {Path(out) / 'features.h5'}", highlight=False, soft_wrap=True)
