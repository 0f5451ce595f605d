"""The command line through CliRunner: train, predict, evaluate, info on shipped data."""
import json
import os

import numpy as np
import pytest

from nncli.cli import cli

from conftest import data, invoke  # noqa: F401  (and the runner fixture)


@pytest.fixture
def iris_model(runner):
    r = invoke(runner, "train", data("iris.csv"), "--quiet")
    assert r.exit_code == 0, r.output
    return "iris.npz"


def test_help_lists_commands(runner):
    r = invoke(runner, "--help")
    assert r.exit_code == 0
    for name in ("train", "predict", "evaluate", "info"):
        assert name in r.output


def test_train_iris_defaults_reach_95_percent(runner):
    r = invoke(runner, "train", data("iris.csv"), "--json", "--quiet")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["task"] == "classification"
    assert summary["val_accuracy"] >= 0.95
    assert os.path.exists("iris.npz") and os.path.exists("iris.loss.csv")
    assert summary["model"] == "iris.npz" and summary["layers"] == [4, 64, 32, 3]


def test_train_writes_loss_log_with_a_row_per_epoch(runner):
    r = invoke(runner, "train", data("xor.csv"), "--epochs", 7, "--val-split", 0, "-o", "x.npz", "--quiet")
    assert r.exit_code == 0, r.output
    lines = open("x.loss.csv").read().splitlines()
    assert lines[0] == "epoch,train_loss,val_loss,lr,seconds"
    assert len(lines) == 8 and lines[-1].startswith("7,")


def test_progress_lines_when_not_a_terminal(runner):
    r = invoke(runner, "train", data("xor.csv"), "--epochs", 4, "--val-split", 0, "--log-every", 2)
    assert r.exit_code == 0
    assert "epoch 2/4" in r.stderr and "epoch 4/4" in r.stderr and "epoch 3/4" not in r.stderr
    assert "Done: 4 epochs" in r.stderr
    quiet = invoke(runner, "train", data("xor.csv"), "--epochs", 2, "--quiet")
    assert quiet.stderr == "" and quiet.stdout == ""


def test_regression_predict_is_in_original_units(runner):
    r = invoke(runner, "train", data("curve.csv"), "--layers", "32,32", "--activation", "tanh",
               "--epochs", 200, "--lr", 0.01, "--quiet", "-o", "curve.npz")
    assert r.exit_code == 0, r.output
    p = invoke(runner, "predict", "curve.npz", data("curve.csv"))
    lines = p.stdout.splitlines()
    assert lines[0] == "y"
    truth = np.loadtxt(data("curve.csv"), delimiter=",", skiprows=1)[:, 1]
    pred = np.array([float(v) for v in lines[1:]])
    assert np.sqrt(np.mean((pred - truth) ** 2)) < 0.2
    e = invoke(runner, "evaluate", "curve.npz", data("curve.csv"), "--json")
    m = json.loads(e.stdout)
    assert m["task"] == "regression" and m["r2"] > 0.9 and m["rmse"] < 0.2


def test_predict_proba_and_id(runner, iris_model, tmp_path):
    src = tmp_path / "with_id.csv"
    rows = open(data("iris.csv")).read().splitlines()
    src.write_text("\n".join([f"name,{rows[0]}"] + [f"r{i},{r}" for i, r in enumerate(rows[1:])]) + "\n")
    r = invoke(runner, "predict", iris_model, src, "--proba", "--id", "name")
    lines = r.stdout.splitlines()
    assert lines[0] == "name,species,proba_setosa,proba_versicolor,proba_virginica"
    assert len(lines) == 151 and lines[1].startswith("r0,setosa,")
    probs = np.array([[float(v) for v in l.split(",")[2:]] for l in lines[1:]])
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_predict_reads_stdin_and_matches_columns_by_name(runner, iris_model):
    rows = open(data("iris.csv")).read().splitlines()
    header = rows[0].split(",")
    # Reorder columns and drop the target: matching is by name.
    order = [3, 0, 2, 1]
    text = "\n".join(",".join(r.split(",")[i] for i in order) for r in rows) + "\n"
    r = invoke(runner, "predict", iris_model, "-", input=text)
    assert r.exit_code == 0
    labels = r.stdout.splitlines()[1:]
    truth = [row.split(",")[4] for row in rows[1:]]
    assert np.mean([a == b for a, b in zip(labels, truth)]) > 0.9
    assert header[order[0]] == "petal_width"


