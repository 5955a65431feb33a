"""The hidden world of SynthVL: verb and object prototypes and the composition map.

An event (verb, object) has a visual *signature*: a fixed two-layer nonlinear map of the two
hidden prototypes, projected to ``feature_dim`` and scaled to norm ``signal_scale``. The map
is the same for every composition, so a verb-object pair never seen in training still has a
predictable signature (the compositional generalisation that ``test_novel`` measures).
The world depends only on the seed and the feature-shape parameters, never on split sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidlang.data.synthvl.config import SynthVLConfig
from vidlang.data.synthvl.vocab import OBJECTS, VERB_NAMES, compositions
from vidlang.errors import ConfigError

Composition = tuple[str, str]  # (verb base form, object)


@dataclass(frozen=True)
class World:
    """Prototypes, the signature of every composition, and the seen / novel partition."""

    signatures: dict[Composition, np.ndarray]
    seen: tuple[Composition, ...]
    novel: tuple[Composition, ...]
    dominant_object: dict[str, str]  # verb -> the object it co-occurs with under the spurious knob

    def signature(self, comp: Composition) -> np.ndarray:
        return self.signatures[comp]


def _signature_map(cfg: SynthVLConfig, rng: np.random.Generator) -> dict[Composition, np.ndarray]:
    k, h, d = cfg.latent_dim, cfg.hidden_dim, cfg.feature_dim
    verb_proto = {v: rng.standard_normal(k) / np.sqrt(k) for v in VERB_NAMES}
    obj_proto = {o: rng.standard_normal(k) / np.sqrt(k) for o in OBJECTS}
    # composition_nonlinearity: the default 1.5 is clearly nonlinear (not a sum of a verb and an
    # object vector) yet keeps pairs that share a verb or an object similar (cosine ~0.45)
    w_hidden = rng.standard_normal((h, 2 * k)) * (cfg.composition_nonlinearity / np.sqrt(2.0))
    w_out = rng.standard_normal((d, h)) / np.sqrt(h)
    out: dict[Composition, np.ndarray] = {}
    for verb, obj in compositions():
        hidden = np.tanh(w_hidden @ np.concatenate([verb_proto[verb], obj_proto[obj]]))
        sig = w_out @ hidden
        out[(verb, obj)] = sig * (cfg.signal_scale / np.linalg.norm(sig))
    return out


def _hold_out_novel(cfg: SynthVLConfig, rng: np.random.Generator) -> tuple[list[Composition], list[Composition]]:
    """Pick ``novel_fraction`` of the compositions so every verb keeps two seen objects and
    every object keeps one seen verb (a novel pair is then made of familiar parts)."""
    comps = compositions()
    target = round(cfg.novel_fraction * len(comps))
    seen_objs_of_verb = {v: sum(1 for vv, _ in comps if vv == v) for v in VERB_NAMES}
    seen_verbs_of_obj = {o: sum(1 for _, oo in comps if oo == o) for o in OBJECTS}
    novel: set[Composition] = set()
    for idx in rng.permutation(len(comps)):
        if len(novel) >= target:
            break
        verb, obj = comps[int(idx)]
        if seen_objs_of_verb[verb] > 2 and seen_verbs_of_obj[obj] > 1:
            novel.add((verb, obj))
            seen_objs_of_verb[verb] -= 1
            seen_verbs_of_obj[obj] -= 1
    if cfg.n_test_novel > 0 and len(novel) < 2:
        raise ConfigError(f"synthvl.novel_fraction: {cfg.novel_fraction} holds out {len(novel)} "
                          "compositions; test_novel needs at least 2")
    return [c for c in comps if c not in novel], [c for c in comps if c in novel]


def build_world(cfg: SynthVLConfig, seed: int) -> World:
    """The world of ``seed``: same seed and shape parameters -> the same signatures and splits."""
    root = np.random.SeedSequence([int(seed), 0x5E1])
    sig_rng, split_rng, bias_rng = (np.random.default_rng(s) for s in root.spawn(3))
    signatures = _signature_map(cfg, sig_rng)
    seen, novel = _hold_out_novel(cfg, split_rng)
    dominant = {}
    for verb in VERB_NAMES:
        objs = [o for v, o in seen if v == verb]
        dominant[verb] = objs[int(bias_rng.integers(len(objs)))]
    return World(signatures, tuple(seen), tuple(novel), dominant)
