"""Engine building blocks: schedules, sampler, batch contract, distributed helpers."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from engine_toy import fake_grounding_data
from two_process import run_two_processes
from vidlang.data.features.spec import FeatureSpec
from vidlang.engine.config import CONFIG_ROOT, build_config
from vidlang.engine.optim import build_optimizer, build_scheduler
from vidlang.engine.pipelines.base import EpochSampler
from vidlang.engine.pipelines.grounding import GroundingPipeline
from vidlang.ops.distributed import (
    all_gather_objects,
    all_reduce_sum,
    gather_counts,
    gather_rows,
    gather_with_grad,
    world_size,
)


def cfg_with(**sections):
    raw = OmegaConf.merge(OmegaConf.load(CONFIG_ROOT / "base.yaml"), {"model": {"name": "engine_toy"}}, sections)
    return build_config(raw)


def lrs_over(cfg, steps):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([{"params": [p], "lr": cfg.optim.lr}, {"params": [torch.nn.Parameter(torch.zeros(1))],
                                                                  "lr": cfg.optim.lr * 0.1}], cfg.optim)
    spec = build_scheduler(opt, cfg.optim)
    out = []
    for _ in range(steps):
        out.append([g["lr"] for g in opt.param_groups])
        opt.step()
        spec.scheduler.step()
    return spec, out


def test_inverse_sqrt_warmup_then_decay_like_fairseq():
    cfg = cfg_with(optim={"name": "adam", "lr": 4e-4, "scheduler": {"name": "inverse_sqrt", "warmup_updates": 4,
                                                                    "warmup_init_lr": 1e-7}})
    spec, lrs = lrs_over(cfg, 17)
    assert spec.interval == "step"
    main = [lr[0] for lr in lrs]
    assert main[0] == pytest.approx(1e-7)
    assert main[2] == pytest.approx(1e-7 + (4e-4 - 1e-7) * 2 / 4)
    assert main[4] == pytest.approx(4e-4)
    assert main[16] == pytest.approx(4e-4 * math.sqrt(4) / math.sqrt(16))
    assert [lr[1] for lr in lrs][16] == pytest.approx(0.1 * main[16])  # lr multipliers kept


def test_multistep_is_per_epoch():
    cfg = cfg_with(optim={"lr": 1.0, "scheduler": {"name": "multistep", "milestones": [2, 3], "gamma": 0.1}})
    spec, lrs = lrs_over(cfg, 4)
    assert spec.interval == "epoch"
    assert [lr[0] for lr in lrs] == pytest.approx([1.0, 1.0, 0.1, 0.01])


def test_epoch_sampler_deterministic_and_sharded():
    a = list(EpochSampler(10, seed=5, shuffle=True))
    assert a == list(EpochSampler(10, seed=5, shuffle=True)) and sorted(a) == list(range(10))
    s = EpochSampler(10, seed=5, shuffle=True)
    s.set_epoch(1)
    assert list(s) != a
    shards = [list(EpochSampler(10, 5, True, rank=r, world_size=3)) for r in range(3)]
    assert [len(x) for x in shards] == [4, 4, 4] and set(sum(shards, [])) == set(range(10))
    evals = [list(EpochSampler(10, 5, False, rank=r, world_size=3, pad=False)) for r in range(3)]
    assert sorted(sum(evals, [])) == list(range(10))


@pytest.mark.parametrize("unit", ["video", "query"])
def test_grounding_batch_contract(unit):
    cfg = cfg_with(data={"batch_unit": unit, "batch_size": 2, "select_split": None})
    records, feats = fake_grounding_data(n_videos=3, clips=10, queries=3)
    feats["train_v1"] = feats["train_v1"][:7]  # a shorter video gets padded
    pipe = GroundingPipeline(cfg, FeatureSpec(), records={"train": records}, features=feats)
    batches = list(pipe.train_loader())
    seen = [q for b in batches for q in b["qids"]]
    assert sorted(seen) == sorted(r.qid for r in records)
    by_qid = {r.qid: r for r in records}
    for b in batches:
        n_v, n_q = len(b["video_ids"]), len(b["qids"])
        assert b["feats"].shape[:2] == b["feat_mask"].shape and b["feats"].shape[0] == n_v
        assert b["durations"].shape == (n_v,) and b["query_video"].shape == (n_q,)
        assert b["windows"].shape == (n_q, 2) and len(b["queries"]) == n_q
        for q, qid in enumerate(b["qids"]):
            r = by_qid[qid]
            assert b["video_ids"][int(b["query_video"][q])] == r.video_id
            assert b["windows"][q].tolist() == list(r.windows[0]) and b["queries"][q] == r.query
        for v, vid in enumerate(b["video_ids"]):
            t = len(feats[vid])
            assert int(b["feat_mask"][v].sum()) == t
            assert torch.equal(b["feats"][v, :t], torch.from_numpy(feats[vid]))
        if unit == "video":
            assert n_q == 3 * n_v  # whole videos
    if unit == "query":
        assert all(len(b["qids"]) == 2 for b in batches[:-1])


def test_resampling_follows_feature_spec():
    cfg = cfg_with(data={"select_split": None})
    records, feats = fake_grounding_data(n_videos=2, clips=12)
    pipe = GroundingPipeline(cfg, FeatureSpec(mode="segment_mean", num_rows=4, l2_normalise=True),
                             records={"train": records}, features=feats)
    b = next(iter(pipe.train_loader()))
    assert b["feats"].shape[1] == 4 and bool(b["feat_mask"].all())


def test_missing_video_features_name_the_video():
    from vidlang.errors import DataError

    cfg = cfg_with(data={"select_split": None})
    records, feats = fake_grounding_data(n_videos=2)
    del feats["train_v1"]
    pipe = GroundingPipeline(cfg, FeatureSpec(), records={"train": records}, features=feats)
    with pytest.raises(DataError, match="train_v1"):
        list(pipe.train_loader())


def test_single_process_helpers_are_identity():
    t = torch.randn(3, 2, requires_grad=True)
    assert gather_with_grad(t) is t and world_size() == 1 and all_gather_objects(7) == [7]
    assert gather_rows(t, [3]) is t and all_reduce_sum(t) is t and gather_counts(3, 1) == [(3, 1)]


def _gather_worker(rank: int) -> tuple:
    x = torch.full((rank + 1, 2), float(rank + 1), requires_grad=True)  # sizes differ: 1 and 2
    g = gather_with_grad(x)
    (g.sum() * (rank + 1)).backward()
    # the known-count variant: one size exchange for several tensors, grad or not
    counts = gather_counts(rank + 1, 3 - rank)
    y = torch.full((rank + 1, 2), float(rank + 1), requires_grad=True)
    rows = gather_rows(y, [c[0] for c in counts])
    (rows.sum() * (rank + 1)).backward()
    ids = gather_rows(torch.arange(3 - rank) + 10 * rank, [c[1] for c in counts])
    total = all_reduce_sum(torch.tensor([float(rank + 1)]))
    return (g.detach().tolist(), x.grad.tolist(), counts, rows.detach().tolist(), y.grad.tolist(),
            ids.tolist(), total.tolist())


def test_gather_with_grad_two_processes():
    results = run_two_processes(_gather_worker)
    expect = [[1.0, 1.0], [2.0, 2.0], [2.0, 2.0]]
    assert results[0][0] == expect and results[1][0] == expect
    # each process's slice receives the sum of both processes' upstream gradients (1 + 2)
    assert results[0][1] == [[3.0, 3.0]] and results[1][1] == [[3.0, 3.0], [3.0, 3.0]]
    for r in (0, 1):
        counts, rows, y_grad, ids, total = results[r][2:]
        assert counts == [(1, 3), (2, 2)] and rows == expect and ids == [0, 1, 2, 10, 11]
        assert y_grad == [[3.0, 3.0]] * (r + 1) and total == [3.0]


def test_loader_workers_give_the_same_batches_from_an_hdf5_store(tmp_path):
    from engine_toy import write_fake_dataset

    root, feats = write_fake_dataset(tmp_path / "d", n_train=5, n_val=1, n_test=1)
    batches = {}
    for workers in (0, 2):
        cfg = cfg_with(data={"dataset": "qvhighlights", "root": root, "features": feats,
                             "batch_size": 2, "num_workers": workers})
        pipe = GroundingPipeline(cfg, FeatureSpec(mode="segment_mean", num_rows=4, l2_normalise=True))
        batches[workers] = list(pipe.train_loader())
    assert len(batches[0]) == 3
    for a, b in zip(batches[0], batches[2]):
        assert a["qids"] == b["qids"] and torch.equal(a["feats"], b["feats"])
