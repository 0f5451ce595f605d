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
