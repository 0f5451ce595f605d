"""predict and evaluate: standard input, missing values, encodings and exit codes."""
import io
import json
import os

import pytest
from click.testing import CliRunner

from nncli.cli import cli

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
IRIS = os.path.abspath(os.path.join(DATA, "iris.csv"))
TRAIN = ["--epochs", "2", "--layers", "4", "-q", "--val-split", "0", "--ensemble", "1"]


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def iris(here):
    r = run("train", IRIS, *TRAIN, "-o", "iris.npz")
    assert r.exit_code == 0, r.output
    return "iris.npz"


class Terminal(io.BytesIO):
    """Standard input as a terminal: CliRunner's stdin wrapper asks its buffer."""

    def isatty(self):
        return True


@pytest.mark.parametrize("data", [[], ["-"]])
def test_predict_refuses_to_read_a_terminal(iris, data):
    r = run("predict", iris, *data, input=Terminal(b"sepal_length\n"))
    assert r.exit_code == 2
    assert r.stderr.splitlines() == [
        "Error: reading CSV from standard input, which is a terminal: give a file or pipe data in "
        "(see 'cli predict --help')"]
    assert r.stdout == ""


def test_predict_reads_piped_stdin(iris):
    text = open(IRIS).read()
    r = run("predict", iris, input=io.BytesIO(text.encode()))
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 151


LATIN1 = "city,kind,y\n1.5,café,0\n2.5,thé,1\n3.5,café,0\n4.5,thé,1\n0.5,café,0\n".encode("latin-1")


def test_a_latin1_file_fails_without_encoding_and_works_with_it(here):
    (here / "l.csv").write_bytes(LATIN1)
    r = run("train", "l.csv", *TRAIN)
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.splitlines() == [
        "Error: l.csv:2: the byte 0xE9 at position 8 of the line (offset 19 in the file) is not "
        "valid UTF-8; give the file's encoding (e.g. --encoding latin-1) or save it as UTF-8"]
    assert LATIN1[19] == 0xE9
    r = run("train", "l.csv", *TRAIN, "--encoding", "latin-1", "-o", "l.npz", "--json")
    assert r.exit_code == 0, r.output
    r = run("info", "l.npz", "--json")
    info = json.loads(r.stdout)
    assert "kind=café" in info["inputs"] and info["config"]["encoding"] == "latin-1"


