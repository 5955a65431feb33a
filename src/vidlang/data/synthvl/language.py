"""Text of a SynthVL video: grounding queries, captions, the ordered paragraph and MC questions.

Queries use several paraphrase templates. Some (``context_query_prob``, and always for an event
that happens twice) name a neighbouring event ("after the person opens the door, ..."); such a
query is only emitted when that context picks out exactly one occurrence in the video, so only
the video's order resolves it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidlang.data.synthvl.config import SynthVLConfig
from vidlang.data.synthvl.plans import VideoPlan
from vidlang.data.synthvl.vocab import (
    AFTER_TEMPLATES,
    BEFORE_TEMPLATES,
    CAPTION_TEMPLATES,
    EVENT_TEMPLATES,
    QUESTION_TEMPLATES,
    SUBJECTS,
    clause_of,
    object_phrase,
    verb_by_base,
)
from vidlang.data.synthvl.world import Composition
from vidlang.errors import ConfigError

N_CANDIDATES = 5


def clause(comp: Composition, gap: int = 1) -> str:
    """"opens the door" (third person; ``gap`` filler words before the object)."""
    return clause_of(*comp, gap=gap)


def gerund_clause(comp: Composition, gap: int = 1) -> str:
    """"opening the door"."""
    return f"{verb_by_base(comp[0]).gerund} {object_phrase(comp[1], gap)}"


def _pick(seq: tuple[str, ...] | list[str], rng: np.random.Generator) -> str:
    return seq[int(rng.integers(len(seq)))]


def _fill(template: str, comp: Composition, rng: np.random.Generator, ctx: Composition | None = None,
          gap: int = 1) -> str:
    verb = verb_by_base(comp[0])
    return template.format(
        s=_pick(SUBJECTS, rng), v3=verb.third, vg=verb.gerund, vb=verb.base, o=object_phrase(comp[1], gap),
        ctx="" if ctx is None else clause(ctx, gap), ctx_g="" if ctx is None else gerund_clause(ctx, gap))


def event_sentence(comp: Composition, rng: np.random.Generator, gap: int = 1) -> str:
    """One plain paraphrase of an event."""
    return _fill(_pick(EVENT_TEMPLATES, rng), comp, rng, gap=gap)


def _unique_context(events: tuple[Composition, ...], i: int, direction: str) -> Composition | None:
    """The neighbour of event ``i`` (``after``: the previous event, ``before``: the next one)
    if "<target> after / before <neighbour>" fits occurrence ``i`` only, even read loosely
    ("at any time after"); else None."""
    j = i - 1 if direction == "after" else i + 1
    if not 0 <= j < len(events):
        return None
    ctx = events[j]
    ctx_at = [k for k, e in enumerate(events) if e == ctx]

    def fits(k: int) -> bool:
        return any(c < k for c in ctx_at) if direction == "after" else any(c > k for c in ctx_at)

    matches = [k for k, e in enumerate(events) if e == events[i] and fits(k)]
    return ctx if matches == [i] else None


def grounding_query(plan: VideoPlan, i: int, cfg: SynthVLConfig, rng: np.random.Generator) -> tuple[str, str | None]:
    """(query text, context kind or None) for event ``i`` of ``plan``."""
    events = plan.events
    repeated = events.count(events[i]) > 1
    if repeated or rng.random() < cfg.context_query_prob:
        directions = ["after", "before"]
        if rng.random() < 0.5:
            directions.reverse()
        for direction in directions:
            ctx = _unique_context(events, i, direction)
            if ctx is not None:
                templates = AFTER_TEMPLATES if direction == "after" else BEFORE_TEMPLATES
                return _fill(_pick(templates, rng), events[i], rng, ctx, cfg.verb_object_gap), direction
        if repeated:
            raise AssertionError(f"{plan.vid}: no unambiguous context for repeated event {i}")
    return event_sentence(events[i], rng, cfg.verb_object_gap), None


def caption(events: tuple[Composition, ...], template_index: int, rng: np.random.Generator,
            gap: int = 1) -> str:
    """All events in order in one sentence ("a person opens the door, then ... and finally ...")."""
    head, middle, tail = CAPTION_TEMPLATES[template_index % len(CAPTION_TEMPLATES)]
    text = head.format(s=_pick(SUBJECTS, rng), first=clause(events[0], gap))
    for comp in events[1:-1]:
        text += middle.format(next=clause(comp, gap))
    text += tail.format(last=clause(events[-1], gap))
    return text


@dataclass(frozen=True)
class MCQuestion:
    """A 5-way multiple-choice question about one video (video QA)."""

    qid: str
    video_id: str
    kind: str  # "after", "before", "first" or "last"
    question: str
    candidates: tuple[str, ...]
    answer: int  # index into candidates

    def to_json(self) -> dict[str, object]:
        return {"qid": self.qid, "kind": self.kind, "question": self.question,
                "candidates": list(self.candidates), "answer": self.answer}


def _question_slots(events: tuple[Composition, ...]) -> list[tuple[str, int | None, int]]:
    """(kind, anchor index or None, answer index) of every question this video supports."""
    slots: list[tuple[str, int | None, int]] = [("first", None, 0), ("last", None, len(events) - 1)]
    for i, comp in enumerate(events):
        if events.count(comp) == 1:
            if i + 1 < len(events):
                slots.append(("after", i, i + 1))
            if i > 0:
                slots.append(("before", i, i - 1))
    return slots


def _pick_new(options: list[Composition], rng: np.random.Generator) -> Composition | None:
    return options[int(rng.integers(len(options)))] if options else None


def _candidates(answer: Composition, anchor: Composition | None, events: tuple[Composition, ...],
                pool: list[Composition], rng: np.random.Generator) -> list[Composition]:
    """Five candidates in a symmetric shape: two *pairs* (an event and a look-alike sharing its
    verb or object) and one single. The answer takes a uniformly random place in that shape,
    the other places go to the video's other events first (only the order tells them from the
    answer), then to random events of the pool. So every candidate, the answer included, is in
    a pair with probability 4/5, no text-only cue (word overlap, odd one out) singles out the
    answer, and the anchor of "after / before X" is never a candidate."""
    blocked = {answer, anchor, *events}
    others = [c for c in dict.fromkeys(events) if c not in (answer, anchor)]
    others = [others[int(i)] for i in rng.permutation(len(others))]
    chosen: list[Composition] = [answer]

    def fresh() -> Composition:
        comp = others.pop(0) if others else _pick_new([c for c in pool if c not in blocked
                                                       and c not in chosen], rng)
        if comp is None:
            raise ConfigError("synthvl: the split's pool is too small for 5 MC candidates")
        chosen.append(comp)
        return comp

    def look_alike(comp: Composition) -> None:
        twin = _pick_new([c for c in pool if c not in blocked and c not in chosen
                          and (c[0] == comp[0] or c[1] == comp[1])], rng)
        if twin is None:
            fresh()
        else:
            chosen.append(twin)

    slot = int(rng.integers(N_CANDIDATES))  # 0-3: the answer is in a pair, 4: it is the single
    if slot < 4:
        look_alike(answer)
        look_alike(fresh())
        fresh()
    else:
        look_alike(fresh())
        look_alike(fresh())
    return chosen[1:]


def questions(plan: VideoPlan, cfg: SynthVLConfig, pool: list[Composition],
              rng: np.random.Generator) -> list[MCQuestion]:
    """Up to ``questions_per_video`` distinct questions, candidates in uniformly random order."""
    slots = _question_slots(plan.events)
    picked = rng.permutation(len(slots))[: cfg.questions_per_video]
    out = []
    for q, idx in enumerate(sorted(int(i) for i in picked)):
        kind, anchor, ans = slots[idx]
        ctx = "" if anchor is None else gerund_clause(plan.events[anchor], cfg.verb_object_gap)
        answer = plan.events[ans]
        distractors = _candidates(answer, None if anchor is None else plan.events[anchor],
                                  plan.events, pool, rng)
        # a uniform shuffle, so neither the answer's position nor the distractors' construction
        # order shows in the candidate order
        order = [int(i) for i in rng.permutation(N_CANDIDATES)]
        options = [([answer, *distractors])[i] for i in order]
        out.append(MCQuestion(f"{plan.vid}_mc{q}", plan.vid, kind,
                              QUESTION_TEMPLATES[kind].format(ctx_g=ctx),
                              tuple(clause(c, cfg.verb_object_gap) for c in options), order.index(0)))
    return out
