"""SynthVL plans and rendering hold their invariants for any valid parameters (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vidlang.data.synthvl import SPLITS, build_world, make_config
from vidlang.data.synthvl.language import grounding_query, questions
from vidlang.data.synthvl.plans import plan_split
from vidlang.data.synthvl.render import num_clips, render


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), events_min=st.integers(2, 4), extra=st.integers(0, 2),
       moment_mean=st.floats(1.0, 40.0), moment_std=st.floats(0.0, 10.0),
       clip_seconds=st.sampled_from([0.5, 1.0, 2.0]), repeat=st.floats(0.0, 1.0),
       hard=st.floats(0.0, 0.5), shuffled=st.floats(0.0, 0.5), bias=st.floats(0.0, 1.0))
def test_plans_are_valid_for_any_parameters(seed: int, events_min: int, extra: int, moment_mean: float,
                                            moment_std: float, clip_seconds: float, repeat: float,
                                            hard: float, shuffled: float, bias: float) -> None:
    cfg = make_config("tiny", n_train=12, n_val=4, n_test=6, n_test_novel=4, events_min=events_min,
                      events_max=events_min + extra, moment_mean=moment_mean, moment_std=moment_std,
                      moment_min=min(1.0, moment_mean), clip_seconds=clip_seconds,
                      repeat_event_prob=repeat, hard_negative_fraction=hard,
                      shuffled_order_distractors=shuffled, spurious_cooccurrence=bias, feature_dim=8)
    world = build_world(cfg, seed)
    rng = np.random.default_rng(seed)
    for split in SPLITS:
        plans = plan_split(cfg, world, split, seed)
        assert len(plans) == cfg.split_size(split) == len({p.vid for p in plans})
        pool = set(world.novel if split == "test_novel" else world.seen)
        for plan in plans:
            assert cfg.events_min <= len(plan.events) <= cfg.events_max
            assert set(plan.events) <= pool
            assert all(a != b for a, b in zip(plan.events, plan.events[1:]))  # no adjacent repeat
            assert len(set(plan.events)) >= len(plan.events) - 1  # at most one event twice
            ends = [0.0] + [e for _, e in plan.windows]
            for (s, e), prev_end in zip(plan.windows, ends):
                assert prev_end <= s < e <= plan.duration
            for i in range(len(plan.events)):
                grounding_query(plan, i, cfg, rng)  # raises if a repeat cannot be resolved
            for q in questions(plan, cfg, sorted(pool), rng):
                assert len(set(q.candidates)) == 5 and 0 <= q.answer < 5
            feats = render(plan, world, cfg, rng)
            assert feats.shape == (num_clips(plan.duration, cfg.clip_seconds), 8)
            assert feats.shape[0] == math.ceil(round(plan.duration / cfg.clip_seconds, 6))
            assert feats.dtype == np.float32 and np.isfinite(feats).all()
