"""The standard datasets by name: which reader reads which files for each split.

Every dataset is an object in ``vidlang.registry.DATASETS`` that follows :class:`DatasetSource`;
the standard ones are :class:`FileDataset` rows of a table (reader name + files per split,
relative to a data root). Other modules (SynthVL) register their own object under their name::

    @DATASETS.register("synthvl")
    class _SynthVL:                       # or an instance; anything with these three methods
        def load_grounding(self, split, root, clamp=ClampPolicy.CLAMP): ...
        def load_captions(self, split, root): ...
        def load_paragraphs(self, split, root): ...

The data root is an argument; by default ``$VIDLANG_DATA``, else ``../shared/data`` next to the
repository (the layout of the shared annotation folder).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from vidlang.data.records import ClampPolicy, GroundingRecord, LoadReport, Paragraph, VideoCaptions
from vidlang.errors import ConfigError, DataError
from vidlang.registry import DATASETS, READERS

REPO_ROOT = Path(__file__).resolve().parents[3]
RECORD_KINDS = ("grounding", "captions", "paragraphs")


@runtime_checkable
class DatasetSource(Protocol):
    """What the catalog needs from a dataset: records of each kind for a split.

    Each method returns ``(records, LoadReport)``; ``root`` is the data root (``None`` = the
    dataset's default). A kind the dataset does not have raises :class:`ConfigError`.
    """

    def load_grounding(self, split: str, root: str | Path | None,
                       clamp: ClampPolicy = ClampPolicy.CLAMP) -> tuple[list[GroundingRecord], LoadReport]: ...

    def load_captions(self, split: str, root: str | Path | None) -> tuple[list[VideoCaptions], LoadReport]: ...

    def load_paragraphs(self, split: str, root: str | Path | None) -> tuple[list[Paragraph], LoadReport]: ...


def default_root() -> Path:
    """``$VIDLANG_DATA`` if set, else ``../shared/data`` beside the repository."""
    env = os.environ.get("VIDLANG_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class Source:
    """One reader call: reader name, its main file and extra keyword files (root-relative)."""

    reader: str
    path: str
    extra: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)

    def load(self, root: Path, split: str, **kwargs: Any) -> tuple[list[Any], LoadReport]:
        resolved: dict[str, Any] = {}
        for key, value in self.extra.items():
            resolved[key] = (tuple(root / v for v in value) if isinstance(value, tuple) else root / value)
        return READERS.get(self.reader)(root / self.path, split=split, **resolved, **kwargs)


@dataclass(frozen=True)
class FileDataset:
    """A dataset read from annotation files: ``{kind: {split: Source}}``."""

    name: str
    sources: Mapping[str, Mapping[str, Source]]

    def splits(self, kind: str) -> list[str]:
        return list(self.sources.get(kind, {}))

    def _load(self, kind: str, split: str, root: str | Path | None, **kwargs: Any) -> tuple[list[Any], LoadReport]:
        by_split = self.sources.get(kind)
        if not by_split:
            have = ", ".join(k for k in RECORD_KINDS if k in self.sources) or "none"
            raise ConfigError(f"dataset {self.name!r} has no {kind} records (it has: {have})")
        if split not in by_split:
            raise ConfigError(f"dataset {self.name!r}: unknown {kind} split {split!r}; "
                              f"known: {', '.join(by_split)}")
        base = Path(root) if root is not None else default_root()
        if not base.is_dir():
            raise DataError("data root not found (pass root=... or set $VIDLANG_DATA)", base)
        return by_split[split].load(base, split, **kwargs)

    def load_grounding(self, split: str, root: str | Path | None = None,
                       clamp: ClampPolicy = ClampPolicy.CLAMP) -> tuple[list[GroundingRecord], LoadReport]:
        return self._load("grounding", split, root, clamp=ClampPolicy(clamp))

    def load_captions(self, split: str, root: str | Path | None = None) -> tuple[list[VideoCaptions], LoadReport]:
        return self._load("captions", split, root)

    def load_paragraphs(self, split: str, root: str | Path | None = None) -> tuple[list[Paragraph], LoadReport]:
        return self._load("paragraphs", split, root)


def _charades_durations() -> dict[str, tuple[str, ...]]:
    csvs = ("charades_sta/Charades_v1_train.csv", "charades_sta/Charades_v1_test.csv")
    return {"durations": csvs}


def _table(reader: str, files: Mapping[str, str], **extra: Any) -> dict[str, Source]:
    return {split: Source(reader, path, extra) for split, path in files.items()}


_ANET = {"train": "activitynet_captions/train.json", "val_1": "activitynet_captions/val_1.json",
         "val_2": "activitynet_captions/val_2.json"}
_YC2 = {"train": "youcook2/youcookii_annotations_trainval.json",
        "val": "youcook2/youcookii_annotations_trainval.json"}
_DIDEMO = {"val": "didemo/val_data.json", "test": "didemo/test_data.json"}

STANDARD_DATASETS: dict[str, FileDataset] = {
    "charades_sta": FileDataset("charades_sta", {
        "grounding": _table("charades_sta_txt", {"train": "charades_sta/charades_sta_train.txt",
                                                 "test": "charades_sta/charades_sta_test.txt"},
                            **_charades_durations()),
    }),
    "activitynet": FileDataset("activitynet", {
        "grounding": _table("timestamps_json", _ANET),
        "paragraphs": _table("timestamps_json_paragraphs", _ANET),
        "captions": _table("timestamps_json_captions", _ANET),
    }),
    # CPL's releases: the SCN subset of Charades-STA and CPL's ActivityNet val_1 / val_2 lists
    "charades_sta_cpl": FileDataset("charades_sta_cpl", {
        "grounding": _table("cpl_list_json", {"train": "charades_sta/cpl_charades_train.json",
                                              "test": "charades_sta/cpl_charades_test.json"}),
    }),
    "activitynet_cpl": FileDataset("activitynet_cpl", {
        "grounding": _table("cpl_list_json", {"val_1": "activitynet_captions/cpl_val_data.json",
                                              "val_2": "activitynet_captions/cpl_test_data.json"}),
    }),
    "tacos": FileDataset("tacos", {
        "grounding": _table("tacos_2dtan", {s: f"tacos/{s}.json" for s in ("train", "val", "test")}),
    }),
    "tacos_scdm": FileDataset("tacos_scdm", {
        "grounding": _table("tacos_scdm", {s: f"tacos/scdm_{s}.json" for s in ("train", "val", "test")}),
    }),
    "qvhighlights": FileDataset("qvhighlights", {
        "grounding": _table("moment_detr_jsonl", {
            "train": "qvhighlights/highlight_train_release.jsonl",
            "val": "qvhighlights/highlight_val_release.jsonl",
            "test": "qvhighlights/highlight_test_with_gt.jsonl"}),
    }),
    "msrvtt": FileDataset("msrvtt", {
        "captions": {"train_9k": Source("msrvtt_ids_csv", "msrvtt/MSRVTT_train.9k.csv"),
                     "train_7k": Source("msrvtt_ids_csv", "msrvtt/MSRVTT_train.7k.csv"),
                     "test_1k": Source("msrvtt_jsfusion_csv", "msrvtt/MSRVTT_JSFUSION_test.csv")},
    }),
    "msvd": FileDataset("msvd", {"captions": {
        s: Source("msvd_captions", "msvd/captions_msvd.json", {"split_list": f"msvd/{s}_list.txt"})
        for s in ("train", "val", "test")}}),
    "didemo": FileDataset("didemo", {
        "grounding": _table("didemo_json", _DIDEMO),
        "paragraphs": _table("didemo_paragraphs", _DIDEMO),
    }),
    "youcook2": FileDataset("youcook2", {
        "grounding": _table("youcook2_grounding", _YC2),
        "paragraphs": _table("youcook2_paragraphs", _YC2),
        "captions": _table("youcook2_captions", _YC2),
    }),
}
for _name, _dataset in STANDARD_DATASETS.items():
    DATASETS.register(_name)(_dataset)


def get_dataset(name: str) -> DatasetSource:
    """The registered dataset called ``name`` (RegistryError lists the known ones)."""
    return DATASETS.get(name)


def load_grounding(name: str, split: str, root: str | Path | None = None,
                   clamp: ClampPolicy = ClampPolicy.CLAMP) -> tuple[list[GroundingRecord], LoadReport]:
    """Grounding records of ``name``/``split`` and the reader's report."""
    return get_dataset(name).load_grounding(split, root, clamp=ClampPolicy(clamp))


def load_captions(name: str, split: str, root: str | Path | None = None) -> tuple[list[VideoCaptions], LoadReport]:
    """Caption sets (retrieval) of ``name``/``split`` and the reader's report."""
    return get_dataset(name).load_captions(split, root)


def load_paragraphs(name: str, split: str, root: str | Path | None = None) -> tuple[list[Paragraph], LoadReport]:
    """Paragraphs of ``name``/``split`` and the reader's report."""
    return get_dataset(name).load_paragraphs(split, root)


LOADERS: dict[str, Callable[..., tuple[list[Any], LoadReport]]] = {
    "grounding": load_grounding, "captions": load_captions, "paragraphs": load_paragraphs,
}
