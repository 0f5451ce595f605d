"""Hyper-parameter sweeps on Optuna: many `TrainingRun`s, chosen and coordinated by a study.

Optuna does the search (TPE, random or grid sampling), the pruning of poor trials from the
per-epoch validation loss, and the coordination of workers: every worker — a thread of this
process (--jobs), or another `nncli sweep` on this or another machine — asks the shared
storage for its next trial, so no trial runs twice. Each trial is one `nncli.run.TrainingRun`
(the path `nncli train` takes) with the fixed options plus the trial's values.

Storage: by default Optuna's journal file `sweep.journal` in the sweep's folder, which several
processes may share (SQLite locks under two writers). Any Optuna URL (postgresql://…) for many
machines; RDB storages get Optuna's heartbeat, so a trial whose worker died is marked failed by
the next worker to start one. The journal has no heartbeat: a trial left RUNNING by a process
of this machine that no longer exists is marked failed when a sweep (re)starts on it.

Optuna is imported only here, and only when a sweep runs (the `sweep` extra).
"""
import contextlib
import json
import math
import os
import socket
import threading
import time
from dataclasses import dataclass

from nncli.errors import ConfigError, DivergenceError, NncliError
from nncli.model_io import atomic_path, json_safe
from nncli.csvio import writer as csv_out
from nncli.run import TrainingRun

JOURNAL = "sweep.journal"
BEST = "best.npz"
HEARTBEAT_SECONDS = 10     # RDB storages: a beat every 10 s; 60 s of silence fails a trial
GRACE_SECONDS = 60
LOCK_GRACE_SECONDS = 5     # the journal's lock: its writes take milliseconds
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")


def import_optuna():
    try:
        import optuna
    except ImportError as e:
        if e.name == "optuna":
            raise NncliError("nncli sweep needs Optuna: pip install 'nncli[sweep]'") from None
        raise NncliError(f"Optuna is installed but cannot be imported: {e}") from None
    # Failed and pruned trials are in nncli's own table; Optuna's log would repeat them
    # (with tracebacks) on stderr.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


@dataclass
class Dimension:
    """One searched option: kind 'int', 'float' (log scale or not, optional step) or
    'categorical' (choices as written in the space file)."""
    name: str
    kind: str
    low: float = None
    high: float = None
    log: bool = False
    step: float = None
    choices: tuple = ()

    def suggest(self, trial):
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def grid(self):
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int" and not self.log:
            return list(range(self.low, self.high + 1, self.step or 1))
        raise ConfigError(f"--sampler grid needs a list of values for {self.name} "
                          f"(e.g. {self.name} = [{self.low}, {self.high}]), not a range")


def read_space(path, known, check):
    """The dimensions of the TOML file `path`: `name = [choices]` or `name = {low, high,
    log, step}` (int when low and high are whole numbers). `known` is the set of searchable
    option names; `check(name, value)` raises ConfigError for a value the option refuses."""
    import tomllib
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None
    dims = []
    for key, spec in doc.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"{path}: {key!r} is not a searchable option (one of: "
                              f"{', '.join(sorted(known))})")
        dims.append(_dimension(path, name, spec, check))
    if not dims:
        raise ConfigError(f"{path} searches no option; e.g. lr = {{low = 1e-4, high = 0.1, log = true}}")
    return dims


def _dimension(path, name, spec, check):
    where = f"{path}: {name}"
    if isinstance(spec, list):
        if not spec:
            raise ConfigError(f"{where}: an empty list of choices")
        # Optuna stores choices as plain values: a list (layers = [[32], [64, 32]]) as '64,32'.
        choices = tuple(",".join(map(str, c)) if isinstance(c, list) else c for c in spec)
        for c in choices:
            check(name, c)
        return Dimension(name, "categorical", choices=choices)
    if not isinstance(spec, dict) or not {"low", "high"} <= set(spec):
        raise ConfigError(f"{where}: give a list of choices or {{low = …, high = …}}")
    extra = set(spec) - {"low", "high", "log", "step"}
    if extra:
        raise ConfigError(f"{where}: unknown key {sorted(extra)[0]!r} (low, high, log, step)")
    low, high, log, step = spec["low"], spec["high"], bool(spec.get("log", False)), spec.get("step")
    numbers = (low, high) + ((step,) if step is not None else ())
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
        raise ConfigError(f"{where}: low, high and step must be numbers")
    if not low < high:
        raise ConfigError(f"{where}: low must be less than high")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log scale needs low > 0")
    if log and step is not None:
        raise ConfigError(f"{where}: a log scale takes no step")
    kind = "int" if all(isinstance(v, int) for v in numbers) else "float"
    check(name, low)
    check(name, high)
    return Dimension(name, kind, low=low, high=high, log=log, step=step)


