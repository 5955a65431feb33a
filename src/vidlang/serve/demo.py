"""An offline demo collection for ``vidlang serve`` (``make serve``): SynthVL-video rendered,
extracted with the weight-free ``basic`` extractor, a retrieval model and an MMN trained on
it, an index of every video, and a WebM copy of each video that browsers play.

Every step is skipped when its output exists, so a second ``make serve`` starts at once.
The models are trained on the train split and the index holds all splits: this is a demo of
the service, not an evaluation (docs/serve.md gives the held-out figures of the demo models).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DemoPaths:
    """Where the pieces of a demo collection are."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def features(self) -> Path:
        return self.data / "features.h5"

    @property
    def retrieval(self) -> Path:
        return self.root / "retrieval"

    @property
    def grounding(self) -> Path:
        return self.root / "mmn"

    @property
    def index(self) -> Path:
        return self.root / "index"

    @property
    def web(self) -> Path:
        return self.root / "web"


def build_demo_collection(out: str | Path, n_videos: int = 60, seed: int = 0, preset: str = "small",
                          video: Sequence[str] = (), retrieval: Sequence[str] = (),
                          grounding: Sequence[str] = (), say: Callable[[str], None] = print) -> DemoPaths:
    """Build (or finish building) the collection under ``out``. ``video`` are SynthVL-video
    ``key=value`` settings; ``retrieval`` / ``grounding`` are config overrides (``--set``) of
    ``retrieval/synthvl_cpu`` and ``mmn/cpu``."""
    import yaml

    from vidlang.data.features import open_feature_store
    from vidlang.engine.config import load_config
    from vidlang.engine.run import train
    from vidlang.index.folder import store_source, write_index_folder
    from vidlang.inference.retrieval import embed_collection
    from vidlang.serve.media import transcode_for_web
    from vidlang.video.collection import extract_collection, list_videos
    from vidlang.video.extractors import build_extractor
    from vidlang.video.render import render_synthvl_video

    paths = DemoPaths(Path(out))
    if not (paths.data / "meta.json").is_file():
        say(f"rendering {n_videos} SynthVL-video videos -> {paths.data}")
        settings = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in video)}
        render_synthvl_video(paths.data, preset, seed, n_videos=n_videos, **settings)
        sentence_captions(paths.data)
    entries = list_videos([paths.data / "videos"])
    if not paths.features.is_file() or _missing(paths.features, [e.vid for e in entries]):
        say(f"extracting basic features -> {paths.features}")
        report = extract_collection(entries, build_extractor("basic"), paths.features)
        if report.failed:
            raise RuntimeError(report.summary())
    with open_feature_store(paths.features) as store:
        dim = store.dim
    base = [f"data.root={paths.data.resolve()}", f"seed={seed}", "trainer.progress_bar=false"]
    if not (paths.retrieval / "last").is_dir():
        say(f"training the retrieval model -> {paths.retrieval}")
        train(load_config("retrieval/synthvl_cpu", [*base, f"model.video_dim={dim}", *retrieval]), paths.retrieval)
    if not (paths.grounding / "last").is_dir():
        say(f"training the MMN grounding model -> {paths.grounding}")
        train(load_config("mmn/cpu", [*base, f"model.input_dim={dim}", *grounding]), paths.grounding)
    if not (paths.index / "meta.json").is_file():
        say(f"indexing {len(entries)} videos -> {paths.index}")
        # what `vidlang index build --ckpt RETRIEVAL --features FEATURES --out INDEX` does
        emb, ids, durations, identity = embed_collection(paths.retrieval, paths.features)
        index = write_index_folder(paths.index, emb, ids, durations, identity,
                                   store_source(paths.features, None))
        say(f"indexed {len(index)} videos (faiss flat, dim {index.meta.dim}) -> {paths.index}")
    for entry in entries:
        target = paths.web / f"{entry.vid}.webm"
        if not target.is_file():
            transcode_for_web(entry.path, target)
    say(f"demo collection ready: {paths.root}")
    return paths


def sentence_captions(data: Path) -> None:
    """Make every event sentence a caption of its video too (``videos_{split}.jsonl``), so the
    retrieval model learns what the service is asked: one sentence -> the video it happens in
    (SynthVL-video's own caption is the whole paragraph)."""
    import json

    for split in ("train", "val", "test"):
        path = data / f"videos_{split}.jsonl"
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        for row in rows:
            sentences = list(row["paragraph"]["sentences"])
            row["captions"] = sentences + [c for c in row["captions"] if c not in sentences]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _missing(features: Path, ids: list[str]) -> bool:
    from vidlang.data.features import open_feature_store

    with open_feature_store(features) as store:
        return any(v not in store for v in ids)
