"""nncli plot-loss and the drawing helpers in nncli.plot."""
import math
import os
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from nncli.cli import cli
from nncli.plot import Series, read_loss_log, terminal_plot

PNG = b"\x89PNG\r\n\x1a\n"


def write_log(path, epochs=30, val=True, metric=False, scale=1.0):
    head = "epoch,train_loss,val_loss" + (",val_accuracy" if metric else "") + ",lr,seconds\n"
    rows = []
    for e in range(1, epochs + 1):
        t = scale * (math.exp(-0.1 * e) + 0.05)
        v = f"{t * 1.1 + 0.02:.6f}" if val else ""
        acc = f",{1 - 0.5 * math.exp(-0.2 * e):.4f}" if metric else ""
        rows.append(f"{e},{t:.6f},{v}{acc},0.01,0.0021\n")
    path.write_text(head + "".join(rows))
    return str(path)


def run(*args, **kw):
    return CliRunner().invoke(cli, [str(a) for a in args], **kw)


def test_one_log_writes_a_png(tmp_path):
    log = write_log(tmp_path / "run.loss.csv")
    out = tmp_path / "loss.png"
    r = run("plot-loss", log, "-o", out)
    assert r.exit_code == 0, r.output
    data = out.read_bytes()
    assert data[:8] == PNG and len(data) > 10_000
    assert "wrote" in r.stderr and r.stdout == ""


def test_several_logs_svg_log_scale_and_title(tmp_path):
    logs = [write_log(tmp_path / f"{n}.loss.csv", scale=s, val=v)
            for n, s, v in (("a", 1, True), ("b", 2, False), ("c", 0.5, True))]
    out = tmp_path / "runs.svg"
    r = run("plot-loss", *logs, "-o", out, "--log-scale", "--title", "three runs")
    assert r.exit_code == 0, r.output
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "three runs" in svg
    assert "5 curves from 3 logs" in r.stderr       # b has no validation curve


def test_default_output_is_loss_png(tmp_path, monkeypatch):
    log = write_log(tmp_path / "run.loss.csv")
    monkeypatch.chdir(tmp_path)
    r = run("plot-loss", log)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "loss.png").read_bytes()[:8] == PNG


def test_metric_column(tmp_path):
    log = write_log(tmp_path / "run.loss.csv", metric=True)
    out = tmp_path / "acc.png"
    r = run("plot-loss", log, "--metric", "val_accuracy", "-o", out)
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:8] == PNG
    r = run("plot-loss", log, "--metric", "accuracy", "-o", out)     # val_accuracy found
    assert r.exit_code == 0, r.output
    r = run("plot-loss", log, "--metric", "f1", "-o", out)
    assert r.exit_code == 2 and "no column 'f1'" in r.output and "val_accuracy" in r.output


@pytest.mark.parametrize("text, message", [
    # the messages of nncli.csvio, which reads loss logs as it reads every CSV
    ("epoch,train_loss,val_loss\n1,0.5,\n2,oops,\n", ":3: column 'train_loss' (2): 'oops' is not a number"),
    ("epoch,train_loss,val_loss\n1,0.5,0.6\n2,0.4\n3,0.3,0.2\n", ":3: expected 3 fields (as in the first row), found 2"),
    ("epoch,loss\n1,0.5\n", ":1: not a loss log: no column 'train_loss', 'val_loss'"),
    ("", "the file is empty"),
    ("epoch,train_loss,val_loss\n1,0.5,0.6\n2,0.4\n3,0.3", ":3: expected 3 fields (as in the first row), found 2"),
    (b"epoch,train_loss,val_loss\n1,0.5,0.6\n2,0.4,caf\xe9\n", ":3: the byte 0xE9 at position 10 of the line (offset 45 in the file) is not valid UTF-8: "
     "not a loss log written by nncli"),
    ("epoch,train_loss,val_loss\n", "no epochs logged yet"),
])
def test_malformed_logs_name_file_and_line(tmp_path, text, message):
    log = tmp_path / "bad.csv"
    log.write_bytes(text if isinstance(text, bytes) else text.encode())
    r = run("plot-loss", log, "-o", tmp_path / "x.png")
    assert r.exit_code == 1
    assert r.output.startswith("Error: ") and str(log) in r.output and message in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "x.png").exists()


def test_missing_file_and_bad_extension(tmp_path):
    r = run("plot-loss", tmp_path / "nope.csv")
    assert r.exit_code == 1 and "nope.csv: cannot open: No such file" in r.output
    log = write_log(tmp_path / "run.loss.csv")
    r = run("plot-loss", log, "-o", tmp_path / "loss.jpg")
    assert r.exit_code == 2 and ".png, .svg or .pdf" in r.output


def test_a_log_being_written_skips_its_unfinished_last_line(tmp_path):
    log = tmp_path / "live.loss.csv"
    log.write_text("epoch,train_loss,val_loss,lr,seconds\n1,0.9,0.95,0.01,0.1\n2,0.8,0.85,0.01,0.1\n3,0.7")
    parsed = read_loss_log(str(log))
    assert parsed.epochs.tolist() == [1, 2] and parsed.label == "live"
    assert np.allclose(parsed.columns["val_loss"], [0.95, 0.85])


