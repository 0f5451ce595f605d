"""Options of train and descend checked from one table (nncli.params), and the CLI-usage fixes."""
import json
import os

import pytest

from nncli.cli import cli
from nncli.model_io import load_model

from conftest import data, invoke  # noqa: F401  (and the runner fixture)


@pytest.mark.parametrize("args, message", [
    (["--optimizer", "sgd", "--momentum", "0.9"],
     "Error: --momentum does not apply to the sgd optimizer (it applies to momentum, nesterov)"),
    (["--momentum", "0.9"],   # adam is the default; its β1 is --beta1
     "Error: --momentum does not apply to the adam optimizer (it applies to momentum, nesterov)"),
    (["--optimizer", "nesterov", "--beta2", "0.9"],
     "Error: --beta2 does not apply to the nesterov optimizer (it applies to rmsprop, adam, adamw)"),
    (["--optimizer", "adagrad", "--beta1", "0.9"],
     "Error: --beta1 does not apply to the adagrad optimizer (it applies to adam, adamw)"),
    (["--lr-gamma", "0.5"],
     "Error: --lr-gamma does not apply to the constant schedule (it applies to step, exponential, plateau)"),
    (["--schedule", "cosine", "--lr-step-size", "3"],
     "Error: --lr-step-size does not apply to the cosine schedule (it applies to step)"),
    (["--schedule", "step", "--min-lr", "0.001"],
     "Error: --min-lr does not apply to the step schedule (it applies to cosine, plateau)"),
    (["--schedule", "exponential", "--lr-patience", "2"],
     "Error: --lr-patience does not apply to the exponential schedule (it applies to plateau)"),
])
def test_options_that_do_not_apply_are_usage_errors(runner, args, message):
    r = invoke(runner, "train", data("xor.csv"), "--epochs", 1, "--quiet", *args)
    assert r.exit_code == 2 and message in r.output
    assert not os.path.exists("xor.npz")


def test_options_that_do_not_apply_are_refused_from_a_config_file_too(runner, tmp_path):
    (tmp_path / "run.toml").write_text('optimizer = "sgd"\nbeta2 = 0.9\n')
    r = invoke(runner, "train", data("xor.csv"), "--config", "run.toml", "--quiet")
    assert r.exit_code == 2
    assert "--beta2 does not apply to the sgd optimizer (it applies to rmsprop, adam, adamw)" in r.output


@pytest.mark.parametrize("args, message", [
    (["--seed", "-1"], "Invalid value for '--seed': -1 is not in the range x>=0."),
    (["--early-stopping", "-1"], "Invalid value for '--early-stopping': -1 is not in the range x>=0."),
    (["--threads", "0"], "Invalid value for '--threads': 0 is not in the range x>=1."),
    (["--lr", "0"], "Invalid value for '--lr': 0.0 is not in the range x>0."),
    (["--beta1", "1"], "Invalid value for '--beta1': 1.0 is not in the range 0<=x<1."),
    (["--schedule", "step", "--lr-gamma", "0"], "Invalid value for '--lr-gamma': 0.0 is not in the range 0<x<=1."),
    (["--schedule", "step", "--lr-step-size", "0"], "Invalid value for '--lr-step-size': 0 is not in the range x>=1."),
    (["--schedule", "plateau", "--lr-patience", "-1"], "Invalid value for '--lr-patience': -1 is not in the range x>=0."),
    (["--schedule", "cosine", "--min-lr", "-0.1"], "Invalid value for '--min-lr': -0.1 is not in the range x>=0."),
])
def test_ranges_come_from_the_table(runner, args, message):
    r = invoke(runner, "train", data("xor.csv"), "--quiet", *args)
    assert r.exit_code == 2 and message in r.output


def lr_column(path):
    lines = open(path).read().splitlines()
    col = lines[0].split(",").index("lr")
    return [float(line.split(",")[col]) for line in lines[1:]]


def test_schedule_options_reach_the_run_and_the_model(runner):
    r = invoke(runner, "train", data("xor.csv"), "--epochs", 5, "--val-split", 0, "--quiet",
               "--optimizer", "sgd", "--lr", 0.1, "--schedule", "step", "--lr-gamma", 0.5,
               "--lr-step-size", 2)
    assert r.exit_code == 0, r.output
    assert lr_column("xor.loss.csv") == [0.1, 0.1, 0.05, 0.05, 0.025]
    config = load_model("xor.npz").meta["config"]
    assert config["lr_gamma"] == 0.5 and config["lr_step_size"] == 2 and config["lr_patience"] is None

    r = invoke(runner, "train", data("xor.csv"), "--epochs", 3, "--val-split", 0, "--quiet",
               "--optimizer", "sgd", "--lr", 0.1, "--schedule", "cosine", "--min-lr", 0.02, "-o", "c.npz")
    assert r.exit_code == 0, r.output
    assert lr_column("c.loss.csv") == pytest.approx([0.1, 0.06, 0.02])


