"""Video class labels (video id -> class) for the few-shot video-to-video metric, per dataset.

``VIDEO_LABELS`` maps a dataset name to ``fn(root, split) -> {video_id: class}``; a dataset
without an entry has no labels (the metric is then skipped with a logged reason).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from vidlang.errors import ConfigError, DataError
from vidlang.registry import Registry

LabelReader = Callable[[str | None, str], dict[str, str]]
VIDEO_LABELS: Registry[LabelReader] = Registry("video class labels")


@VIDEO_LABELS.register("synthvl")
def synthvl_labels(root: str | None, split: str) -> dict[str, str]:
    """SynthVL: a video's opening and closing actions in order, "<first verb> -> <last verb>"
    (so "open -> close" and "close -> open" are different classes)."""
    from vidlang.data.synthvl.loader import read_videos

    if root is None:
        raise ConfigError("data.root: the synthvl dataset needs the folder written by `vidlang synth`")
    videos = read_videos(root, split)[0]
    out = {}
    for v in videos:
        events = v.get("events") or []
        if not events:
            raise DataError("video has no events to label it by", record=str(v.get("vid")))
        out[str(v["vid"])] = f"{events[0]['verb']} -> {events[-1]['verb']}"
    return out


@VIDEO_LABELS.register("youcook2")
def youcook2_labels(root: str | None, split: str) -> dict[str, str]:
    """YouCook2: the annotation file's ``recipe_type`` (e.g. 113), the few-shot class."""
    from vidlang.data.catalog import default_root

    path = (Path(root) if root else default_root()) / "youcook2" / "youcookii_annotations_trainval.json"
    if not path.is_file():
        raise DataError("YouCook2 annotation file missing (recipe types)", path)
    database = json.loads(path.read_text(encoding="utf-8"))["database"]
    return {vid: str(entry["recipe_type"]) for vid, entry in database.items()
            if "recipe_type" in entry}


def video_labels(dataset: str, root: str | None, split: str) -> dict[str, str] | None:
    """Video id -> class of ``split``, or None when ``dataset`` has no label reader."""
    if dataset not in VIDEO_LABELS:
        return None
    return VIDEO_LABELS.get(dataset)(root, split)
