import os

import numpy as np
import pytest
from click.testing import CliRunner

from nncli.cli import cli

DATA = os.path.join(os.path.dirname(__file__), "..", "data")

DTYPES = [np.float32, np.float64]
# Per-dtype tolerances: FMA and non-FMA paths differ in the last bits.
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


@pytest.fixture(params=DTYPES, ids=["f32", "f64"])
def dtype(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# -- the command line, as tests/test_cli.py and others drive it ------------------------------
def data(name):
    """The path of a shipped data file (data/ beside tests/)."""
    return os.path.abspath(os.path.join(DATA, name))


@pytest.fixture
def runner(tmp_path, monkeypatch):
    """A CliRunner working in the test's own folder."""
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def invoke(runner, *args, input=None):
    return runner.invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)
