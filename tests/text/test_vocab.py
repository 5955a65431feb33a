"""Word vocabulary: top-N by frequency, OOV deletion, storage, and input vectors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vidlang.errors import ConfigError
from vidlang.text.vocab import PAD, Vocabulary, encode_batch, fit_width, word_vectors

SENTENCES = ["The person opens the door.", "A person closes the door", "person opens a box", "zebra"]


def test_top_n_by_frequency_with_deterministic_ties() -> None:
    vocab = Vocabulary.build(SENTENCES, max_words=4)
    # counts: person 3, the 3, door 2, opens 2, a 2 -> ties broken alphabetically
    assert vocab.words == [PAD, "person", "the", "a", "door"]
    assert Vocabulary.build(reversed(SENTENCES), max_words=4).words == vocab.words


def test_out_of_vocabulary_words_are_deleted_not_unk() -> None:
    vocab = Vocabulary.build(SENTENCES, max_words=4)
    assert vocab.tokens("The zebra opens THE door!") == ["the", "the", "door"]
    assert vocab.encode("the person", max_len=1) == [vocab.index["the"]]
    toks, ids = encode_batch(vocab, ["zebra", "a door"], max_len=20)
    assert toks == [[], ["a", "door"]]
    assert ids.tolist() == [[0, 0], [vocab.index["a"], vocab.index["door"]]]


def test_vocabulary_round_trips_through_a_tensor() -> None:
    vocab = Vocabulary.build(SENTENCES + ["café naïve"], max_words=50)
    again = Vocabulary.from_tensor(vocab.to_tensor())
    assert again.words == vocab.words and again.tokens("café") == ["café"]


def test_fit_width_pads_or_projects() -> None:
    vecs = torch.randn(5, 6)
    assert torch.equal(fit_width(vecs, 6), vecs)
    padded = fit_width(vecs, 9)
    assert torch.equal(padded[:, :6], vecs) and padded[:, 6:].abs().sum() == 0
    proj = fit_width(vecs, 4, seed=3)
    assert proj.shape == (5, 4) and torch.equal(proj, fit_width(vecs, 4, seed=3))
    assert (proj.norm(dim=1) <= vecs.norm(dim=1) + 1e-5).all()  # orthonormal columns


def test_glove_vectors(tmp_path: Path) -> None:
    glove = tmp_path / "glove.txt"
    glove.write_text("person 1 2 3\ndoor 4 5 6\nthe 0 0 1\n", encoding="utf-8")
    vocab = Vocabulary.build(SENTENCES, max_words=4)
    vecs, source = word_vectors(vocab, 3, glove)
    assert source.startswith("glove:")
    assert vecs[vocab.index["door"]].tolist() == [4, 5, 6]
    assert vecs[vocab.index["a"]].abs().sum() == 0 and vecs[0].abs().sum() == 0
    with pytest.raises(ConfigError, match="model.word_dim"):
        word_vectors(vocab, 4, glove)


def test_minilm_vectors_average_wordpieces() -> None:
    from vidlang.text.vocab import _minilm_token_table

    vocab = Vocabulary([PAD, "door", "unfolding"])
    vecs, source = word_vectors(vocab, 384)
    tokenizer, table = _minilm_token_table()
    pieces = tokenizer("unfolding", add_special_tokens=False)["input_ids"]
    assert source == "minilm" and vecs[0].abs().sum() == 0
    assert torch.allclose(vecs[2], table[pieces].mean(0))
    small, _ = word_vectors(vocab, 300)
    assert small.shape == (3, 300)
