"""`vidlang index build|add` and `vidlang search` end to end on a tiny SynthVL: a retrieval model
trained for a few steps embeds the collection, the index grows without a rebuild, a sentence
query returns ranked videos, and a grounding checkpoint localises the moment in each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vidlang.cli.main import main
from vidlang.engine.config import load_config
from vidlang.engine.run import train

RETRIEVAL = ["model.video_dim=32", "model.embed_dim=32", "model.text.name=word", "model.text.dim=32",
             "model.text.vocab_size=2000", "data.batch_size=16", "data.select_split=null",
             "trainer.max_epochs=2", "trainer.progress_bar=false", "optim.lr=0.01"]
GROUNDING = ["model.input_dim=32", "model.featpool_hidden=8", "model.conv_hidden=8", "model.joint_dim=8",
             "model.conv_layers=2", "model.text.name=word", "model.text.dim=16", "data.select_split=null",
             "trainer.max_epochs=1", "trainer.progress_bar=false"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from vidlang.data.synthvl import generate

    base = tmp_path_factory.mktemp("index_e2e")
    root = generate(base / "synth", preset="tiny", seed=0)
    train(load_config("retrieval/synthvl_cpu", [f"data.root={root}", *RETRIEVAL]), base / "ret")
    train(load_config("mmn/cpu", [f"data.root={root}", *GROUNDING]), base / "mmn")
    return {"root": root, "ret": base / "ret", "mmn": base / "mmn", "base": base}


def _cli_json(capsys: pytest.CaptureFixture[str], args: list[str]) -> dict:
    capsys.readouterr()
    main(args)
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_build_add_search_and_localise(trained, capsys, tmp_path):
    root, features = trained["root"], trained["root"] / "features.h5"
    import h5py

    with h5py.File(features) as f:
        all_ids = sorted(f.keys())
    first = tmp_path / "first.txt"
    first.write_text("\n".join(all_ids[:30]))
    idx = tmp_path / "idx"
    main(["index", "build", "--ckpt", str(trained["ret"]), "--features", str(features),
          "--out", str(idx), "--video-ids", str(first)])
    assert len(json.loads((idx / "ids.json").read_text())) == 30
    assert "name: dual_encoder" in (idx / "model_config.yaml").read_text()
    main(["index", "add", str(idx), "--features", str(features)])  # the rest, no rebuild
    assert sorted(json.loads((idx / "ids.json").read_text())) == all_ids

    caption = json.loads((root / "videos_test.jsonl").read_text().splitlines()[0])
    out = _cli_json(capsys, ["search", str(idx), caption["captions"][0], "-k", "5", "--json"])
    results = out["results"]
    assert [r["rank"] for r in results] == [1, 2, 3, 4, 5]
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True) and len({r["video_id"] for r in results}) == 5

    # the same ranking as scoring the query against every video with the model directly
    from vidlang.data.features import open_feature_store
    from vidlang.inference.retrieval import embed_queries, embed_videos, load_retrieval_model

    model, _ = load_retrieval_model(trained["ret"])
    with open_feature_store(features) as store:
        gallery = embed_videos(model, store, all_ids)
    q = embed_queries(model, [caption["captions"][0]])[0]
    expected = [all_ids[i] for i in np.argsort(-(gallery @ q), kind="stable")[:5]]
    assert [r["video_id"] for r in results] == expected

    located = _cli_json(capsys, ["search", str(idx), caption["captions"][0], "-k", "3",
                                 "--grounding-ckpt", str(trained["mmn"]), "--json"])["results"]
    durations = json.loads((root / "durations.json").read_text())
    for r in located:
        assert 0.0 <= r["start"] < r["end"] <= durations[r["video_id"]] + 1e-6


def test_search_errors_are_clear(trained, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["search", str(tmp_path / "missing"), "a query"])
    assert e.value.code == 2
    assert "not a vidlang video index" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["index", "build", "--ckpt", str(trained["mmn"]), "--features",
              str(trained["root"] / "features.h5"), "--out", str(tmp_path / "x")])
    assert e.value.code == 2
    assert "cannot embed videos and sentences" in capsys.readouterr().err