def counted_states(optuna):
    """The trial states a budget counts: all but waiting ones — running included, so that
    workers do not start trials beyond it while others are mid-trial."""
    S = optuna.trial.TrialState
    return (S.RUNNING, S.COMPLETE, S.PRUNED, S.FAIL)


def make_sampler(optuna, name, dims, seed):
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler({d.name: d.grid() for d in dims}, seed=seed)
    raise ConfigError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")


def make_pruner(optuna, name):
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=2)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto")
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner {name!r}; choose from {', '.join(PRUNERS)}")


def open_storage(optuna, url, folder):
    """The study's storage: the journal file in `folder` (None), a journal file (a path),
    or an Optuna RDB URL — with the heartbeat that fails the trials of dead workers."""
    if url is None or "://" not in url:
        from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
        path = url or os.path.join(folder, JOURNAL)
        # An absolute path: Optuna's lock is a symlink to it, which a relative path would
        # leave dangling (and its stale-lock check never firing). A worker killed while it
        # holds the lock makes the others wait LOCK_GRACE_SECONDS, not Optuna's 30.
        full = os.path.abspath(path)
        lock = JournalFileSymlinkLock(full, grace_period=LOCK_GRACE_SECONDS)
        return optuna.storages.JournalStorage(JournalFileBackend(full, lock_obj=lock)), path
    if url.startswith("postgresql://"):
        # SQLAlchemy's default PostgreSQL driver is psycopg2; the extra installs psycopg 3.
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            url = "postgresql+psycopg://" + url[len("postgresql://"):]
    import warnings
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                # The heartbeat is marked experimental; it is what fails dead workers' trials.
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_SECONDS,
                                                     grace_period=GRACE_SECONDS)
            return storage, url
        except ImportError as e:
            raise NncliError(f"--storage {url}: {e}") from None
        except Exception as e:   # SQLAlchemy's OperationalError, ArgumentError...
            # Workers started together race to create Optuna's tables in a new database:
            # the loser sees a duplicate key and finds the tables there on a second try.
            race = "duplicate" in str(e).lower() or "already exists" in str(e).lower()
            if race and attempt < 4:
                time.sleep(0.2 * (attempt + 1))
                continue
            raise NncliError(f"cannot open --storage {url}: {str(e).splitlines()[0]}") from None


class _TrialRun(TrainingRun):
    """A TrainingRun whose model records the sweep it came from."""

    def __init__(self, *args, sweep_info, **kwargs):
        super().__init__(*args, **kwargs)
        self.sweep_info = sweep_info

    def meta(self, final=False):
        return {**super().meta(final), "sweep": self.sweep_info}


def inapplicable(config):
    """The optimiser hyper-parameters and schedule options that the optimiser and schedule of
    `config` do not take (a space may search momentum for trials of which some use adam)."""
    from nncli.optim import HYPERPARAMETERS, OPTIMIZERS
    from nncli.schedules import CONFIG_KEYS, SCHEDULES
    takes = OPTIMIZERS[config.get("optimizer") or "adam"].hyperparameters
    options = SCHEDULES[config.get("schedule") or "constant"].options
    return ({k for k in HYPERPARAMETERS if k not in takes}
            | {key for option, key in CONFIG_KEYS.items() if option not in options})


def applicable(config):
    """`config` with the options its optimiser and schedule do not take unset."""
    return {**config, **{k: None for k in inapplicable(config)}}


