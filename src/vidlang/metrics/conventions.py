"""Grounding evaluation conventions: the switches of evaluation.md section 5, and the named
presets that reproduce each reference evaluator (looked up in tables, never by if/elif).

A metric key carries the tag of the convention that produced it, e.g.
``R@1,IoU>=0.5 [mmn]``. When an override changes a preset's setting the tag gets a ``*``
(``[mmn*]``), because the numbers are then no longer the reference evaluator's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from vidlang.errors import ConfigError

IOU_OPS = {"ge": ">=", "gt": ">"}
MIOU_KINDS = ("top1", "best_of_k")
TIME_BASES = ("seconds", "normalised")


@dataclass(frozen=True)
class GroundingConvention:
    """How predictions are ranked, suppressed and counted as hits.

    ``iou_op``: ``ge`` (hit if IoU >= m) or ``gt`` (strict). ``nms_thresh``: suppress
    windows whose IoU with a kept one is > this (None: no NMS). ``nms_kind``: ``hard`` or
    ``soft`` (Gaussian, ``soft_sigma``). ``topk_cap``: keep at most this many after NMS.
    ``recall_at``: the n of R@n. ``miou``: which mean-IoU figures to add (``top1``: IoU of
    the first kept window; ``best_of_k``: best IoU among the first ``miou_k``).
    ``time_base``: ``normalised`` divides GT and predictions by the duration and clips the
    predictions to [0, 1] (CPL). ``clamp_gt``: clip GT to [0, duration] and skip queries left
    without a window (MMN). ``sort_by_score``: rank by score (stable); False keeps list order.
    """

    name: str
    iou_op: str = "ge"
    nms_thresh: float | None = 0.5
    nms_kind: str = "hard"
    soft_sigma: float = 0.5
    topk_cap: int | None = None
    thresholds: tuple[float, ...] = (0.3, 0.5, 0.7)
    recall_at: tuple[int, ...] = (1, 5)
    miou: tuple[str, ...] = ("top1",)
    miou_k: int = 5
    time_base: str = "seconds"
    clamp_gt: bool = False
    sort_by_score: bool = True
    modified: bool = field(default=False, compare=False)

    @property
    def tag(self) -> str:
        return f"[{self.name}{'*' if self.modified else ''}]"

    @property
    def op_symbol(self) -> str:
        return IOU_OPS[self.iou_op]

    def describe(self) -> str:
        """One line naming every setting, for the CLI and docs."""
        nms = "none" if self.nms_thresh is None else f"{self.nms_kind} IoU>{self.nms_thresh:g}"
        cap = "none" if self.topk_cap is None else str(self.topk_cap)
        return (f"{self.tag} hit IoU{self.op_symbol}m; NMS {nms}; top-k cap {cap}; "
                f"thresholds {', '.join(f'{t:g}' for t in self.thresholds)}; "
                f"R@{'/'.join(map(str, self.recall_at))}; mIoU {', '.join(self.miou) or 'none'}; "
                f"time base {self.time_base}; clamp GT {self.clamp_gt}; "
                f"ranked by {'score' if self.sort_by_score else 'list order'}")


PRESETS: dict[str, GroundingConvention] = {
    # MCG-NJU/MMN mmn/data/datasets/evaluation.py: >= hit, greedy NMS (> 0.5), all survivors.
    "mmn": GroundingConvention("mmn", iou_op="ge", nms_thresh=0.5, topk_cap=None,
                               thresholds=(0.3, 0.5, 0.7), clamp_gt=True),
    # microsoft/2D-TAN lib/core/eval.py: strict > hit, NMS keeps at most 5, mIoU of the top-1.
    "2dtan": GroundingConvention("2dtan", iou_op="gt", nms_thresh=0.5, topk_cap=5,
                                 thresholds=(0.3, 0.5, 0.7), miou=("top1",)),
    # minghangz/cpl runners/main_runner.py: normalised times, no NMS, top 5, >=.
    "cpl": GroundingConvention("cpl", iou_op="ge", nms_thresh=None, topk_cap=5,
                               thresholds=(0.1, 0.3, 0.5, 0.7, 0.9), miou=("top1", "best_of_k"),
                               time_base="normalised"),
    # jayleicn/moment_detr standalone_eval: first listed window for R1, >=, mAP over 0.5:0.95.
    "moment_detr": GroundingConvention("moment_detr", iou_op="ge", nms_thresh=None,
                                       topk_cap=10, thresholds=(0.5, 0.7), recall_at=(1,),
                                       sort_by_score=False),
}
PRESET_ALIASES = {"qvh": "moment_detr", "qvhighlights": "moment_detr"}

# Per-dataset settings of each preset (thresholds usually reported, NMS threshold).
DATASET_SETTINGS: dict[tuple[str, str], dict[str, Any]] = {
    ("mmn", "charades_sta"): {"thresholds": (0.5, 0.7), "nms_thresh": 0.5},
    ("mmn", "activitynet"): {"thresholds": (0.3, 0.5, 0.7), "nms_thresh": 0.5},
    ("mmn", "tacos"): {"thresholds": (0.1, 0.3, 0.5), "nms_thresh": 0.4},
    ("2dtan", "charades_sta"): {"thresholds": (0.5, 0.7), "nms_thresh": 0.45},
    ("2dtan", "activitynet"): {"thresholds": (0.3, 0.5, 0.7), "nms_thresh": 0.5},
    ("2dtan", "tacos"): {"thresholds": (0.1, 0.3, 0.5, 0.7), "nms_thresh": 0.4},
    # SynthVL small is Charades-shaped (N 16): 2D-TAN's Charades NMS (what TwoDTANConfig set
    # before suppression moved out of the model), the preset's thresholds
    ("2dtan", "synthvl"): {"nms_thresh": 0.45},
    ("cpl", "charades_sta"): {},
    ("cpl", "activitynet"): {},
}
DATASET_ALIASES = {"charades": "charades_sta", "anet": "activitynet",
                   "activitynet_captions": "activitynet"}

_TUPLE_KEYS = {"thresholds": float, "recall_at": int, "miou": str}
_CHOICES = {"iou_op": tuple(IOU_OPS), "time_base": TIME_BASES}


def preset_names() -> list[str]:
    return sorted(PRESETS) + sorted(PRESET_ALIASES)


def _normalise_value(key: str, value: Any) -> Any:
    if key in _TUPLE_KEYS:
        items = [value] if isinstance(value, (str, int, float)) else list(value)
        try:
            return tuple(_TUPLE_KEYS[key](v) for v in items)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: cannot read {value!r} as a list of "
                              f"{_TUPLE_KEYS[key].__name__}") from None
    return value


def _validate(conv: GroundingConvention) -> None:
    for key, choices in _CHOICES.items():
        if getattr(conv, key) not in choices:
            raise ConfigError(f"{key}: {getattr(conv, key)!r} is not one of {', '.join(choices)}")
    if conv.nms_kind not in ("hard", "soft"):
        raise ConfigError(f"nms_kind: {conv.nms_kind!r} is not one of hard, soft")
    bad_miou = [m for m in conv.miou if m not in MIOU_KINDS]
    if bad_miou:
        raise ConfigError(f"miou: {bad_miou[0]!r} is not one of {', '.join(MIOU_KINDS)}")
    if not conv.thresholds or any(not 0.0 <= t <= 1.0 for t in conv.thresholds):
        raise ConfigError(f"thresholds: need IoU thresholds in [0, 1], got {conv.thresholds}")
    if not conv.recall_at or any(n < 1 for n in conv.recall_at):
        raise ConfigError(f"recall_at: need positive ranks, got {conv.recall_at}")
    if conv.topk_cap is not None and conv.topk_cap < 1:
        raise ConfigError(f"topk_cap: must be >= 1 or None, got {conv.topk_cap}")
    if conv.nms_thresh is not None and not 0.0 <= conv.nms_thresh <= 1.0:
        raise ConfigError(f"nms_thresh: must be in [0, 1] or None, got {conv.nms_thresh}")


def resolve_convention(preset: str = "mmn", dataset: str | None = None,
                       **overrides: Any) -> GroundingConvention:
    """The preset's convention, with its per-dataset settings, then ``overrides`` applied.

    Unknown presets, datasets or keys raise :class:`ConfigError` naming the known ones."""
    name = PRESET_ALIASES.get(preset, preset)
    if name not in PRESETS:
        raise ConfigError(f"unknown grounding preset {preset!r}; known: {', '.join(preset_names())}")
    conv = PRESETS[name]
    if dataset is not None:
        ds = DATASET_ALIASES.get(dataset, dataset)
        settings = DATASET_SETTINGS.get((name, ds))
        if settings is None:
            known = sorted(d for p, d in DATASET_SETTINGS if p == name)
            raise ConfigError(f"dataset: no {name} settings for {dataset!r}; known: "
                              f"{', '.join(known) or '(none)'} (or leave dataset unset)")
        conv = dataclasses.replace(conv, **settings)
    fields = {f.name for f in dataclasses.fields(GroundingConvention)} - {"name", "modified"}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"unknown grounding option {unknown[0]!r}; known: {', '.join(sorted(fields))}")
    changes = {k: _normalise_value(k, v) for k, v in overrides.items()}
    modified = any(getattr(conv, k) != v for k, v in changes.items())
    conv = dataclasses.replace(conv, **changes, modified=modified)
    _validate(conv)
    return conv
