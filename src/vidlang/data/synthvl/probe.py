"""Closed-form probes that show what a SynthVL folder teaches and where naive models fail.

Not a model of the toolkit: three quick numpy baselines used by ``vidlang synth-probe`` and
quoted in docs/synthvl.md.

* grounding: a ridge map from a query's bag of words to the mean (per-video centred) feature of
  its window, trained on ``train``; a window's score is the mean projected clip score inside it
  minus the mean outside. Reported next to the *prior* (the average normalised train window).
  Bag of words ignores word order, so queries whose event happens twice (only the temporal
  context tells the occurrences apart) stay hard for it.
* masked object: guess a query's object from its verb alone (the most frequent object of that
  verb in train) - the shortcut that ``spurious_cooccurrence`` plants and test breaks.
* text-only QA: pick the candidate sharing most words with the other candidates, a shortcut
  that well-built distractors keep at chance (1/5).
* world: mean cosine between signatures of compositions sharing a verb, sharing an object, or
  nothing (rebuilt from ``meta.json``'s seed and parameters).
* retrieval: caption -> video with mean-pooled videos (order-blind), R@1 over the split and
  how often a caption prefers its own video to a random video, to its hard-negative twin and
  to its reordered twin.
* order: for each pair of same-events videos in another order (``shuffled_order_distractors``),
  does a paragraph pick its own video rather than the twin? Order-blind mean pooling vs an
  order-aware match of sentence i to the i-th equal segment.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidlang.data.records import GroundingRecord
from vidlang.data.synthvl.loader import SynthVLSplit, load
from vidlang.ops.windows import paired_iou

_RIDGE = 1.0


class BagOfWords:
    """Lower-cased word counts over the vocabulary of the training texts (plus a bias)."""

    def __init__(self, texts: list[str]) -> None:
        words = sorted({w for t in texts for w in self.tokens(t)})
        self.index = {w: i for i, w in enumerate(words)}

    @staticmethod
    def tokens(text: str) -> list[str]:
        return re.findall(r"[a-z]+", text.lower())

    def __call__(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(self.index) + 1))
        out[:, -1] = 1.0
        for row, text in enumerate(texts):
            for w in self.tokens(text):
                if w in self.index:
                    out[row, self.index[w]] += 1.0
        return out


def _centred(feats: np.ndarray) -> np.ndarray:
    return feats - feats.mean(axis=0, keepdims=True)


def _window_mean(feats: np.ndarray, window: tuple[float, float], clip: float) -> np.ndarray:
    first = min(int(window[0] // clip), len(feats) - 1)
    last = max(first + 1, int(np.ceil(window[1] / clip)))
    return feats[first:last].mean(axis=0)


def _read_features(data: SynthVLSplit, per_video: bool = True) -> dict[str, np.ndarray]:
    """Features of the split's videos, centred per video (drops the scene; for grounding) or
    by the split's mean clip (keeps each video's content; for whole-video matching)."""
    import h5py

    with h5py.File(data.features_path, "r") as f:
        feats = {v["vid"]: f[v["vid"]][()].astype(np.float64) for v in data.videos}
    if per_video:
        return {vid: _centred(x) for vid, x in feats.items()}
    mean = np.concatenate(list(feats.values())).mean(axis=0, keepdims=True)
    return {vid: x - mean for vid, x in feats.items()}


@dataclass
class TextToVisual:
    """Ridge regression from bag of words to visual features."""

    bow: BagOfWords
    weights: np.ndarray

    @classmethod
    def fit(cls, texts: list[str], targets: np.ndarray) -> TextToVisual:
        bow = BagOfWords(texts)
        x = bow(texts)
        gram = x.T @ x + _RIDGE * np.eye(x.shape[1])
        return cls(bow, np.linalg.solve(gram, x.T @ targets))

    def __call__(self, texts: list[str]) -> np.ndarray:
        pred = self.bow(texts) @ self.weights
        return pred / np.maximum(np.linalg.norm(pred, axis=1, keepdims=True), 1e-12)


def _best_span(scores: np.ndarray) -> tuple[int, int]:
    """Clip span [s, e) maximising mean inside minus mean outside."""
    t = len(scores)
    csum = np.concatenate([[0.0], np.cumsum(scores)])
    starts, ends = np.triu_indices(t + 1, k=1)
    lengths = ends - starts
    inside = csum[ends] - csum[starts]
    outside_len = np.maximum(t - lengths, 1)
    value = inside / lengths - np.where(lengths < t, (csum[-1] - inside) / outside_len, 0.0)
    best = int(np.argmax(value))
    return int(starts[best]), int(ends[best])


def _recall(ious: np.ndarray) -> dict[str, float]:
    arr = np.asarray(ious)
    return {"R1@0.5": float((arr >= 0.5).mean()), "R1@0.7": float((arr >= 0.7).mean()),
            "mIoU": float(arr.mean())} if len(arr) else {}


def _repeated(rec: GroundingRecord, by_vid: dict[str, dict[str, Any]]) -> bool:
    events = [(e["verb"], e["object"]) for e in by_vid[rec.video_id]["events"]]
    return events.count(events[rec.extra["event_index"]]) > 1


def fit_text_to_visual(train: SynthVLSplit) -> TextToVisual:
    """The ridge map from each train query to its window's mean (centred) feature."""
    clip = float(train.meta["params"]["clip_seconds"])
    feats = _read_features(train)
    targets = np.stack([_window_mean(feats[r.video_id], r.windows[0], clip) for r in train.grounding])
    return TextToVisual.fit([r.query for r in train.grounding], targets)


