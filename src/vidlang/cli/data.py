"""``vidlang data``: inspect annotations and feature stores.

* ``vidlang data stats --dataset NAME [--root DIR] [--split S] [--json]`` (or ``--ann FILE
  [--reader NAME]``): per-split counts, durations, moment and query lengths, and the reader's
  load report (read / kept / clamped / dropped).
* ``vidlang data validate --ann FILE --features F [--key-pattern P] [--reader NAME] [--dim D]
  [--json]`` (or ``--dataset NAME --split S [--root DIR]``): every annotated video must be in
  the store, with the right dimension, finite values and at least one clip; exits 1 when
  anything is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from vidlang.data.checks import record_problems
from vidlang.errors import ConfigError

KINDS = ("grounding", "captions", "paragraphs")


def _choose_reader(ann: Path, reader: str | None, kind: str | None) -> tuple[str, str]:
    """(reader name, how it was chosen): ``--reader`` when given, else the reader the file's
    content matches (:func:`vidlang.data.readers.sniff.sniff_readers`), of ``kind`` if given."""
    from vidlang.data.readers import record_kind
    from vidlang.data.readers.sniff import sniff_readers
    from vidlang.registry import READERS

    if reader is not None:
        return reader, "--reader"
    matches = sniff_readers(ann)
    if kind is not None:
        matches = [m for m in matches if record_kind(READERS.get(m)) == kind]
    if not matches:
        what = f"{kind} " if kind else ""
        raise ConfigError(f"--reader: cannot tell the {what}format of {ann} from its content; "
                          f"name a reader (known: {', '.join(READERS.names())})")
    others = f"; also readable as {', '.join(matches[1:])}" if len(matches) > 1 else ""
    return matches[0], f"detected from the content of {ann.name}{others}"


def _read_annotations(ann: Path, reader: str | None, clamp: str,
                      kind: str | None = None) -> tuple[str, list[Any], Any, str]:
    """(record kind, records, LoadReport, reader name) of one annotation file; says on stderr
    which reader was used when it was detected from the content."""
    from vidlang.data.readers import record_kind
    from vidlang.data.readers.sniff import sniff_readers
    from vidlang.errors import DataError
    from vidlang.registry import READERS

    name, how = _choose_reader(ann, reader, kind)
    fn = READERS.get(name)
    if reader is None:
        typer.echo(f"reader: {name} ({how})", err=True)
    k = record_kind(fn)
    try:
        records, report = fn(ann, clamp=clamp) if k != "captions" else fn(ann)
    except DataError as e:
        if reader is None:
            raise
        matches = [m for m in sniff_readers(ann) if m != name]
        hint = f" (the content matches reader {', '.join(matches)}; try --reader {matches[0]})" if matches else ""
        raise DataError(f"{e.reason}{hint}", e.path, e.line, e.record) from None
    return k, records, report, name


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    import numpy as np

    arr = np.asarray(values, dtype=np.float64)
    return {"min": float(arr.min()), "mean": float(arr.mean()), "median": float(np.median(arr)),
            "max": float(arr.max())}


def _words(text: str) -> int:
    return len(text.split())


def summarise(kind: str, records: list[Any]) -> dict[str, Any]:
    """Counts and spreads of one split's records (what ``vidlang data stats`` prints)."""
    if kind == "grounding":
        windows = [(r, w) for r in records for w in r.windows]
        return {"queries": len(records), "videos": len({r.video_id for r in records}),
                "windows": len(windows),
                "duration_s": _spread([r.duration for r in {r.video_id: r for r in records}.values()]),
                "moment_s": _spread([e - s for _, (s, e) in windows]),
                "moment_fraction": _spread([(e - s) / r.duration for r, (s, e) in windows]),
                "query_words": _spread([_words(r.query) for r in records])}
    if kind == "captions":
        caps = [c for r in records for c in r.captions]
        return {"videos": len(records), "captions": len(caps),
                "captions_per_video": _spread([len(r.captions) for r in records]),
                "caption_words": _spread([_words(c) for c in caps])}
    sents = [s for r in records for s in r.sentences]
    return {"videos": len(records), "sentences": len(sents),
            "duration_s": _spread([r.duration for r in records]),
            "sentences_per_video": _spread([len(r.sentences) for r in records]),
            "sentence_words": _spread([_words(s) for s in sents]),
            "paragraph_words": _spread([_words(r.text()) for r in records])}


