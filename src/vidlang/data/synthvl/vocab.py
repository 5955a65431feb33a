"""The SynthVL vocabulary: real English verbs and objects, which pairs make sense, and phrasing.

A verb is stored as its three forms without the object ("picks up", "picking up", "pick up");
an event's phrase is a verb form followed by ``the <object>``.
"""

from __future__ import annotations

from dataclasses import dataclass

_OPENABLE = ("door", "window", "drawer", "cabinet", "fridge", "box", "laptop", "bag", "book")
_GRASPABLE = ("phone", "cup", "book", "bottle", "towel", "shoe", "pillow", "box", "bag", "apple",
              "sandwich", "blanket", "glass", "bowl", "laptop")
_CONTAINER = ("cup", "glass", "bowl", "pot", "bottle", "kettle")
_FOOD = ("apple", "sandwich", "banana", "bread")
_DEVICE = ("light", "laptop", "television", "stove", "lamp")
_SEAT = ("chair", "bed", "sofa", "floor")


@dataclass(frozen=True)
class Verb:
    """A verb phrase in its three forms, and the objects it can take."""

    third: str  # "opens"
    gerund: str  # "opening"
    base: str  # "open"
    objects: tuple[str, ...]


VERBS: tuple[Verb, ...] = (
    Verb("opens", "opening", "open", _OPENABLE),
    Verb("closes", "closing", "close", _OPENABLE),
    Verb("picks up", "picking up", "pick up", _GRASPABLE),
    Verb("puts down", "putting down", "put down", _GRASPABLE),
    Verb("holds", "holding", "hold", _GRASPABLE),
    Verb("throws", "throwing", "throw", ("pillow", "towel", "shoe", "ball", "book", "blanket", "apple")),
    Verb("pours water into", "pouring water into", "pour water into", _CONTAINER),
    Verb("drinks from", "drinking from", "drink from", ("cup", "glass", "bottle", "bowl")),
    Verb("washes", "washing", "wash", ("cup", "glass", "bowl", "pot", "shirt", "towel", "apple")),
    Verb("folds", "folding", "fold", ("towel", "blanket", "shirt", "paper")),
    Verb("eats", "eating", "eat", _FOOD),
    Verb("cuts", "cutting", "cut", (*_FOOD, "paper")),
    Verb("turns on", "turning on", "turn on", _DEVICE),
    Verb("turns off", "turning off", "turn off", _DEVICE),
    Verb("wipes", "wiping", "wipe", ("table", "window", "mirror", "laptop", "shelf", "stove")),
    Verb("looks at", "looking at", "look at", ("phone", "book", "picture", "mirror", "laptop",
                                               "window", "television", "paper")),
    Verb("carries", "carrying", "carry", ("box", "bag", "pillow", "blanket", "chair", "laptop", "pot")),
    Verb("sits on", "sitting on", "sit on", _SEAT),
)

OBJECTS: tuple[str, ...] = tuple(sorted({o for v in VERBS for o in v.objects}))
VERB_NAMES: tuple[str, ...] = tuple(v.base for v in VERBS)

SUBJECTS = ("the person", "a person", "someone", "person")

# Paraphrase templates of one event. {s}: subject, {v3}/{vg}/{vb}: verb forms, {o}: "the cup".
EVENT_TEMPLATES = (
    "{s} {v3} {o}.",
    "{s} is {vg} {o}.",
    "{s} {v3} {o} in the room.",
    "{s} starts {vg} {o}.",
)
# Temporal-context templates: {ctx} is the neighbouring event's clause ("opens the door").
AFTER_TEMPLATES = (
    "after the person {ctx}, they {vb} {o}.",
    "{s} {v3} {o} after {ctx_g}.",
    "once the person {ctx}, {s} {v3} {o}.",
)
BEFORE_TEMPLATES = (
    "before the person {ctx}, they {vb} {o}.",
    "{s} {v3} {o} before {ctx_g}.",
)
CAPTION_TEMPLATES = (
    ("{s} {first}", ", then {next}", " and finally {last}."),
    ("first {s} {first}", ", next {next}", ", and at the end {last}."),
    ("in this video {s} {first}", ", after that {next}", " and then {last}."),
)
QUESTION_TEMPLATES = {
    "after": "what does the person do right after {ctx_g}?",
    "before": "what does the person do right before {ctx_g}?",
    "first": "what does the person do first?",
    "last": "what does the person do last?",
}


def verb_by_base(base: str) -> Verb:
    return VERBS[VERB_NAMES.index(base)]


def compositions() -> list[tuple[str, str]]:
    """Every sensible (verb base form, object) pair, in a fixed order."""
    return [(v.base, o) for v in VERBS for o in v.objects]


# verb_object_gap -> the words between a verb and its object ("opens the door" is gap 1)
OBJECT_PHRASES = ("{o}", "the {o}", "the same {o}", "the very same {o}")


def object_phrase(obj: str, gap: int = 1) -> str:
    """The object with ``gap`` filler words before it: 0 "door", 1 "the door", 2 "the same
    door", 3 "the very same door" (``verb_object_gap``: how far the object sits from its verb)."""
    return OBJECT_PHRASES[gap].format(o=obj)


def clause_of(verb: str, obj: str, gap: int = 1) -> str:
    """"opens the door": the third-person phrase of a (verb base form, object) event."""
    return f"{verb_by_base(verb).third} {object_phrase(obj, gap)}"
