"""The training fast paths (issue 16): feature memo, shared frozen-text cache, vectorised
collates. They must leave the arithmetic unchanged: same losses and weights at the same seed."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from repo_scripts import load_repo_module
from vidlang.engine.pipelines.alignment import _sequence_index
from vidlang.engine.pipelines.features import FeatureMemo, gather_rows
from vidlang.errors import ConfigError
from vidlang.models.tempclr import distinct_pairs
from vidlang.ops.padding import pad_rows
from vidlang.text.cache import FrozenTextCache, clear_text_caches, shared_text_cache
from vidlang.text.config import TextEncoderConfig, build_text_encoder

bench = load_repo_module("benchmarks/bench_step.py")


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """Bit-for-bit comparisons run on one thread: MMN's multi-threaded CPU backward does not
    add its partial sums in a fixed order (two identical runs differ in the last bits)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[list, Path, Path]:
    root = tmp_path_factory.mktemp("fast_path")
    videos = bench.make_videos(70, 163)
    bench.write_features(root / "features.h5", videos)
    return videos, root / "features.h5", root


@pytest.mark.parametrize("config", ["mmn/cpu", "retrieval/synthvl_cpu", "tempclr/synthvl_cpu",
                                    "retrieval/synthvl_cpu+lazy", "tempclr/synthvl_cpu+lazy"])
def test_feature_memo_keeps_losses_and_weights(data: tuple[list, Path, Path], config: str,
                                               one_thread: object) -> None:
    """2 epochs x 3 steps with the memo (default) and without it (every video read and
    resampled at every step): identical losses and weights, bit for bit."""
    videos, features, root = data
    runs = []
    for mb in (2048, 0):
        clear_text_caches()  # each run starts cold, as a fresh process does
        runs.append(bench.fingerprint(config, videos, features, root, 3,
                                      {"data": {"feature_cache_mb": mb}}))
    assert len(runs[0]["losses"]) >= 4
    assert runs[0] == runs[1]


def test_precompute_encodes_every_training_text_before_training(data: tuple[list, Path, Path],
                                                                one_thread: object) -> None:
    """frozen_text=precompute: all training texts are in the (eval-mode) cache after prepare,
    training then encodes nothing, and two runs give the same numbers."""
    from vidlang.engine.run import prepare_model

    videos, features, root = data
    clear_text_caches()
    _, model, pipe = bench.build("tempclr/synthvl_cpu+precompute", videos, features, root)
    prepare_model(model, pipe)
    cache = model.frozen_text_cache()
    assert cache.eval_mode
    assert {s for v in videos for s in v.sentences} <= set(cache.items)
    encoded = cache.encoded
    first = bench.fingerprint("tempclr/synthvl_cpu+precompute", videos, features, root, 3)
    assert cache.encoded == encoded  # no miss while training
    assert bench.fingerprint("tempclr/synthvl_cpu+precompute", videos, features, root, 3) == first


def test_frozen_text_mode_is_checked() -> None:
    from vidlang.models.retrieval import DualEncoder, DualEncoderConfig

    with pytest.raises(ConfigError, match="model.frozen_text"):
        DualEncoder(DualEncoderConfig(frozen_text="eager"))


def test_feature_cache_mb_is_checked(data: tuple[list, Path, Path]) -> None:
    videos, features, root = data
    cfg, _, pipe = bench.build("mmn/cpu", videos, features, root)
    cfg.data.feature_cache_mb = -1
    with pytest.raises(ConfigError, match="data.feature_cache_mb"):
        type(pipe).check_config(cfg)


def test_memo_stops_at_its_budget() -> None:
    memo = FeatureMemo(3 * 4 * 4)  # three rows of 4 float32
    memo.put("a", torch.zeros(2, 4), 5)
    memo.put("b", torch.zeros(2, 4), 5)  # would exceed: not kept
    assert memo.get("a") is not None and memo.get("b") is None and memo.full


