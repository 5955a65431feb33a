"""Resolve every shipped config under ``src/vidlang/configs`` to its final typed config and
dump it as JSON, so a change to the config layers or the config dataclasses can show it moved
no effective value.

    python scripts/dump_configs.py --out /tmp/configs_before.json    # on the old commit
    python scripts/dump_configs.py --out /tmp/configs_after.json     # on the new commit
    diff /tmp/configs_before.json /tmp/configs_after.json

Each entry is the resolved config as ``vidlang.engine.config.config_to_container`` writes it
(what a run folder's ``config.yaml`` holds), plus ``effective_nms``: the IoU threshold and cap
that decide which windows the grounding metrics see (``null`` for non-grounding configs).
Files that are layers only (no ``model.name``) are listed with the error they raise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def effective_nms(cfg: Any) -> dict[str, Any] | None:
    """The suppression the grounding evaluation applies: today's code suppresses in the model
    (``model.nms_thresh``/``model.max_predictions``) and again in the metric (the preset);
    after the redesign only the eval post-processing step does."""
    if cfg.task != "grounding":
        return None
    from vidlang.engine.pipelines import grounding as gp

    if hasattr(gp, "grounding_postprocess"):
        post = gp.grounding_postprocess(cfg)
        return {"thresh": post.convention.nms_thresh, "kind": post.convention.nms_kind,
                "cap": post.convention.topk_cap}
    from vidlang.errors import ConfigError
    from vidlang.metrics import resolve_convention

    options = dict(cfg.eval.overrides)   # as score_grounding resolved it before the redesign
    dataset = options.pop("dataset", None)
    if dataset is None:
        try:
            resolve_convention(cfg.eval.preset, cfg.data.dataset)
            dataset = cfg.data.dataset
        except ConfigError:
            pass
    conv = resolve_convention(cfg.eval.preset, dataset, **options)
    model_t = getattr(cfg.model, "nms_thresh", None)
    model_cap = getattr(cfg.model, "max_predictions", None)
    metric_t, cap = conv.nms_thresh, conv.topk_cap
    # hard NMS at t1 then at t2 >= t1 keeps what NMS at t1 keeps (survivors overlap <= t1)
    if model_t is None:
        thresh: Any = metric_t
    elif metric_t is None or model_t <= metric_t:
        thresh = model_t
    else:
        thresh = f"composition {model_t} then {metric_t}"
    caps = [c for c in (model_cap, cap) if c is not None]
    return {"thresh": thresh, "kind": conv.nms_kind, "cap": min(caps) if caps else None}


def dump(names: list[str] | None = None) -> dict[str, Any]:
    from vidlang.engine.config import config_to_container, load_config, packaged_configs
    from vidlang.errors import VidlangError

    out: dict[str, Any] = {}
    for name in names or packaged_configs():
        try:
            cfg = load_config(name)
        except VidlangError as e:
            out[name] = {"error": str(e).split(";")[0]}
            continue
        container = config_to_container(cfg)
        if cfg.task == "grounding":
            container["model"].pop("nms_thresh", None)
            container["model"].pop("max_predictions", None)
        out[name] = {"config": container, "effective_nms": effective_nms(cfg)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="JSON file (default: stdout)")
    args = ap.parse_args(argv)
    text = json.dumps(dump(), indent=1, sort_keys=True, default=str)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