def _started(pid):
    """When process `pid` started (Linux: /proc/PID/stat's starttime), or None if unknown:
    told apart from a later process that got the same number."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive_here(worker, started=None):
    """False when `worker` ('host:pid', started at `started`) names a process of this
    machine that is gone — or whose number another process has taken since."""
    host, _, pid = (worker or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    now = _started(pid)
    return started is None or now is None or now == started


class Sweep:
    """A sweep of `data` over the dimensions `dims`, the other options `fixed`.

    folder: where the best model, trials.csv/json and the default journal go. storage:
    None (the journal), a journal path or an Optuna URL. trials: the study's budget of
    trials (all workers together, trials of earlier runs included). jobs: worker threads
    here. convert(name, value): a space value → the config value. on_trial(row): called
    as each trial of this process ends. run_options: TrainingRun's keyword arguments
    (cache_dir, no_cache).
    """

    def __init__(self, data, fixed, dims, *, folder, convert, trials, storage=None,
                 study="nncli", jobs=1, sampler="tpe", pruner="median", sampler_seed=None,
                 val_data=None, on_trial=None, run_options=None):
        self.optuna = import_optuna()
        self.data, self.fixed, self.dims = data, dict(fixed), dims
        self.folder, self.convert, self.trials = folder, convert, trials
        self.study_name, self.jobs = study, max(1, jobs)
        self.sampler_name, self.pruner_name, self.sampler_seed = sampler, pruner, sampler_seed
        self.val_data, self.on_trial = val_data, on_trial
        self.run_options = dict(run_options or {})   # TrainingRun's own (cache_dir, no_cache)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.best_path = os.path.join(folder, BEST)
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self.errors = []
        os.makedirs(folder, exist_ok=True)
        self.storage, self.storage_name = open_storage(self.optuna, storage, folder)
        make_sampler(self.optuna, sampler, dims, sampler_seed)      # refuse a bad grid early
        self.study = self.optuna.create_study(
            study_name=study, storage=self.storage, direction="minimize", load_if_exists=True,
            sampler=make_sampler(self.optuna, sampler, dims, sampler_seed),
            pruner=make_pruner(self.optuna, pruner))
        self._check_same_space()
        self.stale = self.fail_stale_trials()

    def _check_same_space(self):
        """A continued study must search the same space: Optuna would mix trials otherwise."""
        space = {d.name: [d.kind, d.low, d.high, d.log, d.step, list(d.choices)] for d in self.dims}
        saved = self.study.user_attrs.get("space")
        if saved is None:
            self.study.set_user_attr("space", json_safe(space))
            self.study.set_user_attr("data", os.path.basename(self.data))
        elif saved != json.loads(json.dumps(json_safe(space))):
            raise ConfigError(f"study {self.study_name!r} in {self.storage_name} searched another "
                              "space; give another --study NAME or the same --space")

    # -- workers -------------------------------------------------------------------------
    def fail_stale_trials(self):
        """Mark failed the RUNNING trials of processes of this machine that are gone (a
        killed worker); other machines' trials are left to the RDB heartbeat. Returns them."""
        TrialState = self.optuna.trial.TrialState
        failed = []
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if not _alive_here(t.user_attrs.get("worker"), t.user_attrs.get("worker_started")):
                self.storage.set_trial_user_attr(t._trial_id, "fail_reason",
                                                 f"its worker {t.user_attrs['worker']} died")
                self.storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
                failed.append(t.number)
        return failed

    def started(self):
        """Trials that count against the budget (see counted_states)."""
        return len(self.study.get_trials(deepcopy=False, states=counted_states(self.optuna)))

    def run(self):
        """Run this process's workers until the budget is met (or the grid is done, or
        Ctrl-C: KeyboardInterrupt after the running trials were stopped and marked failed)."""
        self._running = self.jobs
        for i in range(self.jobs):
            threading.Thread(target=self._worker, args=(i,), daemon=True).start()
        try:
            self._wait_for_workers()
        except KeyboardInterrupt:
            # Every worker's next epoch callback raises; Optuna marks its trial failed.
            self.stop_event.set()
            self._wait_for_workers()
            raise
        if self.errors:
            raise self.errors[0]

    def _wait_for_workers(self):
        # Polled with sleep, not Thread.join: a join that Ctrl-C interrupts can leave the
        # thread looking finished while it still runs (CPython), and its trial unfinished.
        while self._running:
            time.sleep(0.05)

    def _worker(self, i):
        try:
            self._work(i)
        finally:
            with self._lock:
                self._running -= 1

    def _work(self, i):
        optuna = self.optuna
        study = optuna.load_study(
            study_name=self.study_name, storage=self.storage,
            sampler=make_sampler(optuna, self.sampler_name, self.dims,
                                 None if self.sampler_seed is None else self.sampler_seed + i),
            pruner=make_pruner(optuna, self.pruner_name))
        left = self.trials - self.started()
        if left <= 0:
            return

        # Optuna's shared budget, counting the trials running in every worker too: a worker
        # stops once the study holds `trials` trials, so the budget is overshot only when
        # workers finish at the same moment (by at most workers − 1).
        budget = optuna.study.MaxTrialsCallback(self.trials, states=counted_states(optuna))
        try:
            study.optimize(self._objective, n_trials=left,
                           callbacks=[lambda s, t: self._trial_ended(s, t), budget],
                           catch=(NncliError,), gc_after_trial=False)
        except KeyboardInterrupt:
            pass                       # the stop event; the main thread re-raises
        except BaseException as e:     # reported by the main thread
            self.errors.append(e)
            self.stop_event.set()

    def _objective(self, trial):
        trial.set_user_attr("worker", self.worker)
        trial.set_user_attr("worker_started", _started(os.getpid()))
        values = self._suggest(trial)
        config = applicable({**self.fixed, **{n: self.convert(n, v) for n, v in values.items()}})
        if config.get("ensemble") is None:
            # A trial is one network unless the sweep says otherwise: the study compares
            # validation losses, which the default ensemble of a small table would not
            # change, while it multiplies every trial's time.
            config["ensemble"] = 1
        if self.jobs > 1 and self.fixed.get("threads") is None and "threads" not in values:
            config["threads"] = max(1, (os.cpu_count() or 1) // self.jobs)
        path = os.path.join(self.folder, f".trial-{os.getpid()}-{trial.number}.npz")
        info = {"study": self.study_name, "storage": self.storage_name, "trial": trial.number,
                "params": json_safe(values)}
        run = _TrialRun(self.data, config, output=path, val_data=self.val_data, sweep_info=info,
                        **self.run_options)
        t0 = time.perf_counter()

        def report(record, trainer):
            if self.stop_event.is_set():
                raise KeyboardInterrupt("stopped")
            value = record.val_loss if not math.isnan(record.val_loss) else record.train_loss
            trial.report(value, record.epoch)
            if trial.should_prune():
                raise self.optuna.TrialPruned(f"pruned at epoch {record.epoch} (loss {value:.4g})")
            return False
        try:
            summary = run.execute([report])
        except NncliError as e:      # diverged, or options the data refuses: a failed trial
            trial.set_user_attr("fail_reason", str(e))
            raise
        except KeyboardInterrupt:    # Ctrl-C: Optuna marks the trial failed
            trial.set_user_attr("fail_reason", "interrupted")
            raise
        finally:
            trial.set_user_attr("seconds", round(time.perf_counter() - t0, 3))
        trial.set_user_attr("epochs", summary["epochs"])
        score = summary.get("val_loss")
        if score is None:
            score = summary["train_loss"]
        trial.set_user_attr("model", path)
        return score

    def _suggest(self, trial):
        """The trial's values: the optimiser and schedule first, then only the options they
        take (a conditional space: momentum is not searched in a trial that uses adam)."""
        first = [d for d in self.dims if d.name in ("optimizer", "schedule")]
        values = {d.name: d.suggest(trial) for d in first}
        dropped = inapplicable({**self.fixed, **{n: self.convert(n, v) for n, v in values.items()}})
        for d in self.dims:
            if d not in first and d.name not in dropped:
                values[d.name] = d.suggest(trial)
        return values

    def _trial_ended(self, study, trial):
        """Keep the trial's model if it is the study's best so far; report the trial."""
        path = trial.user_attrs.get("model")
        with self._lock:
            if path and os.path.exists(path):
                with _folder_lock(self.folder):
                    # Under a lock that workers sharing the folder take too, the study's best
                    # is looked up and kept in one step: the last to write is the best.
                    best = _best_trial(study)
                    if best is not None and best.number == trial.number:
                        os.replace(path, self.best_path)
                    else:
                        os.remove(path)
            if self.on_trial is not None:
                self.on_trial(trial_row(trial))
            # A worker of this machine that died since: its trial is failed now, not at the
            # next start (shown in this worker's table).
            for number in self.fail_stale_trials():
                if self.on_trial is not None:
                    self.on_trial(trial_row(study.get_trials(deepcopy=False)[number]))

    # -- results -------------------------------------------------------------------------
    def rows(self):
        return [trial_row(t) for t in self.study.get_trials(deepcopy=False)]

    def best(self):
        best = _best_trial(self.study)
        return None if best is None else trial_row(best)

    def write_tables(self):
        """trials.csv and trials.json in the sweep's folder (all trials of the study)."""
        rows = self.rows()
        names = [d.name for d in self.dims]
        with atomic_path(os.path.join(self.folder, "trials.json")) as tmp:
            with open(tmp, "w") as f:
                json.dump(rows, f, indent=1, allow_nan=False)
        with atomic_path(os.path.join(self.folder, "trials.csv")) as tmp:
            with open(tmp, "w", newline="") as f:
                f.write(csv_out.header(["trial", "state", "score", "epochs", "seconds", *names,
                                        "fail_reason"]))
                for r in rows:
                    fields = [r["trial"], r["state"], r["score"], r["epochs"], r["seconds"],
                              *[r["params"].get(n) for n in names], r["fail_reason"]]
                    f.write(csv_out.row(_field(v) for v in fields))
        return rows


@contextlib.contextmanager
def _folder_lock(folder):
    """An exclusive lock (flock) on FOLDER/.best.lock, for the processes sharing it."""
    import fcntl
    with open(os.path.join(folder, ".best.lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _field(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return csv_out.number(value)
    return csv_out.quote(str(value))


def _best_trial(study):
    try:
        return study.best_trial
    except ValueError:        # no trial completed yet
        return None


def trial_row(t):
    value = t.values[0] if t.values else None
    state = t.state.name.lower()
    return {"trial": t.number, "state": "failed" if state == "fail" else state,
            # A pruned or failed trial's epochs are those it reported.
            "score": json_safe(value),
            "epochs": t.user_attrs.get("epochs", len(t.intermediate_values) or None),
            "seconds": t.user_attrs.get("seconds"), "params": json_safe(dict(t.params)),
            "fail_reason": t.user_attrs.get("fail_reason")}