def _loop_pad(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(r.shape[0] for r in rows)
    out = torch.zeros(len(rows), longest, rows[0].shape[1])
    mask = torch.zeros(len(rows), longest, dtype=torch.bool)
    for i, r in enumerate(rows):
        out[i, : r.shape[0]] = r
        mask[i, : r.shape[0]] = True
    return out, mask


def test_pad_and_gather_rows_match_the_row_loops() -> None:
    gen = torch.Generator().manual_seed(0)
    rng = random.Random(0)
    feats = [torch.randn(t, 5, generator=gen) for t in (7, 3, 9)]
    out, mask = pad_rows(feats)
    ref_out, ref_mask = _loop_pad(feats)
    assert torch.equal(out, ref_out) and torch.equal(mask, ref_mask)
    groups = [[sorted(rng.sample(range(f.shape[0]), rng.randint(1, f.shape[0])))
               for _ in range(rng.randint(1, 3))] for f in feats]
    got, got_mask = gather_rows(feats, groups)
    ref = _loop_pad([f[rows] for f, group in zip(feats, groups) for rows in group])
    assert torch.equal(got, ref[0]) and torch.equal(got_mask, ref[1])


def test_sequence_index_and_distinct_pairs() -> None:
    assert _sequence_index([2, 0, 3]).tolist() == [[0, 1, -1], [-1, -1, -1], [2, 3, 4]]
    texts = ["a", "b", "a", "c"]
    assert distinct_pairs(texts).tolist() == [[a != b for b in texts] for a in texts]


def test_shared_cache_outputs_and_keys() -> None:
    """Eval-mode cache = the encoder's own eval outputs; a changed encoder gets another cache."""
    clear_text_caches()
    enc = build_text_encoder(TextEncoderConfig(name="word", dim=8, vocab_size=50))
    texts = ["a man runs", "the dog", "a man runs", "she opens the door now"]
    cache = shared_text_cache(enc, "s", eval_mode=True)
    got = cache.encode(enc, texts)
    assert cache.encoded == 3 and len(cache) == 3
    with torch.no_grad():
        ref = enc(texts)
    assert torch.equal(got.sentence, ref.sentence)
    assert torch.equal(got.mask, ref.mask)
    assert torch.equal(got.tokens[got.mask], ref.tokens[ref.mask])
    assert torch.equal(cache.sentences(enc, texts[:2]), ref.sentence[:2])
    assert cache.encoded == 3  # look-ups only
    assert shared_text_cache(enc, "s", eval_mode=True) is cache
    assert shared_text_cache(enc, "s", eval_mode=False) is not cache
    with torch.no_grad():
        enc.embed.weight[3] += 1.0  # the encoder trained: its old vectors must not be served
    assert shared_text_cache(enc, "s", eval_mode=True) is not cache
    with pytest.raises(ValueError, match="eval-mode"):
        FrozenTextCache(eval_mode=False).warm(enc, texts)


def test_sentence_vectors_equal_text_repr() -> None:
    from vidlang.models.retrieval import DualEncoder, DualEncoderConfig

    clear_text_caches()
    cfg = DualEncoderConfig(video_dim=8, embed_dim=4,
                            text=TextEncoderConfig(name="word", dim=8, vocab_size=50))
    model = DualEncoder(cfg)
    texts = ["a man runs", "the dog barks loudly"]
    assert torch.equal(model.sentence_vectors(texts), model.text_repr(texts).sentence)


def test_workers_share_a_preloaded_memo(data: tuple[list, Path, Path]) -> None:
    """With DataLoader workers the memo is filled before they fork; batches are unchanged."""
    videos, features, root = data
    _, _, plain = bench.build("tempclr/synthvl_cpu", videos, features, root)
    _, _, workers = bench.build("tempclr/synthvl_cpu", videos, features, root,
                                {"data": {"num_workers": 1}})
    loader = workers.train_loader()
    assert len(workers.memo.items) == len(videos)
    for a, b in zip(plain.train_loader(), loader):
        assert a["video_ids"] == b["video_ids"] and a["seg_texts"] == b["seg_texts"]
        assert torch.equal(a["seg_feats"], b["seg_feats"]) and "feats" not in a and "feats" not in b