def grounding_probe(model: TextToVisual, train: SynthVLSplit,
                    evals: list[SynthVLSplit]) -> list[dict[str, Any]]:
    """Ridge bag-of-words grounding vs the prior, per split (and on repeated-event queries)."""
    clip = float(train.meta["params"]["clip_seconds"])
    prior = np.mean([[r.windows[0][0] / r.duration, r.windows[0][1] / r.duration] for r in train.grounding], axis=0)
    rows = []
    for data in evals:
        feats = _read_features(data)
        by_vid = {v["vid"]: v for v in data.videos}
        preds = model([r.query for r in data.grounding])
        spans, priors, gts, is_repeated = [], [], [], []
        for rec, pred in zip(data.grounding, preds):
            s, e = _best_span(feats[rec.video_id] @ pred)
            spans.append((s * clip, min(e * clip, rec.duration)))
            priors.append((prior[0] * rec.duration, prior[1] * rec.duration))
            gts.append(rec.windows[0])
            is_repeated.append(_repeated(rec, by_vid))
        gt = np.asarray(gts, dtype=np.float64).reshape(-1, 2)
        probe = paired_iou(np.asarray(spans, dtype=np.float64).reshape(-1, 2), gt)
        prior_ious = paired_iou(np.asarray(priors, dtype=np.float64).reshape(-1, 2), gt)
        repeated = probe[np.asarray(is_repeated, dtype=bool)]
        rows.append({"split": data.split, "queries": len(probe), "probe": _recall(probe),
                     "prior": _recall(prior_ious), "repeated_queries": len(repeated),
                     "probe_repeated": _recall(repeated)})
    return rows


def masked_object_probe(train: SynthVLSplit, evals: list[SynthVLSplit]) -> dict[str, float]:
    """Accuracy of guessing each event's object from its verb alone (train's majority object)."""
    counts: dict[str, Counter[str]] = {}
    for v in train.videos:
        for e in v["events"]:
            counts.setdefault(e["verb"], Counter())[e["object"]] += 1
    guess = {verb: c.most_common(1)[0][0] for verb, c in counts.items()}
    out = {}
    for data in [train, *evals]:
        events = [e for v in data.videos for e in v["events"]]
        out[data.split] = sum(guess.get(e["verb"]) == e["object"] for e in events) / max(1, len(events))
    return out


def order_probe(model: TextToVisual, data: SynthVLSplit) -> dict[str, float] | None:
    """Share of reordered twins told apart by a paragraph: order-blind vs order-aware."""
    pairs = [(v["vid"], v["partner"]) for v in data.videos if v["relation"] == "shuffled_order"]
    if not pairs:
        return None
    feats = _read_features(data, per_video=False)
    paragraphs = {p.video_id: model(list(p.sentences)) for p in data.paragraphs}

    def blind(vid: str, para: np.ndarray) -> float:
        return float(para.mean(axis=0) @ feats[vid].mean(axis=0))

    def aware(vid: str, para: np.ndarray) -> float:
        segments = np.array_split(feats[vid], len(para))
        return float(np.mean([p @ seg.mean(axis=0) for p, seg in zip(para, segments)]))

    result = {}
    for name, score in (("order_blind", blind), ("order_aware", aware)):
        wins = []
        for a, b in pairs:
            for mine, twin in ((a, b), (b, a)):
                wins.append(score(mine, paragraphs[mine]) > score(twin, paragraphs[mine]))
        result[name] = float(np.mean(wins))
    result["pairs"] = float(len(pairs))
    return result


