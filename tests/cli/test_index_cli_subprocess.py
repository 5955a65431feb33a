"""`vidlang index ...` / `vidlang search` through the installed entry point: bad input gets one
line and exit 2 (issue 12: points 4, 5, 6, 7), a video added from a second feature file is
localised in that file (point 10), and the Milvus backend behaves like FAISS for the user
(issue 15). Models are freshly initialised (not trained): these tests are about plumbing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

VIDLANG = Path(sys.executable).parent / "vidlang"
RETRIEVAL = ["model.video_dim=32", "model.embed_dim=32", "model.text.name=word", "model.text.dim=32",
             "model.text.vocab_size=2000"]
GROUNDING = ["model.input_dim=32", "model.featpool_hidden=8", "model.conv_hidden=8", "model.joint_dim=8",
             "model.conv_layers=2", "model.text.name=word", "model.text.dim=16"]


def _store(path: Path, prefix: str, n: int, seed: int, nan_video: int | None = None) -> Path:
    """``n`` videos ``{prefix}_{i:02d}`` of [12, 32] features; one NaN in video ``nan_video``
    (-1: in every video)."""
    import h5py

    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        for i in range(n):
            x = rng.standard_normal((12, 32)).astype(np.float32)
            if i == nan_video or nan_video == -1:
                x[3, 5] = np.nan
            f.create_dataset(f"{prefix}_{i:02d}", data=x).attrs["duration"] = 20.0 + i
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from vidlang.engine.checkpoint import build_model, save_pretrained
    from vidlang.engine.config import load_config

    base = tmp_path_factory.mktemp("index_cli")
    out = {"base": base}
    for name, preset, sets in (("ret", "retrieval/synthvl_cpu", RETRIEVAL), ("mmn", "mmn/cpu", GROUNDING)):
        cfg = load_config(preset, [f"data.root={base}", *sets])
        save_pretrained(build_model(cfg), cfg, base / name)
        out[name] = base / name
    out["first"] = _store(base / "first.h5", "a", 12, seed=0)
    out["second"] = _store(base / "second.h5", "b", 6, seed=1)
    out["nan"] = _store(base / "nan.h5", "a", 4, seed=2, nan_video=2)
    return out


def vidlang(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VIDLANG), *map(str, args)], capture_output=True, text=True, timeout=300)


def _cli(*args: object) -> None:
    """Set-up steps run in this process (faster than a subprocess; not the behaviour under test)."""
    from vidlang.cli.main import main

    main([str(a) for a in args])


def one_line_error(r: subprocess.CompletedProcess[str], *needles: str) -> str:
    err = r.stderr.strip()
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


@pytest.mark.parametrize("args,needle", [
    (["-k", "0"], "-k/--top-k must be >= 1, got 0"),
    (["-k", "-1"], "-k/--top-k must be >= 1, got -1"),
])
def test_bad_k_is_refused_at_argument_time(tmp_path, args, needle):
    one_line_error(vidlang("search", tmp_path / "no_index", "a person", *args), needle)


@pytest.mark.parametrize("query", ["", "   "])
def test_empty_query_is_refused(tmp_path, query):
    one_line_error(vidlang("search", tmp_path / "no_index", query), "QUERY is empty")


def test_nan_features_refused_by_index_build_and_search(env, tmp_path):
    r = vidlang("index", "build", "--ckpt", env["ret"], "--features", env["nan"], "--out", tmp_path / "i")
    one_line_error(r, str(env["nan"]), "record a_02", "NaN value")
    assert not (tmp_path / "i").exists()
    idx = tmp_path / "clean"
    _cli("index", "build", "--ckpt", env["ret"], "--features", env["first"], "--out", idx)
    all_nan = _store(tmp_path / "all_nan.h5", "a", 12, seed=0, nan_video=-1)
    r = vidlang("search", idx, "a person", "-k", "1", "--grounding-ckpt", env["mmn"], "--features", all_nan)
    one_line_error(r, f"{all_nan} (record a_", "NaN value")


def _corrupt_copy(env: dict[str, Path], tmp_path: Path, how: str) -> Path:
    import shutil

    ckpt = tmp_path / f"ret_{how}"
    shutil.copytree(env["ret"], ckpt)
    weights = ckpt / "model.safetensors"
    blob = weights.read_bytes()
    weights.write_bytes({"empty": b"", "garbage": b"not a safetensors file" * 20,
                         "truncated": blob[: len(blob) // 2]}[how])
    return ckpt


@pytest.mark.parametrize("how", ["empty", "garbage", "truncated"])
def test_corrupt_checkpoint_names_the_file(env, tmp_path, how):
    from vidlang.errors import DataError
    from vidlang.inference.retrieval import load_retrieval_model

    ckpt = _corrupt_copy(env, tmp_path, how)
    with pytest.raises(DataError, match="model.safetensors: cannot read model weights"):
        load_retrieval_model(ckpt)


def test_corrupt_files_named_by_index_build_and_search(env, tmp_path):
    ckpt = _corrupt_copy(env, tmp_path, "garbage")
    r = vidlang("index", "build", "--ckpt", ckpt, "--features", env["first"], "--out", tmp_path / "i")
    one_line_error(r, str(ckpt / "model.safetensors"), "cannot read model weights")
    idx = tmp_path / "idx"
    _cli("index", "build", "--ckpt", env["ret"], "--features", env["first"], "--out", idx)
    ckpt = _corrupt_copy(env, tmp_path, "truncated")
    one_line_error(vidlang("search", idx, "a person", "--ckpt", ckpt), str(ckpt / "model.safetensors"))
    grounding = tmp_path / "mmn_bad"
    import shutil

    shutil.copytree(env["mmn"], grounding)
    (grounding / "model.safetensors").write_bytes(b"")
    one_line_error(vidlang("search", idx, "a person", "--grounding-ckpt", grounding),
                   str(grounding / "model.safetensors"))
    blob = (idx / "index.faiss").read_bytes()
    (idx / "index.faiss").write_bytes(blob[: len(blob) // 3])
    one_line_error(vidlang("search", idx, "a person"), str(idx / "index.faiss"), "truncated or corrupted")


def _search(idx: Path, *extra: object) -> list[dict]:
    r = vidlang("search", idx, "a person opens the door", "--json", *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["results"]


def _all_localised(rows: list[dict]) -> None:
    assert sorted(r["video_id"] for r in rows) == [f"a_{i:02d}" for i in range(12)] + \
        [f"b_{i:02d}" for i in range(6)]
    for row in rows:  # b_* came from second.h5: localised there, within that video's duration
        assert 0.0 <= row["start"] < row["end"] <= 20.0 + int(row["video_id"][2:]) + 1e-6


def test_add_from_a_second_store_then_localise_both_backends(env, tmp_path, capsys):
    """Issue 12 point 10 for both backends, and the issue-15 user path: the same commands and the
    same answers whichever backend holds the vectors (Milvus Lite here)."""
    pytest.importorskip("milvus_lite")
    ref = tmp_path / "faiss"
    _cli("index", "build", "--ckpt", env["ret"], "--features", env["first"], "--out", ref)
    _cli("index", "add", ref, "--features", env["second"])
    _all_localised(_search(ref, "-k", "18", "--grounding-ckpt", env["mmn"]))

    idx = tmp_path / "milvus"
    for args in (["index", "build", "--ckpt", env["ret"], "--features", env["first"], "--out", idx,
                  "--backend", "milvus"], ["index", "add", idx, "--features", env["second"]]):
        r = vidlang(*args)
        assert r.returncode == 0, r.stderr
    assert json.loads((idx / "meta.json").read_text())["uri"] == "milvus.db"  # inside the folder
    _all_localised(_search(idx, "-k", "18", "--grounding-ckpt", env["mmn"]))
    only_b = _search(idx, "-k", "10", "--video-prefix", "b_", "--max-duration", "23")
    assert sorted(r["video_id"] for r in only_b) == ["b_00", "b_01", "b_02", "b_03"]
    r = vidlang("index", "delete", idx, "b_01", "a_05", "zz")
    assert r.returncode == 0 and "removed 2 records" in r.stdout, r.stderr
    left = _search(idx, "-k", "30")
    assert len(left) == 16 and not {"b_01", "a_05"} & {r["video_id"] for r in left}

    _cli("index", "delete", ref, "b_01", "a_05")
    capsys.readouterr()
    _cli("search", ref, "a person opens the door", "--json", "-k", "30")
    faiss_rows = json.loads(capsys.readouterr().out)["results"]
    assert [r["video_id"] for r in faiss_rows] == [r["video_id"] for r in left]
    np.testing.assert_allclose([r["score"] for r in faiss_rows], [r["score"] for r in left], atol=2e-4)


def test_milvus_errors_are_one_line(env, tmp_path):
    pytest.importorskip("pymilvus")
    r = vidlang("index", "build", "--ckpt", env["ret"], "--features", env["first"], "--out", tmp_path / "m",
                "--backend", "milvus", "--uri", "http://127.0.0.1:1")
    one_line_error(r, "cannot reach the Milvus server at http://127.0.0.1:1")
    faiss_dir = tmp_path / "f"
    _cli("index", "build", "--ckpt", env["ret"], "--features", env["first"], "--out", faiss_dir)
    r = vidlang("index", "build", "--ckpt", env["ret"], "--features", env["first"], "--out", faiss_dir,
                "--backend", "milvus")
    one_line_error(r, f"{faiss_dir} already holds a faiss index")
