"""Pipes and signals, in real processes: `nncli predict … | head` ends quietly; SIGINT or
SIGTERM during training exits 130 with one line, leaves no model and no temp file, and the
last checkpoint continues the run (--resume) to the very model an uninterrupted run makes.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

import nncli
from nncli.cli import cli
from nncli.model_io import load_model

# The shipped data sits beside the tests (nncli itself may be installed elsewhere).
DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
# The folder holding the imported nncli package (the repository for an in-place build).
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(nncli.__file__)))
LARGE = os.path.join(DATA, "large.csv")
IRIS = os.path.join(DATA, "iris.csv")
TIMEOUT = 120   # seconds; generous for a loaded machine, never reached when all is well


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The environment in which `python -m nncli` runs this nncli from any folder: as it
    is when the package is installed, with PYTHONPATH set to the repository otherwise."""
    env = dict(os.environ)
    probe = subprocess.run([sys.executable, "-c", "import nncli; print(nncli.__file__)"],
                           cwd=tmp_path_factory.mktemp("probe"), env=env, capture_output=True, text=True)
    found = probe.stdout.strip()
    if probe.returncode != 0 or os.path.realpath(found) != os.path.realpath(nncli.__file__):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
    return env


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The first 6000 rows of data/large.csv: a few tens of ms per epoch."""
    path = tmp_path_factory.mktemp("data") / "sample.csv"
    with open(LARGE) as f:
        path.write_text("".join(line for _, line in zip(range(6001), f)))
    return str(path)


def sigint_as_a_terminal_sends_it():
    """For the child: Ctrl-C's default action, even when this test run was started in the
    background of a non-interactive shell, which starts its jobs with SIGINT ignored (and a
    Python started with SIGINT ignored never raises KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def nncli_cmd(*args):
    return [sys.executable, "-m", "nncli", *map(str, args)]


def log_rows(path):
    try:
        with open(path) as f:
            return max(0, len(f.read().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def interrupt_after(proc, loss_log, rows, signum):
    """Send `signum` once the loss log shows `rows` epochs; return (code, stdout, stderr)."""
    deadline = time.monotonic() + TIMEOUT
    while log_rows(loss_log) < rows:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no loss-log rows in time"
        time.sleep(0.02)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, out, err


def leftovers(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith(".tmp"))


def test_predict_into_head_ends_quietly(tmp_path, env):
    r = CliRunner().invoke(cli, ["train", LARGE, "--epochs", "1", "--layers", "4", "-q",
                                 "-o", str(tmp_path / "m.npz")])
    assert r.exit_code == 0, r.output
    # --proba makes ~800 kB of output: far more than a pipe holds once head has gone.
    pipeline = (f"set -o pipefail; {' '.join(nncli_cmd('predict', tmp_path / 'm.npz', LARGE, '--proba'))}"
                f" 2>{tmp_path / 'err.txt'} | head -1")
    p = subprocess.run(["bash", "-c", pipeline], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=TIMEOUT)
    assert p.returncode == 0, (p.returncode, (tmp_path / "err.txt").read_text())
    assert p.stdout == "label,proba_alpha,proba_beta,proba_gamma\n"
    assert (tmp_path / "err.txt").read_text() == ""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_training(tmp_path, env, sample, signum):
    proc = subprocess.Popen(nncli_cmd("train", sample, "--epochs", 100000, "--layers", "32", "-q",
                                      "-o", "model.npz", "--loss-log", "log.csv",
                                      "--checkpoint", "ck.npz", "--checkpoint-every", 2),
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_as_a_terminal_sends_it)
    code, out, err = interrupt_after(proc, tmp_path / "log.csv", 3, signum)
    assert code == 130, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: interrupted after "), err
    assert "no model written" in err and "--resume ck.npz" in err
    assert out == "" and "Traceback" not in err
    assert not (tmp_path / "model.npz").exists()
    assert leftovers(tmp_path) == []
    # The last complete checkpoint is intact and loadable.
    ck = load_model(tmp_path / "ck.npz")
    done = int(lines[0].split()[3])
    assert ck.meta["checkpoint"]["epoch"] % 2 == 0 and 2 <= ck.meta["checkpoint"]["epoch"] <= done


def savez_interrupted_in_its_cleanup(file, **arrays):
    """np.savez as CI once saw it: Ctrl-C lands inside zipfile's writing handle, and the
    archive's close in numpy's `finally` then raises its own error over the interrupt."""
    try:
        raise KeyboardInterrupt
    finally:
        raise ValueError("Can't close the ZIP file while there is an open writing handle on it.")


def test_ctrl_c_inside_a_checkpoints_zip_writer_is_the_interrupt(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(np, "savez", savez_interrupted_in_its_cleanup)
    r = CliRunner().invoke(cli, ["train", IRIS, "--epochs", "20", "--layers", "8", "-q",
                                 "-o", "m.npz", "--checkpoint", "ck.npz", "--checkpoint-every", "3"])
    assert r.exit_code == 130, r.output
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.output, r.output
    assert r.stderr.startswith("Error: interrupted after 3 of 20 epochs"), r.stderr
    assert os.listdir(tmp_path) == ["m.loss.csv"]   # no model, no checkpoint, no temp file


def test_an_interrupt_surfacing_in_an_epoch_callback_still_says_what_was_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    import nncli.progress as progress
    write = progress.LossLogWriter.__call__

    def interrupted_at_5(self, record, trainer):
        write(self, record, trainer)
        if record.epoch == 5:
            savez_interrupted_in_its_cleanup(None)

    monkeypatch.setattr(progress.LossLogWriter, "__call__", interrupted_at_5)
    r = CliRunner().invoke(cli, ["train", IRIS, "--epochs", "20", "--layers", "8", "-q", "--ensemble", "1",
                                 "-o", "m.npz", "--checkpoint", "ck.npz", "--checkpoint-every", "2"])
    assert r.exit_code == 130 and r.stderr.count("\n") == 1, r.output
    assert r.stderr.startswith("Error: interrupted after 5 of 20 epochs") and "--resume ck.npz" in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["ck.npz", "m.loss.csv"]


def test_an_interrupt_surfacing_as_another_error_is_reported_as_the_interrupt(tmp_path, monkeypatch):
    # Anywhere else (here: predict's model loading), the CLI boundary recognises it.
    r = CliRunner().invoke(cli, ["train", IRIS, "--epochs", "2", "-q", "-o", str(tmp_path / "m.npz")])
    assert r.exit_code == 0, r.output
    import nncli.model_io

    def load_interrupted(path):
        savez_interrupted_in_its_cleanup(path)

    monkeypatch.setattr(nncli.model_io, "load_model", load_interrupted)
    r = CliRunner().invoke(cli, ["predict", str(tmp_path / "m.npz"), IRIS])
    assert r.exit_code == 130 and r.stderr == "Error: interrupted\n" and r.stdout == "", r.output


@pytest.fixture
def handlers_as_nncli_sets_them():
    """SIGINT and SIGTERM raising KeyboardInterrupt, as in `nncli` (cli.main), even when the
    tests were started with SIGINT ignored."""
    from nncli.cli import _terminate
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    yield
    for s, h in before.items():
        signal.signal(s, h)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_a_checkpoint_is_written_waits_for_the_archive(
        tmp_path, monkeypatch, handlers_as_nncli_sets_them, signum):
    monkeypatch.chdir(tmp_path)
    savez, finished = np.savez, []

    def savez_signalled_at_its_start(file, **arrays):
        os.kill(os.getpid(), signum)   # delivered at once to this (the main) thread
        savez(file, **arrays)
        finished.append(True)

    monkeypatch.setattr(np, "savez", savez_signalled_at_its_start)
    r = CliRunner().invoke(cli, ["train", IRIS, "--epochs", "20", "--layers", "8", "-q",
                                 "-o", "m.npz", "--checkpoint", "ck.npz", "--checkpoint-every", "3"])
    assert finished == [True]   # the archive was complete before the interrupt was acted on
    assert r.exit_code == 130 and r.stderr.count("\n") == 1, r.output
    assert r.stderr.startswith("Error: interrupted after 3 of 20 epochs"), r.stderr
    assert os.listdir(tmp_path) == ["m.loss.csv"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # put back


def test_a_second_signal_while_an_archive_is_written_acts_at_once(handlers_as_nncli_sets_them):
    from nncli.interrupts import deferred_interrupts
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            reached.append(1)
            os.kill(os.getpid(), signal.SIGTERM)
            reached.append(2)
    assert reached == [1]


def test_ctrl_c_during_an_ensemble_stops_every_member_and_writes_nothing(tmp_path, env, sample):
    # The members run on threads; the interrupt reaches the main thread, the epoch in flight
    # ends and the run stops as a single network's does.
    proc = subprocess.Popen(nncli_cmd("train", sample, "--epochs", 100000, "--layers", "32", "-q",
                                      "--ensemble", 3, "--threads", 2, "-o", "model.npz",
                                      "--loss-log", "log.csv"),
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_as_a_terminal_sends_it)
    code, out, err = interrupt_after(proc, tmp_path / "log.csv", 2, signal.SIGINT)
    assert code == 130, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: interrupted after "), err
    assert lines[0].endswith("of 100000 epochs; no model written") and out == ""
    assert not (tmp_path / "model.npz").exists() and leftovers(tmp_path) == []


def test_resume_after_a_real_interrupt_is_bit_for_bit(tmp_path, env, sample):
    args = ["--epochs", 50, "--layers", "64,64", "--threads", 1, "-q", "--early-stopping", 30]
    full = CliRunner().invoke(cli, ["train", sample, *map(str, args), "-o", str(tmp_path / "full.npz")])
    assert full.exit_code == 0, full.output
    proc = subprocess.Popen(nncli_cmd("train", sample, *args, "-o", "part.npz", "--loss-log", "log.csv",
                                      "--checkpoint", "ck.npz", "--checkpoint-every", 3),
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_as_a_terminal_sends_it)
    code, _, err = interrupt_after(proc, tmp_path / "log.csv", 4, signal.SIGINT)
    assert code == 130, err
    assert not (tmp_path / "part.npz").exists()
    r = CliRunner().invoke(cli, ["train", sample, "--resume", str(tmp_path / "ck.npz"), "-q",
                                 "-o", str(tmp_path / "resumed.npz"), "--loss-log", str(tmp_path / "log.csv")])
    assert r.exit_code == 0, r.output
    assert _phi(tmp_path / "resumed.npz") == _phi(tmp_path / "full.npz")
    assert log_rows(tmp_path / "log.csv") == 50


def _phi(path):
    with np.load(path) as z:
        return z["phi"].tobytes()


def _meta(path):
    with np.load(path) as z:
        return json.loads(z["meta"].tobytes())


# In-process: an interrupt at a known epoch (what SIGINT between two epochs does), across
# optimisers, schedules, validation and early stopping. Deterministic and fast.
RESUME_CASES = {
    "adam-val-split-early-stopping": ["--early-stopping", "2", "--lr", "0.05"],
    "momentum-cosine": ["--optimizer", "momentum", "--schedule", "cosine", "--val-split", "0"],
    "adamw-full-batch-float64-clip": ["--optimizer", "adamw", "--weight-decay", "0.01", "--clip-norm", "1",
                                      "--batch-size", "full", "--dtype", "float64", "--schedule", "exponential"],
    "rmsprop-step-batch-1": ["--optimizer", "rmsprop", "--schedule", "step", "--batch-size", "1"],
    "nesterov-plateau-val-data": ["--optimizer", "nesterov", "--schedule", "plateau", "--val-data", IRIS],
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_is_bit_for_bit(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    import nncli.progress as progress
    runner = CliRunner()
    # one network: a checkpoint holds one, so the uninterrupted run must train one too
    base = ["train", IRIS, "--epochs", "20", "--layers", "8", "-q", "--threads", "1", "--ensemble", "1",
            *RESUME_CASES[case]]
    r = runner.invoke(cli, [*base, "-o", "full.npz"])
    assert r.exit_code == 0, r.output
    write = progress.LossLogWriter.__call__

    def interrupted_at_7(self, record, trainer):
        write(self, record, trainer)
        if record.epoch == 7:
            raise KeyboardInterrupt

    monkeypatch.setattr(progress.LossLogWriter, "__call__", interrupted_at_7)
    r = runner.invoke(cli, [*base, "-o", "part.npz", "--checkpoint", "ck.npz", "--checkpoint-every", "3"])
    stopped_early = _meta("full.npz")["stopped_early"]
    if not stopped_early or _meta("full.npz")["epochs_run"] > 7:
        assert r.exit_code == 130 and r.stderr.count("\n") == 1, r.output
        assert "interrupted after 7 of 20 epochs" in r.stderr and not os.path.exists("part.npz")
        assert _meta("ck.npz")["checkpoint"]["epoch"] == 6
    monkeypatch.setattr(progress.LossLogWriter, "__call__", write)
    r = runner.invoke(cli, ["train", IRIS, "--resume", "ck.npz", "-q", "-o", "resumed.npz"])
    assert r.exit_code == 0, r.output
    assert _phi("resumed.npz") == _phi("full.npz")
    a, b = _meta("full.npz"), _meta("resumed.npz")
    for key in ("metrics", "epochs_run", "stopped_early", "best_epoch", "config"):
        assert a[key] == b[key], key


def test_early_stopping_case_really_stops_early(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["train", IRIS, "--epochs", "20", "--layers", "8", "-q", "--threads", "1",
                                 *RESUME_CASES["adam-val-split-early-stopping"], "-o", "m.npz"])
    assert r.exit_code == 0
    m = _meta("m.npz")
    assert m["stopped_early"] and 7 < m["epochs_run"] < 20