def test_hyperparameters_reach_the_optimizer(runner):
    # β1 = 0 makes Adam's first moment the last gradient: a different run from the default 0.9.
    args = ["train", data("xor.csv"), "--epochs", 3, "--val-split", 0, "--quiet", "--json"]
    default = json.loads(invoke(runner, *args, "-o", "a.npz").stdout)
    beta1 = json.loads(invoke(runner, *args, "--beta1", 0, "-o", "b.npz").stdout)
    assert beta1["train_loss"] != default["train_loss"]
    assert load_model("b.npz").meta["config"]["beta1"] == 0


def test_help_documents_the_schedule_options(runner):
    r = invoke(runner, "train", "--help")
    for option in ("--lr-gamma", "--lr-step-size", "--lr-patience", "--min-lr"):
        assert option in r.output


def test_an_old_config_with_a_stray_hyperparameter_still_builds_its_optimizer():
    # Configs saved before hyper-parameters were checked store every key; adam with a
    # momentum typed (and ignored) then must still resume.
    from nncli.pipeline import make_optimizer
    opt = make_optimizer({"optimizer": "adam", "lr": 0.01, "momentum": 0.5, "beta1": 0.8,
                          "beta2": None, "eps": None, "weight_decay": 0.0, "clip_norm": 0.0})
    assert (opt.name, opt.lr, opt.beta1, opt.momentum, opt.beta2) == ("adam", 0.01, 0.8, None, 0.999)
    opt = make_optimizer({"optimizer": "momentum", "momentum": 0.5, "beta1": 0.8})
    assert (opt.momentum, opt.beta1) == (0.5, None)


@pytest.mark.parametrize("typed, suggested", [("trian", "train"), ("predcit", "predict"),
                                              ("plotloss", "plot-loss")])
def test_a_mistyped_command_suggests_the_right_one(runner, typed, suggested):
    r = runner.invoke(cli, [typed])
    assert r.exit_code == 2
    assert f"No such command '{typed}'. Did you mean '{suggested}'?" in r.stderr


def test_a_command_like_no_other_gets_no_suggestion(runner):
    r = runner.invoke(cli, ["zzz"])
    assert r.exit_code == 2 and "No such command 'zzz'." in r.stderr and "Did you mean" not in r.stderr


@pytest.mark.parametrize("line, message", [
    ("learning_rate = 0.1", "unknown option 'learning_rate' (did you mean 'lr'?)"),
    ("batch-sise = 3", "unknown option 'batch-sise' (did you mean 'batch-size'?)"),
    ("optimiser = 'sgd'", "unknown option 'optimiser' (did you mean 'optimizer'?)"),
    ("gamma = 0.5", "unknown option 'gamma' (did you mean 'lr_gamma'?)"),
    ("colour = 'red'", "unknown option 'colour'"),
])
def test_an_unknown_config_key_suggests_the_option(runner, tmp_path, line, message):
    (tmp_path / "run.toml").write_text(line + "\n")
    r = runner.invoke(cli, ["train", data("xor.csv"), "--config", "run.toml"])
    assert r.exit_code == 2 and message in r.stderr
    if "did you mean" not in message:
        assert "did you mean" not in r.stderr


def test_a_missing_config_file_is_an_io_error(runner):
    r = runner.invoke(cli, ["train", data("xor.csv"), "--config", "run.toml"])
    assert r.exit_code == 1
    assert r.stderr == "Error: run.toml: No such file or directory\n"


@pytest.mark.parametrize("line, message", [
    ('epochs = "many"', "Invalid value for '--epochs'"),
    ("seed = -1", "Invalid value for '--seed': -1 is not in the range x>=0."),
    ("lr_gamma = 2.0", "Invalid value for '--lr-gamma'"),
])
def test_a_config_value_of_the_wrong_type_is_a_usage_error(runner, tmp_path, line, message):
    (tmp_path / "run.toml").write_text(line + "\n")
    r = runner.invoke(cli, ["train", data("xor.csv"), "--config", "run.toml"])
    assert r.exit_code == 2 and message in r.stderr


def test_a_config_file_sets_schedule_options(runner, tmp_path):
    (tmp_path / "run.toml").write_text(
        '[train]\noptimizer = "sgd"\nlr = 0.1\nschedule = "exponential"\nlr-gamma = 0.5\n'
        "epochs = 3\nval_split = 0\n")
    r = invoke(runner, "train", data("xor.csv"), "--config", "run.toml", "--quiet")
    assert r.exit_code == 0, r.output
    assert lr_column("xor.loss.csv") == [0.1, 0.05, 0.025]
