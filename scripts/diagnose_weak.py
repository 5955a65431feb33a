"""How much does a CPL / CCR reconstruction depend on the video?  (issue 5 diagnostic)

    # a trained run (its saved config gives the data; --root overrides data.root)
    .venv/bin/python scripts/diagnose_weak.py --ckpt runs/cpl --split val
    # or train briefly first, then diagnose the result
    .venv/bin/python scripts/diagnose_weak.py --config cpl/cpu --set data.root=/tmp/synthvl_small \\
        --epochs 2 --out /tmp/diag_cpl --split val
    # the untrained model (random weights, same vocabulary)
    .venv/bin/python scripts/diagnose_weak.py --config cpl/cpu --set data.root=DIR --epochs 0

For every query of ``--split`` (eval mode, the model's own per-query test mask) it decodes the
masked sentence under several video conditions and reports the mean per-token negative
log-likelihood (plain NLL, no label smoothing) of the tokens the model is scored on:

* ``best``: the best proposal k* (lowest ranking loss, as at inference) over the true video;
* ``best_rolled``: the same Gaussian over another video of the batch (video rows rolled by one);
* ``ref`` / ``ref_rolled``: the whole-video reference branch, true / rolled video;
* ``gt``: a Gaussian built from the ground-truth window (centre, width) like a proposal;
* ``gt_box``: a hard 0/1 mask of the ground-truth window (what the box of a proposal covers).

The ground truth is used here only, to measure; never in training. Columns split the scored
tokens by what they predict: a content / function word (``vidlang.text.content_words``) whose
input position was masked or not, and the end token. ``gain`` rows are rolled minus true:
how many nats the right video saves. Also printed: mean IoU of k*'s box with the ground truth,
and how often the GT Gaussian reconstructs better than k*. ``--json`` writes everything.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

CONDITIONS = ("best", "best_rolled", "ref", "ref_rolled", "gt", "gt_box")
CLASSES = ("all", "masked content", "masked function", "unmasked content", "unmasked function", "end")


def token_nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``[N, T]`` NLL of the target ids under ``[N, T, V]`` logits."""
    return -logits.log_softmax(dim=-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)


def token_classes(model: Any, queries: list[str], enc: Any) -> torch.Tensor:
    """``[Q, L+1]`` index into ``CLASSES[1:]`` of what each decoder position predicts."""
    from vidlang.text.content_words import content_word_mask
    from vidlang.text.vocab import encode_batch

    toks, _ = encode_batch(model.vocab, queries, model.cfg.max_words)
    q, t = enc.target.shape
    cls = torch.full((q, t), 4, dtype=torch.long)  # end token unless a word follows
    masked = enc.masked.cpu() if enc.masked is not None else torch.zeros(q, t, dtype=torch.bool)
    for i, words in enumerate(toks):
        for j, is_content in enumerate(content_word_mask(words)):
            # position j predicts word j (0-based), which sits at input position j + 1
            cls[i, j] = (0 if is_content else 1) + (0 if bool(masked[i, j + 1]) else 2)
    return cls


def gt_weights(model: Any, batch: dict[str, Any], box: bool) -> torch.Tensor:
    """``[Q, P]`` weights of each query's ground-truth window (Gaussian or hard box)."""
    dur = batch["durations"][batch["query_video"]].unsqueeze(1)
    win = (batch["windows"] / dur).clamp(0.0, 1.0)
    if box:
        x = torch.linspace(0.0, 1.0, model.cfg.num_props_clips)
        inside = (x >= win[:, :1]) & (x <= win[:, 1:])
        nearest = (x - win.mean(dim=1, keepdim=True)).abs().argmin(dim=1, keepdim=True)
        return inside.float().scatter(1, nearest, 1.0)  # never empty
    return model.gaussians(win.mean(dim=1), win[:, 1] - win[:, 0])


