"""``vidlang evaluate {grounding,qvhighlights,retrieval}``: score prediction files offline.

Every number is a percentage (ranks are 1-based positions) and every key names the
convention that produced it. ``--json`` prints one JSON object; otherwise a rich table.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import typer

from vidlang.errors import ConfigError, DataError


def _check_windows(rows: Any, widths: tuple[int, ...], key: str) -> str | None:
    """Why a window list is bad, or None."""
    if not isinstance(rows, list):
        return f"{key} must be a list, got {type(rows).__name__}"
    for j, row in enumerate(rows):
        if not isinstance(row, list) or len(row) not in widths or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in row):
            return f"{key}[{j}] = {row!r} is not {' or '.join(map(str, widths))} finite numbers"
        if row[1] < row[0]:
            return f"{key}[{j}] = {row!r} ends before it starts"
    return None


def _load(path: Path, key: str, widths: tuple[int, ...], required: tuple[str, ...]) -> list[dict]:
    """A JSONL file whose lines all carry ``required`` keys and a valid ``key`` window list;
    the first bad line raises DataError naming file:line."""
    from vidlang.data.records import iter_jsonl

    out = []
    for lineno, obj in iter_jsonl(path):
        qid = str(obj.get("qid", "?"))
        for name in required:
            if name not in obj:
                raise DataError(f"missing key {name!r}", path, lineno, record=qid)
        problem = _check_windows(obj[key], widths, key) if key in obj else None
        if problem:
            raise DataError(problem, path, lineno, record=qid)
        out.append(obj)
    if not out:
        raise DataError("the file holds no records", path)
    return out


def _parse_floats(text: str | None, option: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"{option}: expected comma-separated numbers, got {text!r}") from None


def _parse_nms(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    if text.lower() in {"none", "off"}:
        return {"nms_thresh": None}
    try:
        return {"nms_thresh": float(text)}
    except ValueError:
        raise ConfigError(f"--nms: expected a number or 'none', got {text!r}") from None


def _emit(payload: dict[str, Any], metrics: dict[str, Any], as_json: bool, title: str,
          caption: str) -> None:
    if as_json:
        typer.echo(json.dumps(payload, default=float))
        return
    from rich.console import Console
    from rich.text import Text

    from vidlang.metrics.table import metrics_table

    console = Console()
    console.print(metrics_table(metrics, title=title))
    console.print(Text(caption), soft_wrap=True)


def _load_text_to_video(path: Path, num_videos: int) -> list[int]:
    """A JSON list of column indices, or ``{"videos": [ids], "text_to_video": [ids]}``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON ({e.msg})", path, e.lineno) from None
    if isinstance(data, dict):
        if "videos" not in data or "text_to_video" not in data:
            raise DataError("a map object needs 'videos' and 'text_to_video'", path)
        column = {str(v): i for i, v in enumerate(data["videos"])}
        unknown = [v for v in data["text_to_video"] if str(v) not in column]
        if unknown:
            raise DataError(f"text_to_video names a video not in 'videos': {unknown[0]!r}", path)
        return [column[str(v)] for v in data["text_to_video"]]
    if not isinstance(data, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in data):
        raise DataError("expected a list of video column indices (one per text row)", path)
    return data


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command group."""
    group = typer.Typer(help="Score prediction files with the official evaluation conventions.",
                        no_args_is_help=True)
    app.add_typer(group, name="evaluate")

    @group.command("grounding")
    def grounding_cmd(
        pred: Path = typer.Option(..., "--pred", help="Predictions JSONL: qid, pred_relevant_windows [[s, e, score]]."),
        gt: Path = typer.Option(..., "--gt", help="Ground truth JSONL: qid, duration, relevant_windows [[s, e]]."),
        preset: str = typer.Option("mmn", "--preset", help="mmn | 2dtan | cpl | moment_detr (alias qvh)."),
        dataset: Optional[str] = typer.Option(None, "--dataset", help="Per-dataset thresholds / NMS of the preset: charades_sta | activitynet | tacos."),
        iou_thresholds: Optional[str] = typer.Option(None, "--iou-thresholds", help="e.g. 0.3,0.5,0.7"),
        nms: Optional[str] = typer.Option(None, "--nms", help="NMS IoU threshold, or 'none'."),
        topk: Optional[int] = typer.Option(None, "--topk", help="Keep at most this many windows after NMS."),
        iou_op: Optional[str] = typer.Option(None, "--iou-op", help="ge (IoU >= m) | gt (IoU > m)."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        """R@n at IoU thresholds and mIoU under a named convention."""
        from vidlang.metrics.grounding import evaluate_grounding_detailed

        overrides: dict[str, Any] = _parse_nms(nms)
        thresholds = _parse_floats(iou_thresholds, "--iou-thresholds")
        for key, value in (("thresholds", thresholds), ("topk_cap", topk), ("iou_op", iou_op)):
            if value is not None:
                overrides[key] = value
        predictions = _load(pred, "pred_relevant_windows", (2, 3), ("qid", "pred_relevant_windows"))
        ground_truth = _load(gt, "relevant_windows", (2,), ("qid", "relevant_windows"))
        result = evaluate_grounding_detailed(predictions, ground_truth, preset, dataset, **overrides)
        conv = result.convention
        payload = {"preset": conv.name, "convention": conv.describe(), "metrics": result.metrics,
                   "queries": result.num_queries,
                   "skipped": [{"qid": q, "reason": r} for q, r in result.skipped]}
        _emit(payload, result.metrics, as_json, f"grounding {conv.tag} ({result.num_queries} queries)",
              f"{conv.describe()}\n{result.skipped_summary()}")

    @group.command("qvhighlights")
    def qvhighlights_cmd(
        pred: Path = typer.Option(..., "--pred", help="moment_detr submission JSONL."),
        gt: Path = typer.Option(..., "--gt", help="QVHighlights GT JSONL (e.g. highlight_val_release.jsonl)."),
        as_json: bool = typer.Option(False, "--json", help="Print moment_detr's JSON object."),
    ) -> None:
        """moment_detr's standalone evaluator: MR-mAP, MR-R1, length buckets, HL-mAP / HL-Hit1."""
        from vidlang.metrics.qvhighlights import evaluate_qvhighlights

        predictions = _load(pred, "pred_relevant_windows", (3,), ("qid",))
        ground_truth = _load(gt, "relevant_windows", (2,), ("qid", "duration", "relevant_windows"))
        results = evaluate_qvhighlights(predictions, ground_truth)
        _emit(results, results, as_json, f"QVHighlights [moment_detr] ({len(ground_truth)} queries)",
              "moment_detr standalone_eval conventions; x100, 2 decimals")

    @group.command("retrieval")
    def retrieval_cmd(
        sim: Path = typer.Option(..., "--sim", help="Similarity matrix .npy, texts x videos."),
        text_to_video_map: Optional[Path] = typer.Option(None, "--text-to-video-map", help="JSON: video column of each text row (multi-caption sets)."),
        ties: str = typer.Option("average", "--ties", help="average | optimistic | pessimistic."),
        v2t_mode: str = typer.Option("maxpool", "--v2t-mode", help="maxpool (CLIP4Clip) | best_caption (CE / QB-Norm)."),
        ks: str = typer.Option("1,5,10,50", "--ks", help="The K of R@K."),
        postproc: str = typer.Option("none", "--postproc", help="none | dsl | qbnorm (reported separately)."),
        bank_sim: Optional[Path] = typer.Option(None, "--bank-sim", help="QB-Norm querybank x videos .npy."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        """Text-to-video and video-to-text R@K, MdR, MnR with explicit tie handling."""
        from vidlang.metrics.retrieval import retrieval_metrics

        matrix = _load_npy(sim)
        owner = _load_text_to_video(text_to_video_map, matrix.shape[1]) if text_to_video_map else None
        k_values = tuple(int(k) for k in _parse_floats(ks, "--ks") or ())
        bank = _load_npy(bank_sim) if bank_sim else None
        metrics = retrieval_metrics(matrix, owner, ties=ties, v2t_mode=v2t_mode, ks=k_values,
                                    postproc=postproc, bank_sim=bank)
        payload = {"ties": ties, "v2t_mode": v2t_mode, "postproc": postproc, "metrics": metrics}
        _emit(payload, metrics, as_json, f"retrieval ({matrix.shape[0]} texts x {matrix.shape[1]} videos)",
              f"ties={ties}; v2t={v2t_mode}; post-processing={postproc} (reported separately)")


def _load_npy(path: Path) -> Any:
    import numpy as np

    if not path.is_file():
        raise DataError("no such file", path)
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise DataError(f"not a readable .npy array ({e})", path) from None
