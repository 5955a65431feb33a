"""Clip features of a planned video: scene + ramped event signatures + smooth noise.

Clip ``i`` covers ``[i * clip_seconds, (i + 1) * clip_seconds)``; its event amplitude is the
mean of the event's trapezoid (0 -> 1 over ``ramp_seconds`` after the onset, 1 -> 0 before the
offset) at a few points inside the clip, so a clip half inside a window gets about half the
signature. The noise is an AR(1) process over clips (``noise_smoothness``), so neighbouring
clips look alike, as real clip features do.
"""

from __future__ import annotations

import math

import numpy as np

from vidlang.data.synthvl.config import SynthVLConfig
from vidlang.data.synthvl.plans import VideoPlan
from vidlang.data.synthvl.world import World

_SUBSAMPLES = 4


def num_clips(duration: float, clip_seconds: float) -> int:
    """Clips of a video: ceil(duration / clip_seconds), at least 1."""
    return max(1, math.ceil(round(duration / clip_seconds, 6)))


def trapezoid(t: np.ndarray, start: float, end: float, ramp: float) -> np.ndarray:
    """Amplitude at times ``t`` of an event on [start, end] with linear ramps of ``ramp`` s."""
    ramp = min(ramp, (end - start) / 2)
    if ramp <= 0:
        return ((t >= start) & (t < end)).astype(np.float64)
    rise = (t - start) / ramp
    fall = (end - t) / ramp
    return np.clip(np.minimum(rise, fall), 0.0, 1.0)


def event_amplitudes(plan: VideoPlan, cfg: SynthVLConfig) -> np.ndarray:
    """[n_events, T] amplitude of each event in each clip."""
    t_clips = num_clips(plan.duration, cfg.clip_seconds)
    offsets = (np.arange(_SUBSAMPLES) + 0.5) / _SUBSAMPLES
    times = (np.arange(t_clips)[:, None] + offsets[None, :]) * cfg.clip_seconds
    return np.stack([trapezoid(times, s, e, cfg.ramp_seconds).mean(axis=1) for s, e in plan.windows])


def render(plan: VideoPlan, world: World, cfg: SynthVLConfig, rng: np.random.Generator) -> np.ndarray:
    """[T, feature_dim] float32 features of one video."""
    amps = event_amplitudes(plan, cfg)
    sigs = np.stack([world.signature(c) for c in plan.events])
    d = cfg.feature_dim
    scene = rng.standard_normal(d)
    scene *= cfg.scene_scale / np.linalg.norm(scene)
    eps = rng.standard_normal((amps.shape[1], d)) * cfg.noise_std
    rho = cfg.noise_smoothness
    innovation = math.sqrt(1.0 - rho * rho)
    noise = np.empty_like(eps)
    noise[0] = eps[0]
    for t in range(1, len(eps)):
        noise[t] = rho * noise[t - 1] + innovation * eps[t]
    return (scene[None, :] + amps.T @ sigs + noise).astype(np.float32)