def test_logs_with_the_same_name_are_told_apart_by_folder(tmp_path):
    from nncli.plot import curves
    logs = []
    for run in ("run1", "run2"):
        (tmp_path / run).mkdir()
        logs.append(read_loss_log(write_log(tmp_path / run / "model.loss.csv", val=False)))
    labels = [c[0] for c in curves(logs)]
    assert labels == [f"{tmp_path / 'run1' / 'model'} train", f"{tmp_path / 'run2' / 'model'} train"]


def test_nan_and_empty_val_loss_read_as_nan(tmp_path):
    log = tmp_path / "r.csv"
    log.write_text("epoch,train_loss,val_loss,lr,seconds\n1,0.9,nan,0.1,0\n2,0.8,,0.1,0\n")
    parsed = read_loss_log(str(log))
    assert np.isnan(parsed.columns["val_loss"]).all() and not parsed.has_values("val_loss")


def test_terminal_plot_of_two_logs(tmp_path):
    a = write_log(tmp_path / "a.loss.csv")
    b = write_log(tmp_path / "b.loss.csv", scale=2)
    r = run("plot-loss", a, b, "--terminal", "--width", "70", "--height", "18")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) <= 18
    assert max(len(l) for l in lines[:-1]) <= 70       # the legend line may run longer
    assert any("\u2800" < ch <= "\u28ff" for ch in r.stdout)       # braille dots
    assert "epoch" in r.stdout and "loss" in lines[0]
    assert "── a train" in lines[-1] and "┄┄ a validation" in lines[-1] and "── b train" in lines[-1]
    assert "\033[" not in r.stdout        # no colour when stdout is not a terminal
    assert not (tmp_path / "loss.png").exists()
    r = run("plot-loss", a, "--terminal", "--width", "60", "--color", "--log-scale")
    assert r.exit_code == 0 and "\033[34m" in r.stdout and "(log scale)" in r.stdout


def test_terminal_plot_needs_no_matplotlib(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)     # import matplotlib → ImportError
    log = write_log(tmp_path / "a.loss.csv")
    r = run("plot-loss", log, "--terminal", "--width", "60")
    assert r.exit_code == 0, r.output
    r = run("plot-loss", log, "-o", tmp_path / "a.png")
    assert r.exit_code == 1 and "needs matplotlib" in r.output and "pip install matplotlib" in r.output


def test_terminal_plot_draws_a_diagonal():
    x = np.arange(1, 11, dtype=float)
    text = terminal_plot([("up", x, x)], width=40, height=12)
    rows = [l for l in text.splitlines() if "┤" in l or "│" in l]
    # the line starts at the bottom left and ends at the top right
    assert rows[0].rstrip()[-1] != "┤" and rows[0].split("┤")[1].lstrip() != ""
    assert rows[0].index("┤") + 1 < len(rows[0].rstrip())
    first_col = [r.split("┤" if "┤" in r else "│")[1][:1] for r in rows]
    assert first_col[-1] not in ("", " ") and all(c in ("", " ") for c in first_col[:-2])
    assert text.splitlines()[-1].strip() == "── up"


def test_terminal_plot_breaks_at_nan_and_handles_flat_and_empty():
    x = np.arange(5.0)
    assert "nothing to plot" in terminal_plot([Series("n", x, np.full(5, np.nan))], 40, 10)
    flat = terminal_plot([Series("f", x, np.ones(5))], 40, 10)
    assert any("\u2800" < ch <= "\u28ff" for ch in flat)
    log = terminal_plot([Series("l", x, np.array([1.0, 0.1, -1.0, 0.01, 0.001]))], 40, 10,
                        log_scale=True)
    assert "0.001" in log and "(log scale)" in log


def test_a_log_being_written_on_stdin_and_a_log_with_only_its_header(tmp_path):
    text = "epoch,train_loss,val_loss,lr,seconds\n1,0.9,0.95,0.01,0.1\n2,0.8,0.85,0.01,0.1\n3,0.7"
    r = run("plot-loss", "-", "--terminal", "--width", "60", input=text)
    assert r.exit_code == 0, r.output
    log = tmp_path / "new.loss.csv"
    log.write_text("epoch,train_loss,val_loss,lr,seconds\n")
    assert read_loss_log(str(log)).epochs.tolist() == []
    log.write_text("epoch,train_loss,val_loss,lr,seconds\n1,0.9")
    assert read_loss_log(str(log)).epochs.tolist() == []


def test_a_log_written_by_train_reads_back_exactly(tmp_path, monkeypatch):
    """The loss log writer and reader are the project's CSV writer and reader."""
    monkeypatch.chdir(tmp_path)
    data = os.path.join(os.path.dirname(__file__), "..", "data", "iris.csv")
    r = CliRunner().invoke(cli, ["train", data, "--epochs", "3", "-q", "--layers", "4"])
    assert r.exit_code == 0, r.output
    text = (tmp_path / "iris.loss.csv").read_text().splitlines()
    curve = read_loss_log("iris.loss.csv")
    assert list(curve.columns) == text[0].split(",")
    for row, line in enumerate(text[1:]):
        for name, cell in zip(curve.columns, line.split(",")):
            value = curve.columns[name][row]
            assert (math.isnan(value) and cell in ("", "nan")) or value == float(cell)
