"""Extract a collection of video files into one canonical feature file: listing, sharding,
resuming, failure reports, and merging shard outputs (``vidlang extract``; docs/video.md)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidlang.errors import ConfigError, DataError
from vidlang.video.decode import VIDEO_SUFFIXES, VideoError
from vidlang.video.extractors.base import Extractor
from vidlang.video.features import ATTR_EXTRACTOR, ATTR_OPTIONS

LIST_SUFFIXES = (".txt", ".lst", ".list")


@dataclass(frozen=True)
class VideoEntry:
    """One input video: its id (the file name without extension) and its path."""

    vid: str
    path: Path


def _entries_from_list(list_file: Path) -> list[Path]:
    paths = []
    for line in list_file.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            p = Path(line)
            paths.append(p if p.is_absolute() else list_file.parent / p)
    return paths


def list_videos(inputs: Sequence[str | Path]) -> list[VideoEntry]:
    """Videos named by ``inputs`` (folders, searched recursively for video suffixes; video
    files; or text files listing one path per line), sorted by id. Two files with the same id
    are an error naming both."""
    paths: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            paths.extend(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in VIDEO_SUFFIXES)
        elif p.is_file() and p.suffix.lower() in LIST_SUFFIXES:
            paths.extend(_entries_from_list(p))
        elif p.exists() or p.suffix.lower() in VIDEO_SUFFIXES:
            paths.append(p)  # a missing video file is reported as a failure, not fatal
        else:
            raise DataError("not a folder, a video file or a list of videos", p)
    by_id: dict[str, Path] = {}
    for p in paths:
        vid = p.stem
        if vid in by_id and by_id[vid].resolve() != p.resolve():
            raise DataError(f"video id {vid!r} is also the id of {by_id[vid]}; ids are file names "
                            "without extension and must be unique", p)
        by_id[vid] = p
    return [VideoEntry(vid, by_id[vid]) for vid in sorted(by_id)]


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n (0-based, as SLURM array task ids)."""
    try:
        i_text, n_text = text.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise ConfigError(f"--shard: expected i/n such as 0/4, got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard: need 0 <= i < n, got {text!r}")
    return i, n


def select_shard(entries: Sequence[VideoEntry], index: int, count: int) -> list[VideoEntry]:
    """Shard ``index`` of ``count``: every count-th video in sorted-id order, so each process
    gets a fixed, disjoint share whatever order the files were listed in."""
    ordered = sorted(entries, key=lambda e: e.vid)
    return [e for k, e in enumerate(ordered) if k % count == index]


def shard_output(out: str | Path, index: int, count: int) -> Path:
    """Where shard ``index``/``count`` writes: ``<out dir>/<stem>.shard<i>-of-<n>/<name>`` (its
    own folder, so each shard's ``durations.json`` is its own)."""
    out = Path(out)
    return out.parent / f"{out.stem}.shard{index}-of-{count}" / out.name


