"""Text encoders: MiniLM offline, a tiny random HF model, GloVe word vectors, freezing."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from vidlang.errors import ConfigError, DataError
from vidlang.text import TextEncoderConfig, build_text_encoder, param_groups_with_multipliers
from vidlang.text.word import simple_tokenize

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "person", "opens", "the", "door",
         "closes", "window", "##s", "runs", "."]


def cos(a, b):
    return torch.nn.functional.cosine_similarity(a, b, dim=0).item()


@pytest.fixture(scope="module")
def minilm():
    return build_text_encoder(TextEncoderConfig()).eval()


def test_minilm_offline_sensible_embeddings(minilm):
    with torch.no_grad():
        out = minilm(["A man is playing a guitar.", "Someone plays the guitar.",
                      "The stock market fell sharply today."])
    assert out.sentence.shape == (3, 384) and minilm.dim == 384
    s = out.sentence
    assert cos(s[0], s[1]) > cos(s[0], s[2]) + 0.3
    assert out.mask.dtype == torch.bool and out.tokens.shape[:2] == out.mask.shape
    assert out.words[1][0] == "[CLS]" and len(out.words[1]) == int(out.mask[1].sum())


def test_minilm_load_is_cached_but_instances_are_independent(minilm):
    start = time.perf_counter()
    other = build_text_encoder(TextEncoderConfig())
    assert time.perf_counter() - start < 5.0
    p_a = next(minilm.parameters())
    p_b = next(other.parameters())
    assert torch.equal(p_a, p_b) and p_a.data_ptr() != p_b.data_ptr()


def _tiny_hf(tmp_path, kind):
    from transformers import BertConfig, BertModel, BertTokenizer, DistilBertConfig, DistilBertModel

    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    torch.manual_seed(0)
    if kind == "bert":
        model = BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=32))
    else:
        model = DistilBertModel(DistilBertConfig(vocab_size=len(VOCAB), dim=16, n_layers=2, n_heads=2,
                                                 hidden_dim=32, max_position_embeddings=32))
    model.save_pretrained(tmp_path)
    BertTokenizer(vocab={w: i for i, w in enumerate(VOCAB)}).save_pretrained(tmp_path)
    return model


@pytest.mark.parametrize("kind, pooling", [("bert", "mean"), ("distilbert", "cls")])
def test_tiny_random_hf_model_from_local_folder(tmp_path, kind, pooling):
    ref = _tiny_hf(tmp_path, kind).eval()
    enc = build_text_encoder(TextEncoderConfig(name="hf", path=str(tmp_path), pooling=pooling)).eval()
    assert enc.dim == 16
    with torch.no_grad():
        out = enc(["a person opens the door.", "closes windows"])
        ids = enc.tokenizer(["a person opens the door."], return_tensors="pt")["input_ids"]
        expect = ref(input_ids=ids).last_hidden_state[0]
    assert out.words[1] == ["[CLS]", "closes", "window", "##s", "[SEP]"]
    assert out.mask.tolist()[1] == [True] * 5 + [False] * 3  # row 0 has 8 tokens
    assert torch.allclose(out.tokens[0], expect, atol=1e-5)
    want = expect.mean(0) if pooling == "mean" else expect[0]
    assert torch.allclose(out.sentence[0], want, atol=1e-5)


def test_uncached_hub_name_fails_fast_and_clearly():
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="text.path: cannot load .*never downloads"):
        build_text_encoder(TextEncoderConfig(name="hf", path="no-such-org/no-such-model-xyz"))
    assert time.perf_counter() - start < 20


def test_unknown_encoder_and_pooling_name_the_key():
    with pytest.raises(ConfigError, match="^text.name: unknown text encoder 'bert2'"):
        build_text_encoder(TextEncoderConfig(name="bert2"))
    with pytest.raises(ConfigError, match="^text.pooling"):
        build_text_encoder(TextEncoderConfig(name="word", pooling="median", dim=4, vocab_size=8))


def test_word_encoder_reads_glove_file(tmp_path):
    glove = tmp_path / "glove.txt"
    glove.write_text("person 1 0 0\nopens 0 1 0\ndoor 0 0 1\n")
    enc = build_text_encoder(TextEncoderConfig(name="word", path=str(glove)))
    out = enc(["A person opens the door!", "door"])
    assert enc.dim == 3 and out.words[0] == ["a", "person", "opens", "the", "door"]
    assert out.tokens[0, 1].tolist() == [1, 0, 0] and out.tokens[0, 4].tolist() == [0, 0, 1]
    assert out.tokens[0, 0].abs().sum() == 0  # unknown word
    assert out.mask.tolist()[1] == [True, False, False, False, False]
    assert torch.allclose(out.sentence[1], torch.tensor([0.0, 0.0, 1.0]))
    assert not enc.embed.weight.requires_grad  # GloVe frozen by default


def test_word_encoder_bad_glove_line_names_file_and_line(tmp_path):
    glove = tmp_path / "bad.txt"
    glove.write_text("person 1 0 0\nopens 0 1\n")
    with pytest.raises(DataError, match=r"bad.txt:2: .*2 values"):
        build_text_encoder(TextEncoderConfig(name="word", path=str(glove)))


def test_word_encoder_hashed_with_lstm_trains():
    torch.manual_seed(0)
    cfg = TextEncoderConfig(name="word", dim=8, vocab_size=50, lstm_layers=2, lstm_hidden=6, pooling="last")
    enc = build_text_encoder(cfg)
    out = enc(["the person runs", "a person opens the door quickly"])
    assert out.sentence.shape == (2, 6) and out.tokens.shape == (2, 6, 6)
    assert torch.allclose(out.sentence[0], out.tokens[0, 2])  # last real token
    out.sentence.sum().backward()
    assert enc.embed.weight.grad is not None
    assert simple_tokenize("Don't stop, person-2!") == ["don't", "stop", "person", "2"]


def test_freeze_schedule_toggles_requires_grad_and_lr_groups():
    enc = build_text_encoder(TextEncoderConfig(name="word", dim=4, vocab_size=8, freeze_epochs=2, lr_mult=0.1))
    model = nn.ModuleDict({"text": enc, "head": nn.Linear(4, 2)})
    states = [enc.apply_freeze(epoch) for epoch in (1, 2, 3, 4)]
    assert states == [False, False, True, True]
    enc.apply_freeze(1)
    assert not any(p.requires_grad for p in enc.parameters())
    assert all(p.requires_grad for p in model["head"].parameters())
    groups = param_groups_with_multipliers(model, 1e-3, {enc: enc.lr_mult})
    assert [g["lr"] for g in groups] == [1e-3, pytest.approx(1e-4)]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
