"""Issue 13, floors: imports only run down the floors, with no loop, and the pieces moved to a
lower floor keep one home (the old import paths re-export the same objects)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

SRC = Path(__file__).resolve().parents[2] / "src"

#: the intended floors of issue 13, bottom to top; a package may import its own
#: floor's other packages only where no loop results (checked below)
FLOORS = {"errors": 1, "registry": 1, "ops": 2, "data": 3, "text": 3, "losses": 3, "metrics": 4,
          "models": 5, "engine": 6, "video": 7, "index": 7, "inference": 8, "serve": 9, "cli": 9,
          "predictor": 9}

def _modules() -> dict[str, Path]:
    out = {}
    for f in (SRC / "vidlang").rglob("*.py"):
        name = ".".join(f.relative_to(SRC).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = f
    return out


MODULES = _modules()


def _imports(name: str, file: Path) -> set[str]:
    """Every vidlang module ``name`` imports, at top level, in functions or under TYPE_CHECKING."""
    pkg = name if file.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                         for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.startswith("vidlang.") and m != name}


EDGES = {name: _imports(name, f) for name, f in MODULES.items()}


def _package(module: str) -> str:
    """``data`` for ``vidlang.data.features.spec``; the root package is ``vidlang``."""
    return module.split(".")[1] if "." in module else "vidlang"


def test_no_import_runs_up_a_floor() -> None:
    up = {(a, b) for a, targets in EDGES.items() for b in targets
          if FLOORS.get(_package(b), 0) > FLOORS.get(_package(a), 0)}
    assert up == set(), "imports that run up a floor"


def test_no_import_loop_between_packages_or_modules() -> None:
    """No two top-level packages import each other, and no module loop (a package's
    ``__init__`` only hands names on, so imports out of it are not followed)."""
    pairs = {(_package(a), _package(b)) for a, targets in EDGES.items() for b in targets
             if _package(a) != _package(b)}
    assert {(x, y) for x, y in pairs if (y, x) in pairs} == set()

    graph = {a: {b for b in targets if b in MODULES} for a, targets in EDGES.items()
             if MODULES[a].name != "__init__.py"}
    state: dict[str, int] = {}
    loops = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                loops.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert loops == []


def test_feature_spec_has_one_home_and_one_row_count() -> None:
    from vidlang.data.features import FeatureSpec as from_package
    from vidlang.data.features.spec import FeatureSpec
    from vidlang.models.base import FeatureSpec as from_models
    from vidlang.models.cpl import CPL, CPLConfig
    from vidlang.models.mmn import MMN, MMNConfig
    from vidlang.models.retrieval import DualEncoder, DualEncoderConfig
    from vidlang.text.config import TextEncoderConfig

    assert from_package is FeatureSpec and from_models is FeatureSpec
    assert "num_clips" not in FeatureSpec.__dataclass_fields__
    text = TextEncoderConfig(name="word", dim=8, vocab_size=50)
    mmn = MMN(MMNConfig(input_dim=8, num_pre_clips=16, num_clips=8, pooling_counts=[7], featpool_hidden=8,
                        conv_hidden=8, conv_layers=1, joint_dim=8, text=text))
    assert mmn.feature_spec() == FeatureSpec("segment_mean", 16, True)
    assert mmn.cfg.featpool_stride == 2 == mmn.featpool.pool.stride[0]
    cpl = CPL(CPLConfig(frame_dim=8, num_clips=20, num_props_clips=5))
    assert cpl.feature_spec() == FeatureSpec("fixed_bin", 20)
    dual = DualEncoder(DualEncoderConfig(video_dim=8, embed_dim=8, num_frames=6, text=text))
    assert dual.feature_spec() == FeatureSpec("uniform", 6)
    assert DualEncoder(DualEncoderConfig(video_dim=8, embed_dim=8, text=text)).feature_spec() == FeatureSpec()


def test_load_model_expect_refuses_another_model_class(tmp_path) -> None:
    from omegaconf import OmegaConf

    from engine_toy import ToyGrounder
    from vidlang.engine.checkpoint import load_model, save_pretrained
    from vidlang.engine.config import CONFIG_ROOT, build_config
    from vidlang.errors import ConfigError
    from vidlang.models.base import VidlangModel
    from vidlang.models.mmn import MMN

    cfg = build_config(OmegaConf.merge(OmegaConf.load(CONFIG_ROOT / "base.yaml"),
                                       {"model": {"name": "engine_toy"}}))
    torch.manual_seed(0)
    model = ToyGrounder(cfg.model)
    save_pretrained(model, cfg, tmp_path / "m")
    loaded = load_model(tmp_path / "m", expect=VidlangModel)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    with pytest.raises(ConfigError, match="holds a ToyGrounder, not a MMN"):
        load_model(tmp_path / "m", expect=MMN)


def test_moved_pieces_are_the_same_objects_at_their_old_paths() -> None:
    from vidlang.index import IndexParams as from_package
    from vidlang.index.faiss_backend import BUILDERS
    from vidlang.index.milvus_backend import _INDEX_TYPES
    from vidlang.index.params import INDEX_KINDS, IndexParams
    from vidlang.index.video_index import IndexParams as from_video_index
    from vidlang.models import multilevel, reprs, retrieval
    from vidlang.text.hf_offline import load_clip_model
    from vidlang.video.extractors import clip as clip_extractor

    assert from_package is IndexParams is from_video_index
    assert tuple(BUILDERS) == INDEX_KINDS and tuple(_INDEX_TYPES) == INDEX_KINDS
    assert retrieval.TextRepr is reprs.TextRepr is multilevel.TextRepr
    assert retrieval.VideoRepr is reprs.VideoRepr
    assert clip_extractor.load_clip_model is load_clip_model  # one cache for text and video