def _dataset_rows(name: str, root: Path | None, split: str | None, kind: str | None,
                  clamp: str) -> list[tuple[str, str, list[Any], Any]]:
    """(kind, split, records, report) for the requested kinds and splits of a dataset.

    Without ``--kind``, kinds (and splits) the dataset does not have are skipped; a dataset
    object without a ``splits(kind)`` method needs ``--split``.
    """
    from vidlang.data.catalog import LOADERS, get_dataset

    dataset = get_dataset(name)
    listed = getattr(dataset, "splits", None)
    if not callable(listed) and split is None:
        raise ConfigError(f"--split: dataset {name!r} does not list its splits; name one")
    rows: list[tuple[str, str, list[Any], Any]] = []
    for k in [kind] if kind else KINDS:
        known = listed(k) if callable(listed) else [split]
        if kind is None and split is not None and split not in known:
            continue
        for s in [split] if split else known:
            if s is None:  # cannot happen: without --split the dataset lists its splits
                raise ConfigError(f"--split: dataset {name!r} does not list its splits; name one")
            extra = {"clamp": clamp} if k == "grounding" else {}
            try:
                records, report = LOADERS[k](name, s, root, **extra)
            except ConfigError:
                if kind is not None:
                    raise
                continue  # this dataset object has no records of kind k
            rows.append((k, s, records, report))
    if not rows:
        raise ConfigError(f"--split: dataset {name!r} has no split {split!r}" + (f" of kind {kind!r}" if kind else ""))
    return rows


def _fmt_spread(sp: dict[str, float] | None) -> str:
    if sp is None:
        return "-"
    return f"{sp['min']:.3g} / {sp['mean']:.3g} / {sp['max']:.3g}"


