"""predict and evaluate: standard input, missing values, encodings and exit codes."""
import io
import json
import os

import pytest
from click.testing import CliRunner

from nncli.cli import cli

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
IRIS = os.path.abspath(os.path.join(DATA, "iris.csv"))
TRAIN = ["--epochs", "2", "--layers", "4", "-q", "--val-split", "0"]


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
