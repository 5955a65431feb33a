"""The train / eval / predict commands and the predictor, on a fake dataset written to disk."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from engine_toy import ToyGrounder, write_fake_dataset
from vidlang.cli.main import app, main
from vidlang.metrics import evaluate_grounding
from vidlang.predictor import GroundingPredictor


@pytest.fixture
def experiment(tmp_path):
    root, feats = write_fake_dataset(tmp_path / "data")
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(
        "defaults: [dataset/qvhighlights]\n"
        "model: {name: engine_toy}\n"
        f"data: {{root: {root}, features: {feats}, batch_size: 3}}\n"
        "optim: {lr: 0.05}\n"
        "trainer: {max_epochs: 3, accelerator: cpu, progress_bar: false, log_every_n_steps: 1}\n"
        "eval: {metric: mIoU}\n")
    return cfg, feats


def test_train_eval_predict_commands(tmp_path, experiment):
    cfg, feats = experiment
    runner = CliRunner()
    out = tmp_path / "run"
    res = runner.invoke(app, ["train", str(cfg), "--out", str(out), "--set", "seed=3"])
    assert res.exit_code == 0, res.output
    assert "best model" in res.output
    assert (out / "best" / "model.safetensors").is_file() and (out / "curves.png").is_file()
    assert "seed: 3" in (out / "config.yaml").read_text()
    reports = json.loads((out / "data_reports.json").read_text())
    assert reports["train"]["read"] == reports["train"]["kept"] == 18 and reports["val"]["kept"] == 8

    res = runner.invoke(app, ["eval", str(cfg), "--ckpt", str(out), "--split", "test"])
    assert res.exit_code == 0, res.output
    ev = out / "best" / "eval_test"
    preds = [json.loads(line) for line in (ev / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 8 and {"qid", "query", "vid", "pred_relevant_windows"} <= set(preds[0])
    assert all(len(w) == 3 and w[0] < w[1] for p in preds for w in p["pred_relevant_windows"])
    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["selected_on"] == "val" and not metrics["test_selected"]
    assert metrics["metrics"] == json.loads(json.dumps(evaluate_grounding(
        [{k: p[k] for k in ("qid", "pred_relevant_windows")} for p in preds],
        [json.loads(x) for x in (tmp_path / "data" / "qvhighlights" / "highlight_test_with_gt.jsonl").read_text().splitlines()],
        preset="mmn")))

    res = runner.invoke(app, ["predict", "--ckpt", str(out / "best"), "--features", feats,
                              "--video-id", "test_v0", "--duration", "12", "--query", "a person jumps",
                              "--query", "a person waves", "--top-k", "2"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.output.strip().splitlines()]
    assert [x["query"] for x in lines] == ["a person jumps", "a person waves"]
    # the run's eval convention (mmn: NMS 0.5) post-processes the windows, then --top-k cuts
    assert all(1 <= len(x["pred_relevant_windows"]) <= 2 for x in lines)
    assert any(len(x["pred_relevant_windows"]) == 2 for x in lines)


def test_predictor_matches_model_predict(tmp_path, experiment):
    cfg, feats = experiment
    from vidlang.engine.config import load_config
    from vidlang.engine.run import train

    result = train(load_config(cfg, ["trainer.max_epochs=1"]), tmp_path / "r")
    predictor = GroundingPredictor.from_pretrained(result.out_dir)
    assert isinstance(predictor.model, ToyGrounder)
    x = np.random.default_rng(0).normal(size=(12, 8)).astype(np.float32)
    x[2:6, 1] += 2.0
    windows = predictor.predict(x, ["a person sits", "a person runs"], duration=24.0)
    assert len(windows) == 2 and all(0 <= w[0] < w[1] <= 24.0 for w in windows[0])
    assert windows[0] == sorted(windows[0], key=lambda w: -w[2])
    np.save(tmp_path / "x.npy", x)
    res = CliRunner().invoke(app, ["predict", "--ckpt", str(result.out_dir), "--features", str(tmp_path / "x.npy"),
                                   "--duration", "24", "--query", "a person sits", "--top-k", "0"])
    assert json.loads(res.output)["pred_relevant_windows"] == windows[0]


def test_user_errors_are_one_line_exit_2(tmp_path, experiment, capsys):
    cfg, _ = experiment
    with pytest.raises(SystemExit) as e:
        main(["train", str(cfg), "--out", str(tmp_path / "x"), "--set", "optim.lrr=1"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "optim.lrr: unknown key" in err
    with pytest.raises(SystemExit) as e:
        main(["predict", "--ckpt", str(tmp_path / "nothing"), "--features", "f.npy", "--query", "q"])
    assert e.value.code == 2


def test_synthvl_dataset_config_trains_with_default_feature_path(tmp_path):
    """The packaged dataset/synthvl layer: records from the catalog, features from <root>/features.h5."""
    from vidlang.data.synthvl import generate
    from vidlang.engine.config import load_config
    from vidlang.engine.run import train

    root = generate(tmp_path / "synth", preset="tiny", seed=0)
    cfg_path = tmp_path / "synth.yaml"
    cfg_path.write_text(
        "defaults: [dataset/synthvl]\nmodel: {name: engine_toy, feat_dim: 32}\n"
        f"data: {{root: {root}, batch_size: 8}}\n"
        "trainer: {max_epochs: 1, accelerator: cpu, progress_bar: false, limit_train_batches: 2}\n")
    cfg = load_config(cfg_path)
    assert cfg.data.features is None and cfg.data.select_split == "val"
    result = train(cfg, tmp_path / "run")
    assert result.best_dir is not None and result.best_score is not None
    reports = json.loads((tmp_path / "run" / "data_reports.json").read_text())
    assert set(reports) == {"train", "val"} and reports["val"]["kept"] > 0