def _print_stats(results: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for res in results:
        table = Table(title=f"{res['source']} ({res['kind']}) split={res['split']}", show_header=True)
        table.add_column("statistic")
        table.add_column("value (min / mean / max where a spread)")
        for key, value in res["stats"].items():
            table.add_row(key, _fmt_spread(value) if isinstance(value, dict) or value is None else str(value))
        rep = res["report"]
        table.add_row("load report", f"read {rep['read']}, kept {rep['kept']}, "
                      f"clamped {len(rep['clamped'])}, dropped {len(rep['dropped'])}")
        for title in ("dropped", "clamped"):
            for item in rep[title][:3]:
                table.add_row(f"  {title}", item)
            if len(rep[title]) > 3:
                table.add_row(f"  {title}", f"... and {len(rep[title]) - 3} more")
        console.print(table)


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(help="Inspect annotation files, datasets and feature stores.",
                           no_args_is_help=True)

    @data_app.command("stats")
    def stats(
        dataset: str = typer.Option(None, "--dataset", help="Catalog name (see vidlang.data.catalog)."),
        root: Path = typer.Option(None, "--root", help="Data root (default $VIDLANG_DATA or ../shared/data)."),
        split: str = typer.Option(None, "--split", help="One split (default: all)."),
        kind: str = typer.Option(None, "--kind", help="grounding, captions or paragraphs (default: all)."),
        ann: Path = typer.Option(None, "--ann", help="An annotation file instead of --dataset."),
        reader: str = typer.Option(None, "--reader", help="Reader for --ann (default: detected from the content)."),
        clamp: str = typer.Option("clamp", "--clamp", help="Window policy: clamp, drop or error."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    ) -> None:
        """Per-split counts, durations, moment and query lengths, and the load report."""
        _check_clamp(clamp)
        if (dataset is None) == (ann is None):
            raise ConfigError("stats: give exactly one of --dataset or --ann")
        if kind is not None and kind not in KINDS:
            raise ConfigError(f"--kind: unknown {kind!r}; known: {', '.join(KINDS)}")
        if ann is not None:
            k, records, report, used = _read_annotations(ann, reader, clamp, kind)
            rows = [(k, split or "-", records, report)]
            source = f"{ann} (reader {used})"
        else:
            rows = _dataset_rows(dataset, root, split, kind, clamp)
            source = dataset
        results = [{"source": source, "kind": k, "split": s, "stats": summarise(k, recs),
                    "report": rep.to_json(), "problems": record_problems(k, recs)}
                   for k, s, recs, rep in rows]
        _warn_problems([(f"{source} split={s}", k, recs) for k, s, recs, _ in rows])
        if as_json:
            typer.echo(json.dumps(results, indent=2))
        else:
            _print_stats(results)

    @data_app.command("validate")
    def validate(
        features: Path = typer.Option(..., "--features", help="HDF5 file or folder of .npy/.npz."),
        ann: Path = typer.Option(None, "--ann", help="Annotation file whose videos must have features."),
        reader: str = typer.Option(None, "--reader", help="Reader for --ann (default: detected from the content)."),
        dataset: str = typer.Option(None, "--dataset", help="A catalog dataset instead of --ann."),
        split: str = typer.Option(None, "--split", help="Split of --dataset (required with it)."),
        root: Path = typer.Option(None, "--root", help="Data root for --dataset."),
        key_pattern: str = typer.Option(None, "--key-pattern", help="HDF5 key, e.g. '{vid}/c3d_features'."),
        dim: int = typer.Option(None, "--dim", help="Expected feature dimension (default: the store's)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
        max_rows: int = typer.Option(50, "--max-rows", help="Problems listed in the table."),
    ) -> None:
        """Check every annotated video against a feature store; exit 1 if anything is wrong."""
        from vidlang.data.features import open_feature_store, validate_store

        if (dataset is None) == (ann is None):
            raise ConfigError("validate: give exactly one of --ann or --dataset")
        if ann is not None:
            kind, records, load_report, _ = _read_annotations(ann, reader, "clamp")
        else:
            if split is None:
                raise ConfigError("--split: required with --dataset")
            kind, _, records, load_report = _dataset_rows(dataset, root, split, None, "clamp")[0]
        with open_feature_store(features, key_pattern) as store:
            report = validate_store(store, (r.video_id for r in records), dim)
        problems = record_problems(kind, records)
        if as_json:
            typer.echo(json.dumps({**report.to_json(), "annotations": load_report.to_json(),
                                   "record_problems": problems}, indent=2))
        else:
            _print_validation(report, load_report.summary(max_items=0), max_rows)
        _warn_problems([(str(ann or f"{dataset} split={split}"), kind, records)])
        if not report.ok or problems:
            # SystemExit, not typer.Exit: click returns (not raises) Exit codes when the CLI runs
            # with standalone_mode=False, as vidlang.cli.main does.
            raise SystemExit(1)

    app.add_typer(data_app, name="data")


def _warn_problems(rows: list[tuple[str, str, list[Any]]]) -> None:
    """One ``warning:`` line on stderr per record problem (duplicate qids, empty queries ...)."""
    from vidlang.data.checks import describe_problems

    for where, kind, records in rows:
        for line in describe_problems(record_problems(kind, records), kind, records):
            typer.echo(f"warning: {where}: {line}", err=True)


def _check_clamp(clamp: str) -> None:
    from vidlang.data.records import ClampPolicy

    if clamp not in {p.value for p in ClampPolicy}:
        raise ConfigError(f"--clamp: unknown {clamp!r}; known: {', '.join(p.value for p in ClampPolicy)}")


def _print_validation(report: Any, ann_summary: str, max_rows: int) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(ann_summary, highlight=False, soft_wrap=True)
    counts = ", ".join(f"{k} {v}" for k, v in report.counts().items())
    status = "[green]OK[/]" if report.ok else "[red]PROBLEMS[/]"
    console.print(f"{status} {report.store}: {report.videos} videos checked, expected dim "
                  f"{report.expected_dim}; {counts}", highlight=False, soft_wrap=True)
    if report.problems:
        table = Table("video", "problem", "detail")
        for p in report.problems[:max_rows]:
            table.add_row(p.video_id, p.problem, p.detail)
        console.print(table)
        if len(report.problems) > max_rows:
            console.print(f"... and {len(report.problems) - max_rows} more (use --json for all)")
