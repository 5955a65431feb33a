"""SynthVL parameters: one flat dataclass, the named presets, and ``key=value`` overrides.

Every field is written to ``meta.json``; every preset value can be overridden by name (the CLI's
``--set key=value`` and :func:`vidlang.data.synthvl.generate`'s keyword arguments). Unknown keys
and bad values raise :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

from vidlang.errors import ConfigError

SPLITS = ("train", "val", "test", "test_novel")


@dataclass(frozen=True)
class SynthVLConfig:
    """All generation parameters (times in seconds). Phenomenon knobs are off by default."""

    # split sizes (videos)
    n_train: int = 800
    n_val: int = 100
    n_test: int = 200
    n_test_novel: int = 150
    # features
    feature_dim: int = 512
    latent_dim: int = 24  # size of the hidden verb / object prototypes
    hidden_dim: int = 64  # width of the fixed nonlinear composition map
    composition_nonlinearity: float = 1.5  # gain inside the map's tanh: 0 ~ additive, large ~ lookup
    clip_seconds: float = 1.0
    signal_scale: float = 1.0  # norm of an event's signature at full amplitude
    scene_scale: float = 0.8  # norm of the per-video scene vector (constant over the video)
    # per-dimension std of the clip noise. A signature's projection then sees noise of this std
    # whatever feature_dim is, so difficulty does not change with the dimension (at 512-d
    # the noise vector's norm is about 1, the signature's norm)
    noise_std: float = 0.045
    noise_smoothness: float = 0.6  # AR(1) coefficient of the noise over clips, in [0, 1)
    ramp_seconds: float = 1.5  # onset / offset ramp length inside each event window
    # timeline
    events_min: int = 2
    events_max: int = 5
    moment_mean: float = 7.0
    moment_std: float = 3.0
    moment_min: float = 2.0
    background_min: float = 0.1  # fraction of the video that is background (between events)
    background_max: float = 0.35
    # language
    captions_per_video: int = 2
    questions_per_video: int = 2
    context_query_prob: float = 0.3  # share of grounding queries phrased with temporal context
    repeat_event_prob: float = 0.15  # share of videos where one event happens twice
    # compositional split
    novel_fraction: float = 0.15  # share of verb-object compositions held out for test_novel
    # phenomena (all off by default)
    spurious_cooccurrence: float = 0.0
    hard_negative_fraction: float = 0.0
    shuffled_order_distractors: float = 0.0
    # words between a verb and its object: 0 "opens door", 1 "opens the door" (default),
    # 2 "opens the same door", 3 "opens the very same door". With spurious_cooccurrence, gap 0
    # makes a masked object predictable from the token right before it (issue 17)
    verb_object_gap: int = 1

    def split_size(self, split: str) -> int:
        return int(getattr(self, f"n_{split}"))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> SynthVLConfig:
        """Raise ConfigError naming the first bad key; return self for chaining."""
        for name in ("spurious_cooccurrence", "hard_negative_fraction", "shuffled_order_distractors",
                     "context_query_prob", "repeat_event_prob", "novel_fraction"):
            _check(name, 0.0 <= getattr(self, name) <= 1.0, "must be in [0, 1]", getattr(self, name))
        for name in ("n_train", "n_val", "n_test", "n_test_novel"):
            _check(name, getattr(self, name) >= 1, "must be >= 1", getattr(self, name))
        for name in ("feature_dim", "latent_dim", "hidden_dim"):
            _check(name, getattr(self, name) >= 2, "must be >= 2", getattr(self, name))
        for name in ("clip_seconds", "moment_mean", "moment_min", "signal_scale",
                     "composition_nonlinearity"):
            _check(name, getattr(self, name) > 0, "must be > 0", getattr(self, name))
        for name in ("moment_std", "scene_scale", "noise_std", "ramp_seconds"):
            _check(name, getattr(self, name) >= 0, "must be >= 0", getattr(self, name))
        _check("noise_smoothness", 0.0 <= self.noise_smoothness < 1.0, "must be in [0, 1)",
               self.noise_smoothness)
        _check("events_min", 2 <= self.events_min <= self.events_max <= 6,
               "need 2 <= events_min <= events_max <= 6", (self.events_min, self.events_max))
        _check("background_min", 0.0 <= self.background_min <= self.background_max < 1.0,
               "need 0 <= background_min <= background_max < 1",
               (self.background_min, self.background_max))
        pairs = self.hard_negative_fraction + self.shuffled_order_distractors
        _check("hard_negative_fraction", pairs <= 1.0,
               "plus shuffled_order_distractors must be <= 1", pairs)
        _check("verb_object_gap", 0 <= self.verb_object_gap <= 3, "must be in 0..3",
               self.verb_object_gap)
        _check("captions_per_video", self.captions_per_video >= 1, "must be >= 1",
               self.captions_per_video)
        _check("questions_per_video", self.questions_per_video >= 0, "must be >= 0",
               self.questions_per_video)
        return self


def _check(key: str, ok: bool, why: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"synthvl.{key}: {why}, got {value!r}")


PRESETS: dict[str, dict[str, Any]] = {
    # for tests: tens of videos, 32-d features, about a second to generate
    "tiny": dict(n_train=48, n_val=12, n_test=16, n_test_novel=12, feature_dim=32, latent_dim=12,
                 hidden_dim=24, events_max=4, moment_mean=6.0, moment_std=2.0, moment_min=2.0,
                 ramp_seconds=1.0),
    # the default: demo and the docs' results; every model trains on it in minutes on 2 CPU cores
    "small": dict(n_train=800, n_val=100, n_test=200, n_test_novel=150),
    # Charades-STA-like statistics: ~30 s videos, ~8 s moments
    "charades": dict(n_train=2500, n_val=300, n_test=800, n_test_novel=300, events_min=2,
                     events_max=4, moment_mean=7.5, moment_std=3.5, moment_min=2.0,
                     background_max=0.3),
    # ActivityNet-Captions-like: ~120 s videos, moments ~25-35 % of the video, 2 s clips
    "activitynet": dict(n_train=1500, n_val=200, n_test=500, n_test_novel=200, clip_seconds=2.0,
                        events_min=2, events_max=3, moment_mean=36.0, moment_std=12.0,
                        moment_min=6.0, background_min=0.1, background_max=0.3, ramp_seconds=4.0),
}


def _field_types() -> dict[str, type]:
    return {f.name: type(f.default) for f in fields(SynthVLConfig)}


def coerce_value(key: str, value: Any) -> Any:
    """Convert ``value`` (a string from the command line, or a Python value) to ``key``'s type."""
    types = _field_types()
    if key not in types:
        raise ConfigError(f"synthvl: unknown parameter {key!r}; known: {', '.join(sorted(types))}")
    kind = types[key]
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"synthvl.{key}: expected {kind.__name__}, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"synthvl.{key}: expected {kind.__name__}, got {value!r}")
    if kind is int and float(value) != int(value):
        raise ConfigError(f"synthvl.{key}: expected an integer, got {value!r}")
    return kind(value)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["n_train=100", "spurious_cooccurrence=0.9"]`` -> typed overrides (ConfigError otherwise)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = coerce_value(key.strip(), raw.strip())
    return out


def make_config(preset: str = "small", **overrides: Any) -> SynthVLConfig:
    """The preset's parameters with ``overrides`` applied, validated."""
    if preset not in PRESETS:
        raise ConfigError(f"synthvl: unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    params = {k: coerce_value(k, v) for k, v in {**PRESETS[preset], **overrides}.items()}
    return SynthVLConfig(**params).validate()
