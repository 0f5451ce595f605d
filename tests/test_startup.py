"""Starting nncli: `python -m nncli`, and a source tree whose kernels are not compiled."""
import os
import shutil
import subprocess
import sys

import pytest

import nncli

PACKAGE = os.path.dirname(nncli.__file__)


def _python(args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def source_checkout(tmp_path):
    """A folder that looks like a clone's root: the nncli package without compiled kernels."""
    shutil.copytree(PACKAGE, tmp_path / "nncli",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    return tmp_path


def test_python_m_nncli_in_a_source_tree_without_kernels_says_what_to_do(source_checkout):
    r = _python(["-m", "nncli", "train", "x.csv"], source_checkout)
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("Error: nncli's compiled kernels are not built in this source tree")
    assert "pip install ." in lines[0] and "python setup.py build_ext --inplace" in lines[0]


def test_import_nncli_in_a_source_tree_without_kernels_raises_that_sentence(source_checkout):
    r = _python(["-c", "import nncli"], source_checkout)
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1].startswith(
        "ImportError: nncli's compiled kernels are not built in this source tree")
    assert "No module named" not in r.stderr


def test_python_m_nncli_runs_the_cli():
    root = os.path.dirname(PACKAGE)
    r = _python(["-m", "nncli", "--version"], root)
    assert r.returncode == 0 and r.stdout.startswith("nncli, version ")
    r = _python(["-m", "nncli", "trainn"], root)
    assert r.returncode == 2 and "No such command" in r.stderr


def test_an_installed_package_without_kernel_sources_starts(tmp_path):
    """A wheel may ship the compiled kernels without their .pyx sources."""
    shutil.copytree(PACKAGE, tmp_path / "nncli",
                    ignore=shutil.ignore_patterns("*.pyx", "*.c", "__pycache__"))
    r = _python(["-m", "nncli", "--version"], tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("nncli, version "), r.stderr