def test_predict_and_evaluate_decode_as_the_model_was_trained(here):
    (here / "l.csv").write_bytes(LATIN1)
    assert run("train", "l.csv", *TRAIN, "--encoding", "latin-1", "-o", "l.npz").exit_code == 0
    r = run("predict", "l.npz", "l.csv", "--id", "kind")
    assert r.exit_code == 0, r.output
    assert [l.split(",")[0] for l in r.stdout.splitlines()] == ["kind", "café", "thé", "café", "thé", "café"]
    r = run("evaluate", "l.npz", "l.csv", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["rows"] == 5
    r = run("gradcheck", "--model", "l.npz", "l.csv", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["rows"] == 5
    # --encoding wins over the model's
    r = run("predict", "l.npz", "l.csv", "--encoding", "utf-8")
    assert r.exit_code == 1 and "l.csv:2: the byte 0xE9" in r.stderr


@pytest.mark.parametrize("command", ["train", "predict", "evaluate"])
def test_an_unknown_encoding_is_a_usage_error(iris, command):
    args = ["train", IRIS] if command == "train" else [command, iris, IRIS]
    r = run(*args, "--encoding", "klingon")
    assert r.exit_code == 2
    assert "Invalid value for --encoding: unknown encoding 'klingon'" in r.stderr


# -- missing values ------------------------------------------------------------------------

TRAINING = "id,a,b,y\n" + "".join(f"r{i},{i % 7},{(i * 3) % 5},{i % 2}\n" for i in range(30))
HOLES = "id,a,b,y\nq0,1,2,0\nq1,3,,1\nq2,4,1,\nq3,NA,4,1\n"


def _train(here, *impute):
    (here / "t.csv").write_text(TRAINING)
    (here / "holes.csv").write_text(HOLES)
    r = run("train", "t.csv", *TRAIN, "--id", "id", "--task", "classification", *impute,
            "-o", "m.npz")
    assert r.exit_code == 0, r.output
    return "m.npz"


@pytest.mark.parametrize("impute, how", [(["--impute", "none"], "without --impute mean|median"),
                                          (["--impute", "drop"], "with --impute drop")])
def test_predict_stops_at_a_missing_input_the_model_cannot_fill(here, impute, how):
    model = _train(here, *impute)
    r = run("predict", model, "holes.csv")
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.splitlines() == [
        f"Error: holes.csv:3: column 'b' (3): missing value and the model has no value to fill in "
        f"(it was trained {how}); fill it in, or use --skip-missing to write an empty prediction "
        f"for such rows"]


def test_predict_skip_missing_writes_an_empty_prediction_row(here):
    model = _train(here, "--impute", "drop")
    r = run("predict", model, "holes.csv", "--id", "id", "--proba", "--chunk-rows", 2,
            "--skip-missing")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "id,y,proba_0,proba_1"
    assert lines[2] == "q1,,," and lines[4] == "q3,,,"       # one output row per input row
    assert lines[1].startswith("q0,") and lines[3].startswith("q2,") and len(lines) == 5
    assert all(len(l.split(",")) == 4 and l.split(",")[1] in "01" for l in (lines[1], lines[3]))
    whole = run("predict", model, "holes.csv", "--id", "id", "--proba", "--skip-missing")
    assert whole.stdout == r.stdout


def test_a_mean_imputed_model_fills_with_its_training_mean(here):
    from nncli.model_io import load_model
    model = _train(here, "--impute", "mean")
    means = {c.name: c.impute for c in load_model(model).schema.inputs}
    assert means["b"] == pytest.approx(sum((i * 3) % 5 for i in range(30)) / 30)
    r = run("predict", model, "holes.csv", "--proba")
    assert r.exit_code == 0, r.output
    filled = HOLES.replace("q1,3,,1", f"q1,3,{means['b']!r},1").replace("q3,NA,4", f"q3,{means['a']!r},4")
    (here / "filled.csv").write_text(filled)
    assert run("predict", model, "filled.csv", "--proba").stdout == r.stdout


def test_evaluate_stops_at_a_missing_target_or_skips_it_when_told(here):
    model = _train(here, "--impute", "mean")
    r = run("evaluate", model, "holes.csv")
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [
        "Error: holes.csv:4: column 'y' (4): missing target value; fill it in, or use "
        "--skip-missing to leave such rows out"]
    r = run("evaluate", model, "holes.csv", "--skip-missing", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["rows"] == 3 and d["skipped_rows"] == 1
    r = run("evaluate", model, "holes.csv", "--skip-missing")
    assert r.stdout.splitlines()[:2] == ["rows      3", "skipped   1 (a missing value)"]


def test_evaluate_skip_missing_leaves_out_inputs_a_drop_model_cannot_fill(here):
    model = _train(here, "--impute", "drop")
    r = run("evaluate", model, "holes.csv")
    assert r.exit_code == 1 and "holes.csv:3: column 'b' (3): missing value" in r.stderr
    assert "--skip-missing to leave such rows out" in r.stderr
    d = json.loads(run("evaluate", model, "holes.csv", "--skip-missing", "--json").stdout)
    assert d["rows"] == 1 and d["skipped_rows"] == 3
    (here / "none.csv").write_text("id,a,b,y\nq0,,2,0\n")
    r = run("evaluate", model, "none.csv", "--skip-missing")
    assert r.exit_code == 1 and "no row is left to score" in r.stderr


def test_skip_missing_still_reports_a_cell_that_is_not_a_number(here):
    model = _train(here)
    (here / "bad.csv").write_text("id,a,b,y\nq0,1,,0\nq1,x,2,1\n")
    r = run("predict", model, "bad.csv", "--skip-missing")
    assert r.exit_code == 1 and "bad.csv:3: column 'a' (2): cannot read 'x' as a number" in r.stderr


# -- exit codes: options that do not fit the data are usage errors (2) ----------------------

def test_options_that_do_not_fit_the_data_exit_2(iris, here):
    (here / "run.loss.csv").write_text("epoch,train_loss,val_loss,lr,seconds\n1,0.5,,0.1,0\n")
    cases = [
        (["predict", iris, IRIS, "--id", "name"],
         "--id name: " + IRIS + " has no column named 'name'; its columns: 'sepal_length'"),
        (["predict", iris, IRIS, "--no-header", "--columns", "a,b"],
         IRIS + ":1: 2 column names were given but the first row has 5 fields"),
        (["evaluate", iris, IRIS, "--no-header", "--columns", "a,b"],
         "2 column names were given but the first row has 5 fields"),
        (["plot-loss", "run.loss.csv", "--metric", "f1"],
         "--metric f1: run.loss.csv has no column 'f1'; it logs train_loss, val_loss"),
    ]
    for args, message in cases:
        r = run(*args)
        assert r.exit_code == 2, (args, r.output)
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines


def test_data_and_io_errors_exit_1(iris, here):
    (here / "l.csv").write_text("epoch,train_loss,val_loss\n1,x,\n")
    cases = [
        ["predict", iris, "nowhere.csv"],
        ["evaluate", iris, "nowhere.csv"],
        ["gradcheck", "--model", iris, "nowhere.csv"],
        ["plot-loss", "nowhere.loss.csv"],
        ["plot-fit", "nowhere.npz", IRIS],
        ["evaluate", iris, os.path.join(DATA, "curve.csv")],      # columns the model needs
        ["plot-loss", "l.csv"],                                   # a cell that is not a number
    ]
    for args in cases:
        r = run(*args)
        assert r.exit_code == 1, (args, r.output)
        assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.output
