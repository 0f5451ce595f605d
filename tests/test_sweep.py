"""nncli sweep on Optuna: the embedded journal, continuing a sweep, failed and diverging
trials, Ctrl-C, two workers sharing a budget, a killed worker, and a real PostgreSQL server.
Sweeps here are a few trials of a few epochs on small data."""
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
from click.testing import CliRunner

import nncli
from nncli.cli import cli
from nncli.model_io import load_model

optuna = pytest.importorskip("optuna")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "data")
IRIS = os.path.join(DATA, "iris.csv")
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(nncli.__file__)))
TIMEOUT = 120
SPACE = """
lr = {low = 1e-3, high = 0.1, log = true}
layers = ["8", "16,8"]
optimizer = ["adam", "momentum"]
momentum = {low = 0.5, high = 0.95}
"""


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text(SPACE)
    return str(path)


@pytest.fixture(scope="module")
def env():
    """`python -m nncli` runs this nncli (the in-place build) in subprocesses."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
    return env


def sweep(*args):
    return CliRunner().invoke(cli, ["sweep", *map(str, args)])


def study_trials(folder):
    from optuna.storages.journal import JournalFileBackend
    storage = optuna.storages.JournalStorage(JournalFileBackend(os.path.join(folder, "sweep.journal")))
    return optuna.load_study(study_name="nncli", storage=storage).get_trials(deepcopy=False)


def test_without_optuna_one_line_names_the_extra(monkeypatch, space, tmp_path):
    monkeypatch.setitem(sys.modules, "optuna", None)
    r = sweep(IRIS, "--space", space, "--trials", 1, "-o", tmp_path / "s")
    assert r.exit_code == 1
    assert r.output.strip() == "Error: nncli sweep needs Optuna: pip install 'nncli[sweep]'"


def test_a_sweep_keeps_the_best_model_and_continues(space, tmp_path):
    out = tmp_path / "s"
    r = sweep(IRIS, "--space", space, "--trials", 4, "--epochs", 6, "--pruner", "none",
              "--sampler-seed", 0, "-o", out, "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [t["trial"] for t in doc["trials"]] == [0, 1, 2, 3]
    assert all(t["state"] == "complete" and t["epochs"] == 6 for t in doc["trials"])
    # A trial of adam searches no momentum: the space is conditional.
    for t in doc["trials"]:
        assert ("momentum" in t["params"]) == (t["params"]["optimizer"] == "momentum")
    best = doc["best"]
    assert best["score"] == min(t["score"] for t in doc["trials"])
    model = load_model(out / "best.npz")
    assert model.meta["sweep"]["trial"] == best["trial"] and model.meta["sweep"]["study"] == "nncli"
    assert model.meta["metrics"]["val_loss"] == pytest.approx(best["score"])
    assert model.meta["config"]["lr"] == pytest.approx(best["params"]["lr"])
    assert model.meta["config"]["epochs"] == 6          # fixed on the command line
    assert model.meta["config"]["ensemble"] == 1        # a trial is one network by default
    info = CliRunner().invoke(cli, ["info", str(out / "best.npz")])
    assert f"sweep      trial {best['trial']} of study 'nncli' in {out}/sweep.journal" in info.output
    rows = (out / "trials.csv").read_text().splitlines()
    assert rows[0] == "trial,state,score,epochs,seconds,lr,layers,optimizer,momentum,fail_reason"
    assert len(rows) == 5
    assert "0 of 4 trials done" in r.stderr and re.search(r"^\s+3  complete ", r.stderr, re.M)
    # The same command with a larger budget continues the study where it stopped.
    r = sweep(IRIS, "--space", space, "--trials", 6, "--epochs", 6, "-o", out, "--json", "-q")
    assert r.exit_code == 0, r.output
    assert [t["trial"] for t in json.loads(r.stdout)["trials"]] == list(range(6))
    assert r.stderr == ""
    # Another space in the same study is refused rather than mixed in.
    other = tmp_path / "other.toml"
    other.write_text('layers = ["4"]\n')
    r = sweep(IRIS, "--space", other, "--trials", 8, "-o", out)
    assert r.exit_code == 2 and "searched another space" in r.output


def test_the_plot_shows_history_and_importance(space, tmp_path):
    out = tmp_path / "s"
    assert sweep(IRIS, "--space", space, "--trials", 3, "--epochs", 3, "-o", out).exit_code == 0
    r = CliRunner().invoke(cli, ["plot-sweep", str(out), "-o", str(tmp_path / "p.png")])
    assert r.exit_code == 0, r.output
    assert "3 trials, 3 completed" in r.output
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_optunas_cautions_on_the_importances_are_one_line_notes(space, tmp_path, monkeypatch):
    import warnings
    import optuna
    out = tmp_path / "s"
    assert sweep(IRIS, "--space", space, "--trials", 2, "--epochs", 2, "-o", out).exit_code == 0

    def cautious(study):
        warnings.warn("Some regimes for parameter `lr` have less than 2 trials.", UserWarning)
        return {"lr": 1.0}
    monkeypatch.setattr(optuna.importance, "get_param_importances", cautious)
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        r = CliRunner().invoke(cli, ["plot-sweep", str(out), "-o", str(tmp_path / "p.png")])
    assert r.exit_code == 0, r.output
    assert "note: Some regimes for parameter `lr` have less than 2 trials." in r.output
    assert not [w for w in escaped if "regimes" in str(w.message)]


@pytest.mark.parametrize("text, message", [
    ("learning_rate = [0.1]\n", "'learning_rate' is not a searchable option"),
    ("lr = {low = -1.0, high = 1.0}\n", "--lr=-1.0"),
    ("lr = {low = 1e-3, high = 1.0, log = true, step = 0.1}\n", "a log scale takes no step"),
    ("layers = 3\n", "give a list of choices or {low = …, high = …}"),
    ("optimizer = ['adam', 'sgdd']\n", "--optimizer='sgdd'"),
])
def test_a_bad_space_is_a_usage_error(tmp_path, text, message):
    path = tmp_path / "space.toml"
    path.write_text(text)
    r = sweep(IRIS, "--space", path, "--trials", 1, "-o", tmp_path / "s")
    assert r.exit_code == 2 and message in r.output
    assert not (tmp_path / "s").exists()


def test_grid_needs_lists(tmp_path, space):
    r = sweep(IRIS, "--space", space, "--sampler", "grid", "--trials", 1, "-o", tmp_path / "s")
    assert r.exit_code == 2 and "--sampler grid needs a list of values for lr" in r.output


def test_a_diverging_trial_fails_with_its_reason_and_the_sweep_goes_on(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text("lr = [1000.0, 0.01]\n")
    r = sweep(os.path.join(DATA, "three.csv"), "--space", path, "--sampler", "grid", "--trials", 2,
              "--optimizer", "sgd", "--epochs", 4, "-o", tmp_path / "s", "--json")
    assert r.exit_code == 0, r.output
    by_lr = {t["params"]["lr"]: t for t in json.loads(r.stdout)["trials"]}
    assert by_lr[1000.0]["state"] == "failed"
    assert by_lr[1000.0]["fail_reason"].startswith("training diverged at epoch 1")
    assert by_lr[0.01]["state"] == "complete"
    assert load_model(tmp_path / "s" / "best.npz").meta["config"]["lr"] == 0.01
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_pruning_sees_every_epoch(space, tmp_path, pruner):
    out = tmp_path / "s"
    r = sweep(IRIS, "--space", space, "--trials", 6, "--epochs", 5, "--pruner", pruner,
              "--sampler-seed", 3, "-o", out)
    assert r.exit_code == 0, r.output
    for t in study_trials(out):
        if t.state == optuna.trial.TrialState.PRUNED:
            assert sorted(t.intermediate_values) == list(range(1, len(t.intermediate_values) + 1))
            assert len(t.intermediate_values) < 5
        else:
            assert sorted(t.intermediate_values) == list(range(1, 6))


def _lines_until(stream, pattern, deadline):
    seen = []
    while time.time() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if re.search(pattern, line):
            return seen
    raise AssertionError("never saw " + pattern + " in:\n" + "".join(seen))


@pytest.fixture(scope="module")
def slow_data(tmp_path_factory):
    """3000 rows of data/large.csv: tens of ms per epoch, so a trial lasts long enough to
    be interrupted in."""
    path = tmp_path_factory.mktemp("data") / "sample.csv"
    with open(os.path.join(DATA, "large.csv")) as f:
        path.write_text("".join(line for _, line in zip(range(3001), f)))
    return str(path)


def test_ctrl_c_stops_cleanly_with_the_best_model_so_far(env, space, tmp_path, slow_data):
    # The child gets Ctrl-C's default action even when this run was started in the
    # background of a shell (which starts its jobs with SIGINT ignored).
    out = tmp_path / "s"
    p = subprocess.Popen([sys.executable, "-m", "nncli", "sweep", slow_data, "--space", space,
                          "--trials", "50", "--epochs", "40", "--pruner", "none", "--threads", "1",
                          "-o", str(out)], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        _lines_until(p.stderr, r"^\s+0  complete", time.time() + TIMEOUT)
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        err = p.stderr.read()
        assert p.wait(TIMEOUT) == 130
    finally:
        p.kill()
    assert "sweep interrupted; best model so far (trial" in err
    assert "run the same command to continue" in err and "Traceback" not in err
    best = load_model(out / "best.npz").meta["sweep"]["trial"]
    rows = json.loads((out / "trials.json").read_text())
    assert rows[-1]["state"] == "failed" and rows[-1]["fail_reason"] == "interrupted"
    assert best in [r["trial"] for r in rows if r["state"] == "complete"]
    assert not [f for f in os.listdir(out) if f.startswith(".trial")]   # no trial file left


def _table_rows(stderr):
    return {int(m.group(1)) for m in re.finditer(r"^\s+(\d+)  (complete|pruned|failed) ", stderr, re.M)}


def _two_workers(env, args, out, n_trials):
    cmd = [sys.executable, "-m", "nncli", "sweep", *map(str, args), "--trials", str(n_trials),
           "-o", str(out)]
    # Run outside the source tree: `python -m` puts the working folder first on sys.path.
    procs = [subprocess.Popen(cmd, env=env, cwd=os.path.dirname(str(out)), stderr=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, text=True) for _ in range(2)]
    errs = [p.communicate(timeout=TIMEOUT)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    return procs, errs


def _check_shared_budget(trials, procs, errs, n_trials):
    numbers = [t.number for t in trials]
    # The budget counts running trials too; two workers finishing at the same moment can each
    # start one more: at most workers − 1 = 1 over.
    assert n_trials <= len(numbers) <= n_trials + 1
    assert numbers == list(range(len(numbers)))
    ran = [_table_rows(e) for e in errs]
    assert not ran[0] & ran[1], "a trial ran in both workers"
    assert ran[0] | ran[1] == set(numbers)
    for t in trials:
        pid = int(t.user_attrs["worker"].rpartition(":")[2])
        assert pid == procs[0 if t.number in ran[0] else 1].pid


def test_two_workers_share_one_budget(env, space, tmp_path):
    out = tmp_path / "s"
    procs, errs = _two_workers(env, [IRIS, "--space", space, "--epochs", 8, "--threads", 1], out, 10)
    trials = study_trials(out)
    _check_shared_budget(trials, procs, errs, 10)
    # Both workers keep the folder's best.npz: it is the study's best trial.
    best = min((t for t in trials if t.state == optuna.trial.TrialState.COMPLETE), key=lambda t: t.value)
    assert load_model(out / "best.npz").meta["sweep"]["trial"] == best.number


def _trials_so_far(folder):
    """The study's trials while a worker is starting: none before its journal holds the
    study (the file can exist a moment before the study's record is in it)."""
    if not os.path.exists(os.path.join(folder, "sweep.journal")):
        return []
    try:
        return study_trials(folder)
    except KeyError:   # optuna: 'Record does not exist.'
        return []


def _kill_mid_trial(p, trials):
    """SIGKILL the worker process p once one of `trials()` is running with two epochs
    reported (mid-training). Returns its number. The callers turn early stopping off, so
    that no trial ends between two looks at the study."""
    running = None
    try:
        deadline = time.time() + TIMEOUT
        while running is None and time.time() < deadline and p.poll() is None:
            running = next((t.number for t in trials()
                            if t.state == optuna.trial.TrialState.RUNNING
                            and len(t.intermediate_values) >= 2), None)
            if running is None:
                time.sleep(0.1)
        assert running is not None, ("the worker finished every trial before one was seen "
                                     "running" if p.poll() is not None else
                                     "no trial got two epochs in before the deadline")
        p.send_signal(signal.SIGKILL)
        p.wait(TIMEOUT)
    finally:
        p.kill()
    return running


def test_a_killed_worker_leaves_the_study_usable(env, space, tmp_path, slow_data):
    out = tmp_path / "s"
    p = subprocess.Popen([sys.executable, "-m", "nncli", "sweep", slow_data, "--space", space,
                          "--trials", "3", "--epochs", "500", "--early-stopping", "0",
                          "--pruner", "none", "--threads", "1", "-o", str(out)],
                         env=env, cwd=tmp_path, stderr=subprocess.DEVNULL)
    # (a worker killed while it holds the journal's lock makes the next one wait 5 s for it)
    running = _kill_mid_trial(p, lambda: _trials_so_far(out))
    r = sweep(slow_data, "--space", space, "--trials", 3, "--epochs", 2, "-o", out, "--json")
    assert r.exit_code == 0, r.output
    assert f"Marked failed: trials {running}, left running by a worker that died." in r.stderr, r.stderr
    rows = json.loads(r.stdout)["trials"]
    assert len(rows) == 3
    assert rows[running]["state"] == "failed"
    assert rows[running]["fail_reason"] == f"its worker {os.uname().nodename}:{p.pid} died"
    assert [t["state"] for i, t in enumerate(rows) if i != running] == ["complete", "complete"]


# -- PostgreSQL ------------------------------------------------------------------------------
def _postgres_missing():
    missing = [b for b in ("initdb", "pg_ctl") if shutil.which(b) is None]
    if missing:
        return f"no PostgreSQL server binaries ({', '.join(missing)} not on PATH)"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no 'postgres' system user to run the server as"
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != "postgres":
        return "the server must run as the 'postgres' user: run the tests as root or postgres"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'nncli[test]')"
    return None


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server of our own in a temporary folder, on a Unix socket only (one for
    the module's tests: each uses its own study)."""
    reason = _postgres_missing()
    if reason:
        print(f"skipping the PostgreSQL test: {reason}")
        pytest.skip(reason)
    folder = tempfile.mkdtemp(prefix="nncli-pg-", dir="/tmp")
    user = pwd.getpwnam("postgres")
    os.chown(folder, user.pw_uid, user.pw_gid)
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    port = 20000 + os.getpid() % 20000
    run = lambda *cmd: subprocess.run(as_pg + list(cmd), check=True, capture_output=True, timeout=TIMEOUT)
    run("initdb", "-D", f"{folder}/data", "-A", "trust", "-U", "nncli")
    run("pg_ctl", "-D", f"{folder}/data", "-w", "-l", f"{folder}/log",
        "-o", f"-p {port} -k {folder} -c listen_addresses=''", "start")
    try:
        yield f"postgresql://nncli@/postgres?host={folder}&port={port}"
    finally:
        run("pg_ctl", "-D", f"{folder}/data", "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_on_a_postgresql_server(env, space, tmp_path, postgres):
    out = tmp_path / "s"
    args = [IRIS, "--space", space, "--epochs", 8, "--threads", 1, "--storage", postgres,
            "--study", "pg"]
    procs, errs = _two_workers(env, args, out, 8)
    storage = optuna.storages.RDBStorage(postgres.replace("postgresql://", "postgresql+psycopg://"))
    trials = optuna.load_study(study_name="pg", storage=storage).get_trials(deepcopy=False)
    _check_shared_budget(trials, procs, errs, 8)
    assert not (out / "sweep.journal").exists()
    assert load_model(out / "best.npz").meta["sweep"]["storage"].startswith("postgresql")
    storage.engine.dispose()


ELSEWHERE = """
import socket
import sys
socket.gethostname = lambda: "elsewhere"   # a worker of another machine: no pid to look at
from nncli.cli import main
main(sys.argv[1:])
"""


def test_a_killed_worker_on_another_machine_is_failed_by_the_heartbeat(env, space, tmp_path,
                                                                       slow_data, postgres):
    """Only the heartbeat can tell that a worker of another machine died: its trial is
    failed, with that reason, by the next worker once --heartbeat-timeout has passed."""
    script = tmp_path / "elsewhere.py"
    script.write_text(ELSEWHERE)
    args = [slow_data, "--space", space, "--storage", postgres, "--study", "heartbeat",
            "--heartbeat-timeout", "2", "--pruner", "none", "--threads", "1"]
    p = subprocess.Popen([sys.executable, str(script), "sweep", *args, "--trials", "3",
                          "--epochs", "500", "--early-stopping", "0", "-o", str(tmp_path / "a")],
                         env=env, cwd=tmp_path, stderr=subprocess.DEVNULL)
    storage = optuna.storages.RDBStorage(postgres.replace("postgresql://", "postgresql+psycopg://"))

    def trials():
        try:
            return optuna.load_study(study_name="heartbeat", storage=storage).get_trials()
        except KeyError:   # not created yet
            return []
    running = _kill_mid_trial(p, trials)
    time.sleep(3)   # past the 2 s timeout of its last beat
    r = sweep(*args, "--trials", 3, "--epochs", 2, "-o", tmp_path / "b", "--json")
    assert r.exit_code == 0, r.output
    assert f"Marked failed: trials {running}, left running by a worker that died." in r.stderr
    rows = json.loads(r.stdout)["trials"]
    assert rows[running]["state"] == "failed"
    assert rows[running]["fail_reason"] == (f"its worker elsewhere:{p.pid} sent no heartbeat "
                                            "for 2 s")
    assert [t["state"] for i, t in enumerate(rows) if i != running] == ["complete", "complete"]
    storage.engine.dispose()


def test_the_readme_sweep_example_runs_as_written(env, tmp_path):
    """The README's sweep block, run by bash in a fresh folder beside the shipped data, with
    `nncli` the command a user has after `pip install '.[sweep]'`."""
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.S)
    block = next(b for b in blocks if "nncli sweep data/iris.csv" in b)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "nncli"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m nncli "$@"\n')
    shim.chmod(0o755)
    os.symlink(DATA, tmp_path / "data")
    env = {**env, "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}"}
    r = subprocess.run(["bash", "-e", "-c", block], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert "16 trials in the study" in r.stderr and "wrote sweep.png" in r.stderr
    assert "sweep      trial" in r.stdout             # info names the trial
    assert load_model(tmp_path / "iris-sweep" / "best.npz").meta["sweep"]["study"] == "nncli"


def test_jobs_run_trials_in_threads_of_one_process(space, tmp_path):
    out = tmp_path / "s"
    r = sweep(IRIS, "--space", space, "--trials", 4, "--jobs", 2, "--epochs", 4, "-o", out, "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["trials"]
    assert [t["trial"] for t in rows] == [0, 1, 2, 3] and {t["state"] for t in rows} <= {"complete", "pruned"}
    assert {t.user_attrs["worker"] for t in study_trials(out)} == {f"{os.uname().nodename}:{os.getpid()}"}


def test_a_worker_fails_the_trial_of_a_dead_worker_as_its_own_trials_end(tmp_path):
    from nncli.sweep import Sweep, read_space
    path = tmp_path / "space.toml"
    path.write_text("lr = {low = 1e-3, high = 0.1, log = true}\n")
    dims = read_space(str(path), {"lr"}, lambda name, value: None)
    rows = []
    sweep = Sweep(IRIS, {"epochs": 2, "threads": 1, "val_split": 0.2, "seed": 0}, dims,
                  folder=str(tmp_path / "s"), convert=lambda name, value: value, trials=3,
                  on_trial=rows.append)
    # A trial left running, after this sweep started, by a process of this machine that is gone.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    orphan = sweep.study.ask()
    orphan.set_user_attr("worker", f"{os.uname().nodename}:{dead}")
    sweep.run()
    assert [(r["trial"], r["state"]) for r in rows] == [(1, "complete"), (0, "failed"), (2, "complete")]
    assert rows[1]["fail_reason"] == f"its worker {os.uname().nodename}:{dead} died"