def failures_path(out: str | Path) -> Path:
    """The JSON report written next to a feature file: ``<stem>.failures.json``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.failures.json")


@dataclass
class ExtractionReport:
    """What one extraction run did; ``failed`` lists ``{"video_id", "path", "error"}``."""

    output: str
    extractor: str
    options: dict[str, Any]
    total: int = 0
    extracted: int = 0
    skipped_existing: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"output": self.output, "extractor": self.extractor, "options": self.options,
                "total": self.total, "extracted": self.extracted,
                "skipped_existing": self.skipped_existing, "failed_count": len(self.failed),
                "failed": self.failed}

    def summary(self) -> str:
        line = (f"{self.output}: {self.extracted} extracted, {self.skipped_existing} already there, "
                f"{len(self.failed)} failed of {self.total}")
        if self.failed:
            line += f" (see {failures_path(self.output)})"
        return line

    def write(self) -> Path:
        path = failures_path(self.output)
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
        return path


def _read_header(path: Path) -> dict[str, Any]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    except OSError as e:
        raise DataError(f"cannot open as HDF5 ({e})", path) from None
    return attrs


def _header_key(attrs: dict[str, Any]) -> tuple[Any, ...]:
    return (attrs.get(ATTR_EXTRACTOR), attrs.get(ATTR_OPTIONS), int(attrs.get("feature_dim", -1)),
            float(attrs.get("clip_seconds", float("nan"))))


def open_output(out: Path, clip_seconds: float, dim: int, extractor: str, options: str,
                resume: bool) -> Any:
    """A :class:`CanonicalH5Writer` on ``out`` whose attrs record the extractor; with
    ``resume`` an existing file is reopened if the same extractor wrote it, else refused."""
    import h5py

    from vidlang.data.features import CanonicalH5Writer

    if resume and out.exists():
        attrs = _header_key(_read_header(out))
        wanted = (extractor, options, dim, clip_seconds)
        if attrs != wanted:
            raise DataError(f"cannot resume: written by extractor {attrs[0]!r} with {attrs[1]}, "
                            f"dim {attrs[2]}; asked for {extractor!r} with {options}, dim {dim}. "
                            "Use another --out or --overwrite", out)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        with CanonicalH5Writer(out, clip_seconds, dim):
            pass
        with h5py.File(out, "a") as f:
            f.attrs[ATTR_EXTRACTOR] = extractor
            f.attrs[ATTR_OPTIONS] = options
    return CanonicalH5Writer(out, clip_seconds, dim, resume=True)


def extract_collection(entries: Sequence[VideoEntry], extractor: Extractor, out: str | Path,
                       resume: bool = True,
                       progress: Callable[[VideoEntry, str], None] | None = None) -> ExtractionReport:
    """Extract every entry into the canonical feature file ``out`` (videos already there are
    skipped when ``resume``); unreadable videos are recorded, not fatal. ``progress(entry,
    status)`` is called after each video with ``extracted``, ``skipped`` or ``failed``. The
    report is also written to :func:`failures_path`."""
    out = Path(out)
    report = ExtractionReport(str(out), extractor.name, json.loads(extractor.describe()),
                              total=len(entries))
    with open_output(out, extractor.clip_seconds, extractor.dim, extractor.name,
                     extractor.describe(), resume) as writer:
        for entry in sorted(entries, key=lambda e: e.vid):
            if entry.vid in writer:
                report.skipped_existing += 1
                status = "skipped"
            else:
                try:
                    feats, duration = extractor.extract(entry.path)
                except VideoError as e:
                    report.failed.append({"video_id": entry.vid, "path": str(entry.path), "error": e.reason})
                    status = "failed"
                else:
                    writer.add(entry.vid, feats, duration)
                    writer.flush()
                    report.extracted += 1
                    status = "extracted"
            if progress is not None:
                progress(entry, status)
    report.write()
    return report


@dataclass
class MergeReport:
    """What a merge wrote: videos per shard, duplicates that were identical, failures carried."""

    output: str
    videos: int
    per_shard: dict[str, int]
    identical_duplicates: int
    failed: list[dict[str, str]]


def merge_feature_files(out: str | Path, shards: Sequence[str | Path]) -> MergeReport:
    """Join shard feature files into ``out``. Shards must agree on extractor, its options,
    feature_dim and clip_seconds; a video in two shards must have identical features. Shard
    failure reports are joined too (minus videos some shard did extract)."""
    import h5py

    out = Path(out)
    if not shards:
        raise ConfigError("extract merge: name at least one shard file")
    if out.exists():
        raise DataError("output exists; merge writes a new file (remove it first)", out)
    headers = {Path(s): _read_header(Path(s)) for s in shards}
    first_path, first = next(iter(headers.items()))
    for path, attrs in headers.items():
        if _header_key(attrs) != _header_key(first):
            a, b = _header_key(attrs), _header_key(first)
            raise DataError(f"shard does not match {first_path}: extractor {a[0]!r} vs {b[0]!r}, "
                            f"options {a[1]} vs {b[1]}, feature_dim {a[2]} vs {b[2]}, "
                            f"clip_seconds {a[3]} vs {b[3]}", path)
    owner: dict[str, Path] = {}
    duplicates = 0
    for path in headers:
        with h5py.File(path, "r") as f:
            for vid in f.keys():
                if vid in owner:
                    with h5py.File(owner[vid], "r") as g:
                        same = np.array_equal(f[vid][()], g[vid][()])
                    if not same:
                        raise DataError(f"video {vid!r} is in {owner[vid]} too, with different features", path)
                    duplicates += 1
                    continue
                owner[vid] = path
    name, options, dim, clip_seconds = _header_key(first)
    per_shard = {str(p): 0 for p in headers}
    with open_output(out, clip_seconds, dim, name, options, resume=False) as writer:
        for vid in sorted(owner):
            with h5py.File(owner[vid], "r") as f:
                writer.add(vid, f[vid][()], float(f[vid].attrs["duration"]))
            per_shard[str(owner[vid])] += 1
    failed = _merged_failures(list(headers), set(owner))
    if failed:
        report = {"output": str(out), "merged_from": [str(p) for p in headers],
                  "failed_count": len(failed), "failed": failed}
        failures_path(out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return MergeReport(str(out), len(owner), per_shard, duplicates, failed)


def _merged_failures(shards: list[Path], extracted: set[str]) -> list[dict[str, str]]:
    failed: dict[str, dict[str, str]] = {}
    for shard in shards:
        path = failures_path(shard)
        if path.is_file():
            for item in json.loads(path.read_text(encoding="utf-8")).get("failed", []):
                if item.get("video_id") not in extracted:
                    failed[item["video_id"]] = item
    return [failed[k] for k in sorted(failed)]