def test_predict_missing_columns_is_an_error(runner, iris_model, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("sepal_length,sepal_width\n1,2\n")
    r = runner.invoke(cli, ["predict", iris_model, str(bad)])
    assert r.exit_code == 1
    assert "petal_length" in r.stderr and "Traceback" not in r.output


def test_predict_to_file_and_small_chunks(runner, iris_model):
    r = invoke(runner, "predict", iris_model, data("iris.csv"), "-o", "out.csv", "--chunk-rows", 7)
    assert r.exit_code == 0 and r.stdout == ""
    whole = invoke(runner, "predict", iris_model, data("iris.csv"))
    assert open("out.csv").read() == whole.stdout


def test_evaluate_classification_table(runner, iris_model):
    r = invoke(runner, "evaluate", iris_model, data("iris.csv"))
    assert r.exit_code == 0
    assert "accuracy" in r.stdout and "confusion matrix" in r.stdout and "virginica" in r.stdout
    m = json.loads(invoke(runner, "evaluate", iris_model, data("iris.csv"), "--json").stdout)
    assert m["accuracy"] > 0.9 and sum(map(sum, m["confusion_matrix"])) == 150
    assert set(m["per_class"]) == {"setosa", "versicolor", "virginica"}


def test_info(runner, iris_model):
    r = invoke(runner, "info", iris_model)
    assert "4→64→32→3" in r.stdout and "2499 parameters" in r.stdout and "relu" in r.stdout
    j = json.loads(invoke(runner, "info", iris_model, "--json").stdout)
    assert j["n_params"] == 2499 and j["task"] == "classification"
    assert j["config"]["optimizer"] == "adam" and j["config"]["lr"] == 0.001
    assert len(j["data_sha256"]) == 64


def test_reconstruct_autoencoder(runner):
    r = invoke(runner, "train", data("three.csv"), "--task", "reconstruct", "--layers", "8,2,8",
               "--epochs", 30, "--quiet", "-o", "ae.npz")
    assert r.exit_code == 0, r.output
    p = invoke(runner, "predict", "ae.npz", data("three.csv"))
    header = p.stdout.splitlines()[0].split(",")
    assert header[-1] == "reconstruction_error" and len(header) == 5
    m = json.loads(invoke(runner, "evaluate", "ae.npz", data("three.csv"), "--json").stdout)
    assert m["task"] == "reconstruct" and 0 <= m["reconstruction_error"] < 1.0


def test_config_file_and_command_line_precedence(runner, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('layers = [8, 4]\nactivation = "tanh"\nepochs = 3\noptimizer = "sgd"\nlr = 0.05\n')
    r = invoke(runner, "train", data("three.csv"), "--config", cfg, "--epochs", 5, "--quiet", "-o", "t.npz")
    assert r.exit_code == 0, r.output
    j = json.loads(invoke(runner, "info", "t.npz", "--json").stdout)
    assert [l["outputs"] for l in j["layers"]] == [8, 4, 1]
    assert j["config"]["epochs"] == 5 and j["config"]["optimizer"] == "sgd" and j["config"]["lr"] == 0.05
    assert j["layers"][0]["activation"] == "tanh"


def test_config_file_unknown_key(runner, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text("learning_rate = 0.1\n")
    r = runner.invoke(cli, ["train", data("xor.csv"), "--config", str(cfg)])
    assert r.exit_code == 2 and "unknown option 'learning_rate'" in r.stderr


@pytest.mark.parametrize("args,needle", [
    (["--lr", "-1"], "--lr"),
    (["--layers", "0"], "--layers"),
    (["--activation", "swish"], "--activation"),
    (["--batch-size", "zero"], "--batch-size"),
    (["--val-split", "1.5"], "--val-split"),
    (["--optimizer", "newton"], "--optimizer"),
])
def test_bad_options_are_usage_errors(runner, args, needle):
    r = runner.invoke(cli, ["train", data("xor.csv"), *args])
    assert r.exit_code == 2 and needle in r.stderr and "Traceback" not in r.output


def test_same_seed_same_model_bytes(runner):
    for name in ("a.npz", "b.npz"):
        r = invoke(runner, "train", data("three.csv"), "--epochs", 5, "--quiet", "-o", name, "--threads", 2)
        assert r.exit_code == 0
    a, b = np.load("a.npz"), np.load("b.npz")
    assert a["phi"].tobytes() == b["phi"].tobytes()


def test_multi_output_regression_and_target_by_index(runner, tmp_path):
    src = tmp_path / "multi.csv"
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (200, 2))
    rows = ["a,b,y1,y2"] + [f"{p},{q},{p + q},{p - q}" for p, q in x]
    src.write_text("\n".join(rows) + "\n")
    r = invoke(runner, "train", src, "--target", "-2,-1", "--epochs", 50, "--quiet", "-o", "m.npz",
               "--layers", "16")
    assert r.exit_code == 0, r.output
    out = invoke(runner, "predict", "m.npz", src).stdout.splitlines()
    assert out[0] == "y1,y2" and len(out) == 201


def test_predict_header_is_quoted_like_the_rows(runner, tmp_path):
    src = tmp_path / "q.csv"
    big = '"big, one"'
    rows = ['x,"the, label"'] + [f"{i / 10},{big if i % 2 else 'small'}" for i in range(40)]
    src.write_text("\n".join(rows) + "\n")
    r = invoke(runner, "train", src, "--epochs", 2, "--quiet", "-o", "q.npz")
    assert r.exit_code == 0, r.output
    out = invoke(runner, "predict", "q.npz", src, "--proba").stdout.splitlines()
    assert out[0] == '"the, label","proba_big, one",proba_small'
    import csv
    assert {len(row) for row in csv.reader(out)} == {3}


def test_a_model_trained_without_header_predicts_without_repeating_the_flag(runner, tmp_path):
    rows = [f"{i / 10},{(i % 7) / 7},{'a' if i % 2 else 'b'}" for i in range(60)]
    src = tmp_path / "nh.csv"
    src.write_text("\n".join(rows) + "\n")
    r = invoke(runner, "train", src, "--no-header", "--columns", "p,q,label", "--epochs", 2, "--quiet",
               "-o", "nh.npz")
    assert r.exit_code == 0, r.output
    p = invoke(runner, "predict", "nh.npz", src)
    lines = p.stdout.splitlines()
    assert lines[0] == "label" and len(lines) == 61
    e = invoke(runner, "evaluate", "nh.npz", src, "--json")
    assert json.loads(e.stdout)["rows"] == 60


def test_resume_refuses_options_that_would_change_the_run(runner):
    r = invoke(runner, "train", data("iris.csv"), "--epochs", 6, "--checkpoint", "ck.npz",
               "--checkpoint-every", 3, "--quiet", "-o", "a.npz")
    assert r.exit_code == 0, r.output
    bad = runner.invoke(cli, ["train", data("iris.csv"), "--resume", "ck.npz", "--epochs", "50",
                              "--lr", "0.5", "-q", "-o", "b.npz"])
    assert bad.exit_code == 2 and "--epochs, --lr" in bad.stderr
    assert not os.path.exists("b.npz")
    same = invoke(runner, "train", data("iris.csv"), "--resume", "ck.npz", "--epochs", 6, "-q", "-o", "b.npz")
    assert same.exit_code == 0, same.output
