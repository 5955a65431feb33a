"""SynthVL: each phenomenon knob changes what it claims, the novel split is novel, and the
features carry the events' signatures."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest

from vidlang.data.synthvl import build_world, generate, load, make_config
from vidlang.data.synthvl.stats import conditional_entropy
from vidlang.data.synthvl.vocab import VERBS, verb_by_base

Events = tuple[tuple[str, str], ...]


def _events(video: dict) -> Events:
    return tuple((e["verb"], e["object"]) for e in video["events"])


def _mentions(query: str, comp: tuple[str, str]) -> bool:
    verb = verb_by_base(comp[0])
    return any(f"{form} the {comp[1]}" in query for form in (verb.third, verb.gerund, verb.base))


def _pairs(root: Path, split: str) -> list[tuple[str, str]]:
    return [c for v in load(root, split).videos for c in _events(v)]


def _gen(tmp: pytest.TempPathFactory, name: str, **overrides: object) -> Path:
    return generate(tmp.mktemp(name), "tiny", seed=5, n_train=120, n_test=40, **overrides)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _gen(tmp_path_factory, "plain", feature_dim=128)


def test_spurious_cooccurrence_biases_train_only(plain: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    biased = _gen(tmp_path_factory, "biased", spurious_cooccurrence=0.9)
    h_plain, h_biased = (conditional_entropy(_pairs(r, "train")) for r in (plain, biased))
    assert h_biased < 0.5 * h_plain
    dominant = load(biased, "train").meta["dominant_object"]
    train = _pairs(biased, "train")
    assert sum(o == dominant[v] for v, o in train) / len(train) > 0.8
    # test is drawn without the bias: the same videos as with the knob off, and balanced
    assert load(biased, "test").videos == load(plain, "test").videos
    test = _pairs(biased, "test")
    assert sum(o == dominant[v] for v, o in test) / len(test) < 0.4
    assert conditional_entropy(test) > 0.8 * conditional_entropy(_pairs(plain, "test"))


def _differ_by_one(a: Events, b: Events) -> bool:
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1


def _fraction_with_partner(root: Path, split: str, related) -> float:
    seqs = [_events(v) for v in load(root, split).videos]
    has = [any(related(a, b) for j, b in enumerate(seqs) if j != i) for i, a in enumerate(seqs)]
    return sum(has) / len(seqs)


@pytest.mark.parametrize("fraction", [0.3, 0.6])
def test_hard_negative_fraction_pairs_videos_differing_by_one_event(
        plain: Path, tmp_path_factory: pytest.TempPathFactory, fraction: float) -> None:
    root = _gen(tmp_path_factory, "hard", hard_negative_fraction=fraction)
    for split in ("train", "test"):
        natural = _fraction_with_partner(plain, split, _differ_by_one)  # chance look-alikes
        assert natural < 0.25
        got = _fraction_with_partner(root, split, _differ_by_one)
        assert fraction - 0.05 <= got <= fraction + natural + 0.05, (split, got)
        videos = {v["vid"]: v for v in load(root, split).videos}
        derived = [v for v in videos.values() if v["relation"] == "hard_negative"]
        assert len(derived) == round(fraction * len(videos) / 2)
        assert all(_differ_by_one(_events(v), _events(videos[v["partner"]])) for v in derived)


def _reordered(a: Events, b: Events) -> bool:
    return a != b and Counter(a) == Counter(b)


def test_shuffled_order_distractors_reorder_the_same_events(
        plain: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    root = _gen(tmp_path_factory, "shuffled", shuffled_order_distractors=0.5)
    for split in ("train", "test"):
        got = _fraction_with_partner(root, split, _reordered)
        assert 0.45 <= got <= 0.6, (split, got)
    train = load(root, "train")
    videos = {v["vid"]: v for v in train.videos}
    paragraphs = {p.video_id: p for p in train.paragraphs}
    derived = [v for v in train.videos if v["relation"] == "shuffled_order"]
    assert len(derived) == round(0.5 * len(videos) / 2)
    for video in derived:
        mine, theirs = _events(video), _events(videos[video["partner"]])
        assert _reordered(mine, theirs)
        # each paragraph names its video's events in temporal order, so the two differ
        for vid, events in ((video["vid"], mine), (video["partner"], theirs)):
            assert all(_mentions(s, c) for s, c in zip(paragraphs[vid].sentences, events))
    assert _fraction_with_partner(plain, "train", _reordered) == 0.0


def test_test_novel_holds_only_unseen_compositions(plain: Path) -> None:
    novel = set(_pairs(plain, "test_novel"))
    seen_splits = set().union(*(set(_pairs(plain, s)) for s in ("train", "val", "test")))
    assert len(novel) > 5 and not novel & seen_splits
    meta = load(plain, "train").meta["compositions"]
    seen = {tuple(c) for c in meta["seen"]}
    assert seen_splits <= seen and novel <= {tuple(c) for c in meta["novel"]}
    # a novel pair is made of a verb and an object that both occur in seen pairs
    assert {v for v, _ in novel} <= {v for v, _ in seen}
    assert {o for _, o in novel} <= {o for _, o in seen}


def test_queries_name_their_event_and_context_resolves_repeats(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = _gen(tmp_path_factory, "repeats", repeat_event_prob=1.0)
    data = load(root, "train")
    videos = {v["vid"]: v for v in data.videos}
    repeated_queries = 0
    for rec in data.grounding:
        events = _events(videos[rec.video_id])
        i = rec.extra["event_index"]
        comp = events[i]
        assert _mentions(rec.query, comp)
        if events.count(comp) > 1:
            repeated_queries += 1
            assert rec.extra["context"] in ("after", "before")
            j = i - 1 if rec.extra["context"] == "after" else i + 1
            assert _mentions(rec.query, events[j])
            # even read as "at any time after / before", the context fits this occurrence only
            for k, other in enumerate(events):
                if other == comp and k != i:
                    assert (k < j) if rec.extra["context"] == "after" else (k > j)
    assert repeated_queries > 20


def _window_means(feats: np.ndarray, video: dict, clip_seconds: float) -> list[np.ndarray]:
    out = []
    for e in video["events"]:
        first = int(np.ceil(e["start"] / clip_seconds))
        last = int(np.floor(e["end"] / clip_seconds))  # clips fully inside the window
        out.append(feats[first:max(last, first + 1)].mean(axis=0))
    return out


def test_features_carry_the_event_signatures(plain: Path) -> None:
    data = load(plain, "test")
    cfg = make_config("tiny", **data.meta["overrides"])
    world = build_world(cfg, data.meta["seed"])
    comps = list(world.signatures)
    sigs = np.stack([world.signatures[c] for c in comps])
    sigs /= np.linalg.norm(sigs, axis=1, keepdims=True)
    hits = own_hits = total = 0
    with h5py.File(data.features_path, "r") as f:
        for video in data.videos:
            feats = f[video["vid"]][()]
            events = _events(video)
            for mean, comp in zip(_window_means(feats, video, cfg.clip_seconds), events):
                cos = sigs @ (mean / np.linalg.norm(mean))
                hits += comps[int(np.argmax(cos))] == comp  # against every composition
                own = [cos[comps.index(c)] for c in events]  # against the video's other events
                own_hits += events[int(np.argmax(own))] == comp
                total += 1
    assert own_hits / total > 0.95, own_hits / total
    assert hits / total > 0.85, hits / total


def _shared_words(candidates: tuple[str, ...]) -> list[int]:
    words = [set(c.split()) for c in candidates]
    return [sum(len(w & o) for o in words) for w in words]


def test_questions_need_the_video(plain: Path) -> None:
    """Text-only shortcuts stay near chance (1/5): the answer is not the candidate most like the
    others, and the event a question is anchored on is never a candidate."""
    questions = load(plain, "train").questions
    centroid = sum(int(np.argmax(_shared_words(q.candidates))) == q.answer for q in questions)
    assert centroid / len(questions) < 0.3
    gerund_of = {v.third: v.gerund for v in VERBS}
    anchored = 0
    for q in questions:
        if q.kind in ("after", "before"):
            anchor = q.question.split(f"right {q.kind} ")[1].rstrip("?")
            gerunds = []
            for c in q.candidates:
                third, obj = c.rsplit(" the ", 1)
                gerunds.append(f"{gerund_of[third]} the {obj}")
            assert anchor not in gerunds
            anchored += 1
    assert anchored > 0
    answers = Counter(q.answer for q in questions)
    assert set(answers) == set(range(5)) and max(answers.values()) < 0.3 * len(questions)