def retrieval_probe(model: TextToVisual, data: SynthVLSplit) -> dict[str, Any]:
    """Caption -> video retrieval with mean pooling (order-blind): R@1 over the split, and how
    often a caption prefers its own video over (a) a random other video, (b) its hard-negative
    twin, (c) its reordered twin."""
    feats = _read_features(data, per_video=False)
    vids = [v["vid"] for v in data.videos]
    videos = np.stack([feats[vid].mean(axis=0) for vid in vids])
    videos /= np.linalg.norm(videos, axis=1, keepdims=True)
    captions = model([c.captions[0] for c in data.captions])  # same order as data.videos
    sim = captions @ videos.T  # caption i belongs to video i
    own = np.diag(sim)
    result: dict[str, Any] = {"videos": len(vids), "R@1": float((sim.argmax(axis=1) == np.arange(len(vids))).mean())}
    rng = np.random.default_rng(0)
    others = (np.arange(len(vids)) + rng.integers(1, len(vids), len(vids))) % len(vids)
    result["vs_random_video"] = float((own > sim[np.arange(len(vids)), others]).mean())
    index = {vid: i for i, vid in enumerate(vids)}
    for relation in ("hard_negative", "shuffled_order"):
        pairs = [(index[v["vid"]], index[v["partner"]]) for v in data.videos if v["relation"] == relation]
        wins = [sim[i, i] > sim[i, j] for a, b in pairs for i, j in ((a, b), (b, a))]
        result[f"vs_{relation}_twin"] = float(np.mean(wins)) if wins else None
    return result


def mc_text_only_probe(evals: list[SynthVLSplit]) -> dict[str, float]:
    """Accuracy, per split, of answering from the candidates alone (most shared words)."""
    out = {}
    for data in evals:
        hits = 0
        for q in data.questions:
            words = [set(c.split()) for c in q.candidates]
            shared = [sum(len(w & o) for o in words) for w in words]
            hits += int(np.argmax(shared)) == q.answer
        out[data.split] = hits / max(1, len(data.questions))
    return out


def signature_similarity(meta: dict[str, Any]) -> dict[str, float]:
    """Mean cosine between the hidden signatures of compositions that share the verb, share the
    object, or share nothing."""
    from vidlang.data.synthvl.config import make_config
    from vidlang.data.synthvl.world import build_world

    cfg = make_config(meta["preset"], **meta["overrides"])
    world = build_world(cfg, meta["seed"])
    comps = list(world.signatures)
    sigs = np.stack([world.signatures[c] for c in comps])
    sigs /= np.linalg.norm(sigs, axis=1, keepdims=True)
    cos = sigs @ sigs.T
    groups: dict[str, list[float]] = {"same_verb": [], "same_object": [], "unrelated": []}
    for i, a in enumerate(comps):
        for j in range(i + 1, len(comps)):
            b = comps[j]
            key = "same_verb" if a[0] == b[0] else "same_object" if a[1] == b[1] else "unrelated"
            groups[key].append(float(cos[i, j]))
    return {k: float(np.mean(v)) for k, v in groups.items()}


def run_probes(root: str | Path, eval_splits: tuple[str, ...] = ("test", "test_novel")) -> dict[str, Any]:
    """All three probes on the SynthVL folder ``root`` (trained on its train split)."""
    train = load(root, "train")
    evals = [load(root, s) for s in eval_splits]
    model = fit_text_to_visual(train)
    return {"grounding": grounding_probe(model, train, evals),
            "masked_object": masked_object_probe(train, evals),
            "mc_text_only": mc_text_only_probe(evals),
            "order": order_probe(model, evals[0]),
            "retrieval": retrieval_probe(model, evals[0]),
            "signature_cosine": signature_similarity(train.meta)}