def rolled(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch with every video row's features replaced by the next row's."""
    out = dict(batch)
    out["feats"] = batch["feats"].roll(1, dims=0)
    if batch.get("feat_mask") is not None:
        out["feat_mask"] = batch["feat_mask"].roll(1, dims=0)
    return out


@torch.no_grad()
def diagnose(model: Any, batches: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Sums of per-token NLL per (condition, class), token counts and proposal statistics."""
    from vidlang.models.blocks.gaussian import proposal_boxes
    from vidlang.ops.windows import window_iou

    model.eval()
    sums = torch.zeros(len(CONDITIONS), len(CLASSES) - 1, dtype=torch.float64)
    counts = torch.zeros(len(CLASSES) - 1, dtype=torch.float64)
    iou_sum = gt_wins = 0.0
    n_q = 0
    for batch in batches:
        if batch["feats"].shape[0] < 2:
            continue  # nothing to roll against
        enc = model._encode(batch)
        enc_r = dataclasses.replace(enc, props=model._encode(rolled(batch)).props)
        q, k = enc.center.shape
        rows = torch.arange(q)
        gauss = model.gaussians(enc.center, enc.width)
        scores = model.rank_scores(model._decode(enc, rows.repeat_interleave(k), gauss.reshape(q * k, -1)),
                                   enc, rows.repeat_interleave(k)).view(q, k)
        best = scores.argmin(dim=1)
        g_best = gauss[rows, best]
        ones = torch.ones_like(g_best)
        weights = {"best": (enc, g_best), "best_rolled": (enc_r, g_best), "ref": (enc, ones),
                   "ref_rolled": (enc_r, ones), "gt": (enc, gt_weights(model, batch, box=False)),
                   "gt_box": (enc, gt_weights(model, batch, box=True))}
        cls = token_classes(model, batch["queries"], enc)
        scored = enc.loss_mask.cpu()
        onehot = torch.nn.functional.one_hot(cls, len(CLASSES) - 1).double() * scored.unsqueeze(-1)
        counts += onehot.sum(dim=(0, 1))
        per_q = {}
        for c, name in enumerate(CONDITIONS):
            e, w = weights[name]
            nll = token_nll(model._decode(e, rows, w), enc.target).cpu().double()
            sums[c] += (nll.unsqueeze(-1) * onehot).sum(dim=(0, 1))
            per_q[name] = (nll * scored).sum(1) / scored.sum(1).clamp(min=1)
        gt_wins += float((per_q["gt"] < per_q["best"]).sum())
        dur = batch["durations"][batch["query_video"]].unsqueeze(1)
        box = proposal_boxes(enc.center[rows, best], enc.width[rows, best])
        iou_sum += float(window_iou(box, (batch["windows"] / dur).to(box)).sum())
        n_q += q
    means = {name: {cl: float(sums[c, j] / counts[j]) if counts[j] else math.nan
                    for j, cl in enumerate(CLASSES[1:])} for c, name in enumerate(CONDITIONS)}
    for c, name in enumerate(CONDITIONS):
        means[name]["all"] = float(sums[c].sum() / counts.sum()) if counts.sum() else math.nan
    return {"queries": n_q, "tokens": {cl: int(counts[j]) for j, cl in enumerate(CLASSES[1:])},
            "nll": means, "best_iou": iou_sum / max(n_q, 1), "gt_beats_best": gt_wins / max(n_q, 1)}


def format_table(res: dict[str, Any]) -> str:
    """Markdown table of the mean NLL per condition and token class, plus the gain rows."""
    nll = res["nll"]
    head = "| condition | " + " | ".join(CLASSES) + " |\n|---|" + "---|" * len(CLASSES) + "\n"
    toks = {**res["tokens"], "all": sum(res["tokens"].values())}
    lines = ["| tokens | " + " | ".join(str(toks[c]) for c in CLASSES) + " |"]
    for name in CONDITIONS:
        lines.append(f"| {name} | " + " | ".join(f"{nll[name][c]:.3f}" for c in CLASSES) + " |")
    for a, b in (("best_rolled", "best"), ("ref_rolled", "ref"), ("ref", "gt"), ("best", "gt")):
        lines.append(f"| gain {a} - {b} | " + " | ".join(f"{nll[a][c] - nll[b][c]:+.3f}" for c in CLASSES) + " |")
    tail = (f"\nqueries {res['queries']}; mean IoU(k*, GT) {res['best_iou']:.3f}; "
            f"GT Gaussian reconstructs better than k* for {100 * res['gt_beats_best']:.1f}% of queries\n")
    return head + "\n".join(lines) + "\n" + tail


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--ckpt", type=Path, help="a run folder (or its best/ or last/)")
    src.add_argument("--config", help="a config name to train briefly (see --epochs, --out)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override key=value")
    ap.add_argument("--root", help="data.root (default: the checkpoint's)")
    ap.add_argument("--epochs", type=int, default=1, help="with --config: epochs to train (0: untrained)")
    ap.add_argument("--out", type=Path, help="with --config: run folder (default: a temporary one)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--max-batches", type=int, default=None)
    ap.add_argument("--json", type=Path, help="write the numbers here")
    args = ap.parse_args(argv)

    import tempfile

    from vidlang.engine.checkpoint import build_model, load_model, resolve_model_dir
    from vidlang.engine.config import load_config
    from vidlang.engine.evaluation import build_pipeline
    from vidlang.engine.run import train

    overrides = list(args.overrides) + ([f"data.root={args.root}"] if args.root else [])
    if args.ckpt is not None:
        model = load_model(args.ckpt)
        cfg = load_config(resolve_model_dir(args.ckpt) / "config.yaml", overrides)
    else:
        cfg = load_config(args.config, [*overrides, f"trainer.max_epochs={max(args.epochs, 1)}",
                                         "trainer.progress_bar=false"])
        if args.epochs > 0:
            out = args.out or Path(tempfile.mkdtemp(prefix="diagnose_weak_"))
            train(cfg, out)
            model = load_model(out / "last")
        else:
            torch.manual_seed(cfg.seed)
            model = build_model(cfg)
            model.prepare(build_pipeline(cfg, model).training_records())
    pipe = build_pipeline(cfg, model)
    loader = pipe.eval_loader(args.split)
    batches = (b for i, b in enumerate(loader) if args.max_batches is None or i < args.max_batches)
    res = diagnose(model, batches)
    print(f"{type(model).__name__} on {args.split}: mean NLL per scored token (nats)\n")
    print(format_table(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1), encoding="utf-8")
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
