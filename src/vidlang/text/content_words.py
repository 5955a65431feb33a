"""Content-word weights for word masking (CPL/CCR) and word-level attention (DMAE).

Backend, picked once per process and logged: NLTK POS tags (a word tagged NN*, VB*, JJ* or RB*
is a content word) when ``nltk`` and its perceptron tagger data are installed; otherwise a
fixed list of function words (determiners, pronouns, prepositions, conjunctions, auxiliaries
and particles), where every other word counts as content. vidlang never downloads the tagger.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

CONTENT_TAG_PREFIXES = ("NN", "VB", "JJ", "RB")

FUNCTION_WORDS = frozenset("""
a an the this that these those some any each every no either neither all both another such
i me my mine myself you your yours yourself yourselves he him his himself she her hers herself it
its itself we us our ours ourselves they them their theirs themselves who whom whose which what
someone something somebody anyone anything everyone everything one ones
about above across after against along amid among around as at before behind below beneath
beside besides between beyond by down during except for from in inside into like near of off on
onto out outside over past since through throughout till to toward towards under underneath
until up upon via with within without
and or but nor so yet if because although though while whereas unless whether than then
am is are was were be been being do does did doing done have has had having
will would shall should can could may might must 's 're 've 'd 'll 'm
not n't there here
""".split())


def _function_word_mask(words: Sequence[str]) -> list[bool]:
    return [w.lower() not in FUNCTION_WORDS for w in words]


def _nltk_tagger() -> Callable[[Sequence[str]], list[bool]] | None:
    """NLTK's POS tagger when the package and its tagger data are installed, else None."""
    try:
        import nltk
    except ImportError:
        return None
    for resource in ("taggers/averaged_perceptron_tagger_eng", "taggers/averaged_perceptron_tagger"):
        try:
            nltk.data.find(resource)
            break
        except LookupError:
            continue
    else:
        return None

    def tag(words: Sequence[str]) -> list[bool]:
        return [t.startswith(CONTENT_TAG_PREFIXES) for _, t in nltk.pos_tag(list(words))]

    return tag


@functools.lru_cache(maxsize=1)
def content_word_backend() -> tuple[str, Callable[[Sequence[str]], list[bool]]]:
    """(name, function) of the backend in use: ``nltk-pos`` or ``function-word-list``."""
    tagger = _nltk_tagger()
    if tagger is not None:
        log.info("content words: NLTK POS tags (NN*, VB*, JJ*, RB*)")
        return "nltk-pos", tagger
    log.info("content words: function-word list (nltk or its tagger data not installed)")
    return "function-word-list", _function_word_mask


def content_word_mask(words: Sequence[str]) -> list[bool]:
    """True for each content word of an already tokenised sentence."""
    if not words:
        return []
    return content_word_backend()[1](words)


def content_word_weights(words: Sequence[str], content: float = 2.0, other: float = 1.0) -> list[float]:
    """CPL's masking weights: ``content`` (2) for content words, ``other`` (1) for the rest."""
    return [content if c else other for c in content_word_mask(words)]
