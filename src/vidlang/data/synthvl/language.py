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
    verb_by_base,
)
from vidlang.data.synthvl.world import Composition

N_CANDIDATES = 5


def clause(comp: Composition) -> str:
    """"opens the door" (third person)."""
    return clause_of(*comp)


def gerund_clause(comp: Composition) -> str:
    """"opening the door"."""
    return f"{verb_by_base(comp[0]).gerund} the {comp[1]}"


def _pick(seq: tuple[str, ...] | list[str], rng: np.random.Generator) -> str:
    return seq[int(rng.integers(len(seq)))]


def _fill(template: str, comp: Composition, rng: np.random.Generator, ctx: Composition | None = None) -> str:
    verb = verb_by_base(comp[0])
    text = template.format(
        s=_pick(SUBJECTS, rng), v3=verb.third, vg=verb.gerund, vb=verb.base, o=f"the {comp[1]}",
        ctx="" if ctx is None else clause(ctx), ctx_g="" if ctx is None else gerund_clause(ctx))
    return text


def event_sentence(comp: Composition, rng: np.random.Generator) -> str:
    """One plain paraphrase of an event."""
    return _fill(_pick(EVENT_TEMPLATES, rng), comp, rng)


def _unique_context(events: tuple[Composition, ...], i: int, direction: str) -> Composition | None:
    """The neighbour of event ``i`` (``after``: the previous one, ``before``: the next one) if
    "<target> after/before <neighbour>" matches only occurrence ``i``; else None."""
    step = -1 if direction == "after" else 1
    j = i + step
    if not 0 <= j < len(events):
        return None
    matches = [k for k in range(len(events))
               if events[k] == events[i] and 0 <= k + step < len(events) and events[k + step] == events[j]]
    return events[j] if matches == [i] else None


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
                return _fill(_pick(templates, rng), events[i], rng, ctx), direction
        if repeated:
            raise AssertionError(f"{plan.vid}: no unambiguous context for repeated event {i}")
    return event_sentence(events[i], rng), None


def caption(events: tuple[Composition, ...], template_index: int, rng: np.random.Generator) -> str:
    """All events in order in one sentence ("a person opens the door, then ... and finally ...")."""
    head, middle, tail = CAPTION_TEMPLATES[template_index % len(CAPTION_TEMPLATES)]
    text = head.format(s=_pick(SUBJECTS, rng), first=clause(events[0]))
    for comp in events[1:-1]:
        text += middle.format(next=clause(comp))
    text += tail.format(last=clause(events[-1]))
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


def _related(comp: Composition, pool: list[Composition]) -> list[Composition]:
    return [c for c in pool if c != comp and (c[0] == comp[0] or c[1] == comp[1])]


def _distractors(answer: Composition, anchor: Composition | None, events: tuple[Composition, ...],
                 pool: list[Composition], rng: np.random.Generator) -> list[Composition]:
    """Four plausible wrong answers: the video's other events first (only its order tells
    them from the answer), then events sharing a verb or object with a *random* event of the
    video. Drawing the look-alikes around any event, not the answer, keeps the answer from
    being the odd one out, and the anchor of "after / before X" is never a candidate, so
    the text alone does not give the answer away."""
    chosen: list[Composition] = []
    blocked = {answer, anchor}
    in_video = [c for c in dict.fromkeys(events) if c not in blocked]
    for idx in rng.permutation(len(in_video)):
        if len(chosen) < N_CANDIDATES - 1:
            chosen.append(in_video[int(idx)])
    for _ in range(100):
        if len(chosen) >= N_CANDIDATES - 1:
            break
        around = events[int(rng.integers(len(events)))]
        options = [c for c in _related(around, pool) if c not in blocked and c not in chosen]
        if options:
            chosen.append(options[int(rng.integers(len(options)))])
    rest = [c for c in pool if c not in blocked and c not in chosen]
    for idx in rng.permutation(len(rest))[: N_CANDIDATES - 1 - len(chosen)]:
        chosen.append(rest[int(idx)])
    return chosen


def questions(plan: VideoPlan, cfg: SynthVLConfig, pool: list[Composition],
              rng: np.random.Generator) -> list[MCQuestion]:
    """Up to ``questions_per_video`` distinct questions, answer position uniform in 0..4."""
    slots = _question_slots(plan.events)
    picked = rng.permutation(len(slots))[: cfg.questions_per_video]
    out = []
    for q, idx in enumerate(sorted(int(i) for i in picked)):
        kind, anchor, ans = slots[idx]
        ctx = "" if anchor is None else gerund_clause(plan.events[anchor])
        answer = plan.events[ans]
        options = _distractors(answer, None if anchor is None else plan.events[anchor],
                               plan.events, pool, rng)
        pos = int(rng.integers(N_CANDIDATES))
        options.insert(pos, answer)
        out.append(MCQuestion(f"{plan.vid}_mc{q}", plan.vid, kind,
                              QUESTION_TEMPLATES[kind].format(ctx_g=ctx),
                              tuple(clause(c) for c in options), pos))
    return out
