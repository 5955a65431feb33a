"""Video plans: which events happen in which order and when, per split, with the knobs applied.

A plan is pure bookkeeping (no features, no text). The phenomena knobs act here:
``spurious_cooccurrence`` biases the object drawn for a verb in train / val,
``hard_negative_fraction`` adds videos that differ from another by exactly one event, and
``shuffled_order_distractors`` adds videos with another video's events in a different order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidlang.data.synthvl.config import SPLITS, SynthVLConfig
from vidlang.data.synthvl.world import Composition, World
from vidlang.errors import ConfigError

BIASED_SPLITS = ("train", "val")  # splits drawn from the training distribution
_MAX_TRIES = 1000


@dataclass(frozen=True)
class VideoPlan:
    """One video: its events in temporal order, their windows (s), and how it was made."""

    vid: str
    split: str
    duration: float
    events: tuple[Composition, ...]
    windows: tuple[tuple[float, float], ...]
    partner: str | None = None  # the video this one was derived from, if any
    relation: str | None = None  # "hard_negative" or "shuffled_order"


class EventSampler:
    """Draws compositions of one split: its pool (seen or novel) and, in biased splits, the
    spurious verb -> object preference of strength ``bias``."""

    def __init__(self, pool: tuple[Composition, ...], world: World, bias: float) -> None:
        self.pool = pool
        self.objects_of: dict[str, list[str]] = {}
        for verb, obj in pool:
            self.objects_of.setdefault(verb, []).append(obj)
        self.verbs = sorted(self.objects_of)
        self.world = world
        self.bias = bias

    def draw(self, rng: np.random.Generator) -> Composition:
        verb = self.verbs[int(rng.integers(len(self.verbs)))]
        objs = self.objects_of[verb]
        dominant = self.world.dominant_object[verb]
        if self.bias > 0 and dominant in objs and rng.random() < self.bias:
            return verb, dominant
        return verb, objs[int(rng.integers(len(objs)))]

    def draw_excluding(self, rng: np.random.Generator, exclude: set[Composition]) -> Composition:
        """A draw not in ``exclude``; falls back to a uniform choice when the bias makes
        rejection hopeless (e.g. strength 1 and the dominant pair excluded)."""
        for _ in range(50):
            comp = self.draw(rng)
            if comp not in exclude:
                return comp
        rest = [c for c in self.pool if c not in exclude]
        if not rest:
            raise ConfigError("synthvl: not enough compositions in this split's pool")
        return rest[int(rng.integers(len(rest)))]


def _sequence(cfg: SynthVLConfig, sampler: EventSampler, rng: np.random.Generator,
              allow_repeat: bool = True) -> list[Composition]:
    """Distinct events; with ``repeat_event_prob`` one event recurs at a non-adjacent place."""
    n = int(rng.integers(cfg.events_min, cfg.events_max + 1))
    repeat = allow_repeat and n >= 3 and rng.random() < cfg.repeat_event_prob
    distinct = n - 1 if repeat else n
    events: list[Composition] = []
    while len(events) < distinct:
        events.append(sampler.draw_excluding(rng, set(events)))
    if repeat:
        i = int(rng.integers(distinct))
        slots = [j for j in range(distinct + 1) if j not in (i, i + 1)]
        events.insert(slots[int(rng.integers(len(slots)))], events[i])
    return events


def _timeline(cfg: SynthVLConfig, n: int, rng: np.random.Generator) -> tuple[float, list[tuple[float, float]]]:
    """Moment lengths from a normal truncated below at ``moment_min`` (by rejection), a
    background share in [background_min, background_max] split over the n + 1 gaps."""
    lengths = []
    for _ in range(n):
        for _ in range(_MAX_TRIES):
            length = rng.normal(cfg.moment_mean, cfg.moment_std)
            if length >= cfg.moment_min:
                break
        else:
            raise ConfigError("synthvl.moment_min: far above moment_mean; cannot draw moment lengths")
        lengths.append(length)
    background = rng.uniform(cfg.background_min, cfg.background_max)
    total = sum(lengths) / (1.0 - background)
    gaps = rng.dirichlet(np.ones(n + 1)) * (total - sum(lengths))
    windows, t = [], 0.0
    for gap, length in zip(gaps[:n], lengths):
        start = t + gap
        t = start + length
        windows.append((round(start, 2), round(t, 2)))
    duration = round(total, 2)
    if windows[-1][1] > duration:  # rounding only; keep the last window inside the video
        windows[-1] = (windows[-1][0], duration)
    return duration, windows


def _no_adjacent_repeat(events: list[Composition]) -> bool:
    return all(a != b for a, b in zip(events, events[1:]))


def _shuffled(events: list[Composition], rng: np.random.Generator) -> list[Composition] | None:
    for _ in range(50):
        perm = [events[int(i)] for i in rng.permutation(len(events))]
        if perm != events and _no_adjacent_repeat(perm):
            return perm
    return None


def _one_event_changed(events: list[Composition], sampler: EventSampler,
                       rng: np.random.Generator) -> list[Composition]:
    unique = [i for i, e in enumerate(events) if events.count(e) == 1]
    pos = unique[int(rng.integers(len(unique)))]
    out = list(events)
    out[pos] = sampler.draw_excluding(rng, set(events))
    return out


def pair_counts(cfg: SynthVLConfig, n_videos: int) -> tuple[int, int]:
    """(hard-negative pairs, shuffled-order pairs) of a split of ``n_videos`` videos: each knob
    is the share of the split's videos that belong to such a pair."""
    hard = round(cfg.hard_negative_fraction * n_videos / 2)
    shuffled = round(cfg.shuffled_order_distractors * n_videos / 2)
    if 2 * (hard + shuffled) > n_videos:
        raise ConfigError("synthvl: hard_negative_fraction + shuffled_order_distractors must be <= 1")
    return hard, shuffled


def plan_split(cfg: SynthVLConfig, world: World, split: str, seed: int) -> list[VideoPlan]:
    """Every video of ``split``, deterministic in (seed, split, parameters)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x91A, SPLITS.index(split)]))
    pool = world.novel if split == "test_novel" else world.seen
    bias = cfg.spurious_cooccurrence if split in BIASED_SPLITS else 0.0
    sampler = EventSampler(pool, world, bias)
    n_videos = cfg.split_size(split)
    n_hard, n_shuf = pair_counts(cfg, n_videos)
    # bases [n_hard, n_hard + n_shuf) get a reordered twin, so their events are all distinct
    bases = [_sequence(cfg, sampler, rng, allow_repeat=not n_hard <= k < n_hard + n_shuf)
             for k in range(n_videos - n_hard - n_shuf)]
    # (events, index of the base it derives from, relation)
    items: list[tuple[list[Composition], int | None, str | None]] = [(b, None, None) for b in bases]
    for k in range(n_hard):
        items.append((_one_event_changed(bases[k], sampler, rng), k, "hard_negative"))
    for k in range(n_hard, n_hard + n_shuf):
        perm = _shuffled(bases[k], rng)
        if perm is None:
            raise ConfigError("synthvl.shuffled_order_distractors: cannot reorder a video")
        items.append((perm, k, "shuffled_order"))
    order = rng.permutation(len(items))
    vid_of = {int(item_idx): f"{split}_{pos:05d}" for pos, item_idx in enumerate(order)}
    plans = []
    for pos, item_idx in enumerate(order):
        events, base, relation = items[int(item_idx)]
        duration, windows = _timeline(cfg, len(events), rng)
        plans.append(VideoPlan(f"{split}_{pos:05d}", split, duration, tuple(events), tuple(windows),
                               None if base is None else vid_of[base], relation))
    return plans
