"""The README's export snippets work as shown: the onnxruntime lines run, the C compiles."""
import contextlib
import io
import os
import re
import shutil
import subprocess

import pytest

from export_util import run

ROOT = os.path.join(os.path.dirname(__file__), "..")
IRIS = os.path.abspath(os.path.join(ROOT, "data", "iris.csv"))


def export_section():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    start = text.index("### `nncli export MODEL -o FILE`")
    return text[start:text.index("\n## ", start)]


def block(section, lang, contains):
    blocks = re.findall(rf"```{lang}\n(.*?)```", section, re.S)
    return next(b for b in blocks if contains in b)


@pytest.fixture
def iris(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run("train", IRIS, "--epochs", "30", "--layers", "8", "-q", "--val-split", "0", "-o", "iris.npz")
    assert r.exit_code == 0, r.output
    return tmp_path


def test_the_onnxruntime_snippet_runs(iris):
    pytest.importorskip("onnxruntime")
    assert run("export", "iris.npz", "-o", "iris.onnx").exit_code == 0
    code = block(export_section(), "python", "onnxruntime")
    assert len(code.strip().splitlines()) == 5
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert out.getvalue().startswith("setosa [")


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_the_c_snippet_compiles_and_runs_as_shown(iris):
    assert run("export", "iris.npz", "--format", "c", "-o", "iris.h").exit_code == 0
    section = export_section()
    (iris / "iris_demo.c").write_text(block(section, "c", "iris_predict"))
    command = block(section, "sh", "iris_demo").strip()
    out = subprocess.run(command, shell=True, cwd=iris, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    label, p = out.stdout.split()
    assert label == "setosa" and 0.5 < float(p) <= 1
