"""One training run, as `nncli train` does it, without the terminal.

`TrainingRun` owns the whole path: read the CSV, prepare the arrays, build the network, split
off the validation rows, train with callbacks, write checkpoints, resume one (refusing options
or data that differ from it), save the model with its meta (or, with ``save_diverged``, the
last finite parameters of a run that diverged). It never prints and never imports click:
progress reaches the caller through the epoch callbacks given to `train`, and every problem
a user can cause is an `nncli.errors` exception. The CLI (`commands/train.py`) parses options,
calls it and prints; a sweep or an out-of-core trainer can drive it the same way::

    run = TrainingRun("data/iris.csv", {"epochs": 50, "seed": 1}, output="iris.npz")
    run.prepare()            # everything that can fail before the first epoch
    summary = run.train()    # epochs, loss log, checkpoints, model file; a JSON-ready dict

``config`` is the resolved training configuration, stored in the model as it is (the keys of
`nncli.pipeline`'s docstring, plus the CSV options sep, no_header, columns).
"""
import os
import stat

import numpy as np

from nncli import data as D
from nncli import pipeline
from nncli.csvio import read_options
from nncli.errors import ConfigError, DivergenceError, ModelFileError
from nncli.interrupts import interrupted_during
from nncli.model_io import check_writable, json_safe, load_model, save_model
from nncli.progress import LossLogWriter


def _same_file(a, b):
    """True when paths a and b name one regular file (it need not exist yet). A device
    (-o /dev/null --loss-log /dev/null) is written through, not over: no clash."""
    try:
        return os.path.samefile(a, b) and stat.S_ISREG(os.stat(a).st_mode)
    except OSError:   # one of them does not exist (yet)
        return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def loss_log_beside(model_path):
    """The default loss log of a model: 'iris.npz' → 'iris.loss.csv'."""
    base = model_path[:-4] if model_path.lower().endswith(".npz") else model_path
    return base + ".loss.csv"


def diverged_note(meta):
    """'saved by --save-diverged at epoch N' for a model written after its training diverged,
    else None: info shows it, predict and evaluate warn with it."""
    if meta.get("diverged") is not True:
        return None
    epoch = meta.get("diverged_epoch")
    at = f" at epoch {epoch}" if isinstance(epoch, int) and not isinstance(epoch, bool) else ""
    return f"saved by --save-diverged{at}, when training diverged (the parameters before that epoch)"


class TrainingRun:
    """One training run of `data` (a CSV path, or '-' for stdin) with `config`.

    output: the model file. loss_log: the loss-log CSV (None: none written). checkpoint /
    checkpoint_every: a resumable checkpoint written every so many epochs (and at the last).
    resume: a checkpoint to continue; its configuration replaces `config`, and the options in
    `given` (the ones the user typed) must agree with it. val_data: a validation CSV instead of
    the config's val_split. save_diverged: write the last finite model when training diverges.
    comm: an MPI communicator for data-parallel training (nncli.distributed); rank 0 alone
    writes the model, the loss log and checkpoints.
    """

    def __init__(self, data, config, *, output, loss_log=None, checkpoint=None, checkpoint_every=10,
                 resume=None, val_data=None, save_diverged=False, given=(), cache_dir=None,
                 no_cache=False, read_progress=None, on_note=None, comm=None):
        self.data_path = data
        self.config = dict(config)
        self.output = output
        self.loss_log = loss_log
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.resume = resume
        self.val_data_path = val_data
        self.save_diverged = save_diverged
        self.given = set(given)
        self.comm = comm
        self.writes = comm is None or comm.Get_rank() == 0
        self.trainer = None
        self.grid_schedule = None      # KAN grid refinements (in-memory runs only)
        # Streaming (nncli.streaming): where the cache goes, whether to use one, and a
        # callable(rows, seconds, bytes read, bytes in all) told how the pass over the data
        # goes, and on_note(text) told what was decided (streaming or not, the cache) first.
        self.cache_dir, self.no_cache, self.read_progress = cache_dir, no_cache, read_progress
        self.on_note = on_note
        self.cache = None
        self.plan_note = None   # what was decided (in memory or streaming), for the first line

    # -- before the first epoch ----------------------------------------------------------
    def prepare(self):
        """Read, check, build and split: everything that can fail before training. Returns self."""
        self._check_paths()
        state = self._resume_state() if self.resume else None
        from nncli import streaming
        if self.comm is None:
            decision = streaming.decide(self.data_path, self.config, cache_dir=self.cache_dir,
                                        no_cache=self.no_cache)
        else:   # rank 0's decision (the memory it sees), which every rank follows
            from nncli.distributed import exchange
            decision = exchange(self.comm, streaming.decide(
                self.data_path, self.config, cache_dir=self.cache_dir, no_cache=self.no_cache)
                if self.comm.Get_rank() == 0 else None)[0]
        self.plan_note = decision.why
        if decision.stream:
            if self.on_note is not None:
                self.on_note(decision.why)
            return self._prepare_streaming(decision, state)
        read = read_options(self.config)
        stats = None
        if self.comm is None:
            self.table = D.read_csv(self.data_path, **read)
        else:
            self.table, stats = self._read_shard(read)
        if state is not None and state["data_sha256"] != self.table.sha256:
            raise ConfigError(f"{self.data_path} is not the data the checkpoint {self.resume} was "
                              "trained on (its sha256 differs)")
        has_val_data = bool(self.val_data_path or state and state["val_data"])
        self.data = pipeline.prepare_data(self.table, self.config, split=not has_val_data,
                                          stats=stats)
        self.net = pipeline.build_network(self.data, self.config, stats=stats)
        if state is not None and "kan" in state["network"].kinds:
            # The checkpoint's knots (and grid size, after refinements) are the run's own.
            self.net = state["network"]
        self.val_table = self._read_val_data(read, state)
        X, Y, self.validation = pipeline.split_validation(self.data, self.val_table)
        train_rows = self.data.train_rows if self.val_table is None else None
        Y, self.validation = pipeline.shape_targets(self.data, Y, self.validation, self.config,
                                                    train_rows, stats=stats)
        if self.comm is not None:
            from nncli.distributed import validation_part
            self.validation = validation_part(self.comm, self.validation, self.net.layers[0],
                                              self.net.layers[-1], whole=self.val_table is not None)
        if self.config.get("early_stopping") and self.validation is None \
                and "early_stopping" not in self.given:
            self.config["early_stopping"] = None   # the default's, with nothing to watch: off
        if self.config.get("early_stopping") and self.validation is None:
            raise ConfigError(
                "--early-stopping watches the validation loss, but "
                + (f"--val-split {self.config['val_split']} holds out no row of {len(X)}; use a "
                   "larger --val-split" if self.config.get("val_split") else
                   "there is no validation set (--val-split 0); use --val-split 0.2")
                + " or --val-data FILE, or leave out --early-stopping")
        if self.config.get("ensemble") is None:   # the default: by the table's size
            self.config["ensemble"] = pipeline.default_ensemble(
                len(self.data.X), dense="kan" not in self.net.kinds,
                alone=not (self.checkpoint or self.resume or self.comm is not None))
        if (self.config.get("ensemble") or 1) > 1 and (self.checkpoint or self.resume):
            raise ConfigError("--ensemble cannot be combined with --checkpoint or --resume "
                              "(a checkpoint holds one network)")
        if self.comm is not None and ((self.config.get("ensemble") or 1) > 1
                                      or self.config.get("optimizer") == "lbfgs"):
            # Each would train on one rank's rows alone, outside the data-parallel epoch.
            raise ConfigError("--distributed does not take --ensemble or --optimizer lbfgs")
        self.trainer = pipeline.make_trainer(self.net, X, Y, self.validation, self.config,
                                             comm=self.comm)
        self.grid_schedule = pipeline.grid_schedule(self.config)
        if self.comm is not None and (self.grid_schedule or self.config.get("kan_l1")
                                      or self.config.get("kan_entropy")):
            # Grid refits and the sparsity penalty are statistics of the rows a process
            # holds; across ranks they would differ, or not add up to the global batch's.
            raise ConfigError("--distributed does not refine or adapt KAN grids (--grid with "
                              "several sizes, --grid-adapt) or apply --kan-l1/--kan-entropy")
        if self.grid_schedule and self.grid_schedule.adapt and state is None:
            from nncli.kan import adapt
            adapt(self.net, self.trainer.X)
        self.trainers = self._member_trainers(
            lambda net, opts: pipeline.make_trainer(net, X, Y, self.validation, opts))
        return self._finish_prepare(state)

    def _member_trainers(self, make):
        """The trainers of every member of the ensemble (--ensemble N; [self.trainer] alone
        for one network): the same rows, split and options, seeds seed+1, … for the others'
        initialisation and shuffling. make(network, options) → its Trainer."""
        trainers = [self.trainer]
        for k in range(1, int(self.config.get("ensemble") or 1)):
            opts = {**self.config, "seed": self._member_seed(k)}
            trainer = make(pipeline.build_network(self.data, opts), opts)
            if self.grid_schedule and self.grid_schedule.adapt:
                from nncli.kan import adapt
                adapt(trainer.net, trainer.X)
            trainers.append(trainer)
        return trainers

    def _read_shard(self, read):
        """(this rank's table, the ShardStats that combine all ranks'): see nncli.shards."""
        if self.data_path == "-":
            raise ConfigError("--distributed reads a file that every rank opens, not standard input")
        from nncli.shards import ShardStats, read_shard
        table, table.sha256, self.shard_note = read_shard(self.comm, self.data_path, read)
        return table, ShardStats(self.comm)

    def _finish_prepare(self, state):
        """The last steps of either preparation: store what was resolved (not what was left
        to defaults), restore a checkpoint's training state, check the outputs can be written."""
        self.config.update(task=self.data.task, loss=self.net.loss, lr=self.trainer.opt.lr)
        if state is not None:
            try:
                self.trainer.load_state(state["checkpoint"], state["arrays"])
            except (KeyError, TypeError, ValueError) as e:
                raise ModelFileError(f"{self.resume}: the checkpoint's training state is "
                                     f"damaged ({type(e).__name__}: {e})") from None
        for path in (self.output, self.loss_log, self.checkpoint):
            if path and self.writes:
                check_writable(path)
        return self

    def _prepare_streaming(self, decision, state):
        """prepare() from the cache: built by one pass over the data, or reused."""
        from types import SimpleNamespace

        from nncli import streaming
        from nncli.cache import get_cache
        has_val_data = bool(self.val_data_path or state and state["val_data"])
        # with a validation file, the cache holds every row for training (no split)
        cache_config = dict(self.config, val_split=0.0) if has_val_data else self.config
        build = lambda: get_cache(self.data_path, cache_config, cache_dir=self.cache_dir,  # noqa: E731
                                  budget=decision.budget, progress=self.read_progress)
        if self.comm is None:
            self.cache, note = build()
        else:
            from nncli.shards import shared_cache
            self.cache, note = shared_cache(self.comm, build)
        meta = self.cache.meta
        self.table = SimpleNamespace(sha256=meta["source"]["sha256"])
        if state is not None and state["data_sha256"] != self.table.sha256:
            raise ConfigError(f"{self.data_path} is not the data the checkpoint {self.resume} was "
                              "trained on (its sha256 differs)")
        schema = D.Schema.from_dict(meta["schema"])
        self.data = D.TrainingData(None, None, schema, schema.task, schema.feature_names, None,
                                   None, val_rows=self.cache.val_rows, notes=meta.get("notes", []))
        self.net = pipeline.build_network(self.data, self.config)
        # a validation file is read in memory (it is the small one), encoded with the schema
        self.val_table = self._read_val_data(read_options(self.config), state)
        arrays = None
        if self.val_table is not None:
            arrays = (D.encode_features(self.val_table, schema), D.encode_targets(self.val_table, schema))
            self.validation = arrays
        else:
            n_val = len(self.cache.val_rows)
            self.validation = (self.cache.val_rows, None) if n_val else None
        if self.config.get("early_stopping") and self.validation is None \
                and "early_stopping" not in self.given:
            self.config["early_stopping"] = None   # the default's, with nothing to watch: off
        if self.config.get("early_stopping") and self.validation is None:
            raise ConfigError("--early-stopping watches the validation loss, but there is no "
                              "validation set; use --val-split 0.2 or leave out --early-stopping")
        # What a streamed run does not do (yet): the options that need every row in memory.
        for key, flag, off in (("class_weight", "--class-weight", None),
                               ("label_smoothing", "--label-smoothing", 0.0)):
            if self.config.get(key) not in (None, off, "none"):
                raise ConfigError(f"{flag} trains from rows in memory; this run streams from a "
                                  "cache: leave it out, or train in memory (--no-cache)")
        rows = streaming.block_rows(self.config, self.cache, decision.budget)
        self.trainer = pipeline.make_trainer(self.net, None, None, arrays, self.config,
                                             cache=self.cache, block_rows=rows, comm=self.comm)
        self.trainers = self._member_trainers(self._streaming_member(arrays, rows))
        # Resolved, so that a resumed run streams the same blocks whatever memory it finds.
        self.config.update(shuffle_block=rows, streamed=True)
        blocks = len(self.trainer.blocks)
        self.plan_note = (f"{decision.why}; cache {self.cache.path} {note}; "
                          f"{self.cache.n_rows} rows in {blocks} block{'s' * (blocks > 1)} "
                          f"of up to {min(rows, self.cache.n_rows)}")
        if self.on_note is not None:
            self.on_note(f"Cache {self.cache.path} {note}; {self.cache.n_rows} rows in {blocks} "
                         f"block{'s' * (blocks > 1)} of up to {min(rows, self.cache.n_rows)}"
                         + (f"; each of {self.comm.Get_size()} ranks reads its slice of every "
                            "block" if self.comm is not None else ""))
        return self._finish_prepare(state)

    def _streaming_member(self, validation, rows, every_row=False):
        """make(network, options) for _member_trainers in a streamed run: a StreamingTrainer
        reading its blocks through the first's (one read of each block serves all)."""
        def make(net, opts):
            trainer = pipeline.make_trainer(net, None, None, validation, opts, cache=self.cache,
                                            block_rows=rows, every_row=every_row, comm=self.comm)
            trainer.share_blocks(self.trainer)
            return trainer
        return make

    @property
    def split_left_no_rows(self):
        """True when val_split was asked for but held out no row (too few rows)."""
        return self.validation is None and bool(self.config.get("val_split")) and self.val_table is None

    def _check_paths(self):
        """Refuse, before anything is written, a file the run would write over another of its
        files: the model over its own training data, the loss log over the model..."""
        reads = [("the training data", None if self.data_path == "-" else self.data_path),
                 ("--val-data", self.val_data_path), ("--resume", self.resume)]
        writes = [("the model (-o)", self.output), ("--loss-log", self.loss_log),
                  ("--checkpoint", self.checkpoint)]
        reads = [(n, p) for n, p in reads if p]
        writes = [(n, p) for n, p in writes if p]
        for i, (name, path) in enumerate(writes):
            for other, other_path in reads + writes[:i]:
                if (other, name) == ("--resume", "--checkpoint"):
                    continue   # a resumed run goes on writing its checkpoint
                if _same_file(path, other_path):
                    raise ConfigError(f"{other} and {name} are the same file ({path}); "
                                      "training would overwrite it: give each its own path")

    def _resume_state(self):
        """The checkpoint's configuration (which becomes this run's) and training state."""
        model = load_model(self.resume)
        meta = model.meta
        if "checkpoint" not in meta or not {"opt_s1", "opt_s2"} <= set(model.arrays):
            raise ModelFileError(f"{self.resume} is a model, not a checkpoint (train with --checkpoint)")
        if not isinstance(meta.get("config"), dict):
            raise ModelFileError(f"{self.resume}: the checkpoint has no training configuration")
        val_data = meta["checkpoint"].get("val_data")
        if val_data is not None and not (isinstance(val_data, dict) and isinstance(val_data.get("path"), str)
                                         and isinstance(val_data.get("sha256"), str)):
            raise ModelFileError(f"{self.resume}: the checkpoint's val_data entry is damaged")
        typed, self.config = self.config, dict(meta["config"])
        # A resumed run is the checkpoint's run: an option that would change it is refused
        # rather than silently ignored.
        changed = sorted(n for n in self.given if json_safe(typed.get(n)) != self.config.get(n))
        if changed:
            raise ConfigError("--resume continues the checkpoint's run with its own options; "
                              "these differ from it: "
                              + ", ".join("--" + n.replace("_", "-") for n in changed))
        return {"checkpoint": meta["checkpoint"], "arrays": dict(model.arrays, phi=model.network.phi),
                "network": model.network,
                "data_sha256": meta.get("data_sha256"), "val_data": val_data}

    def _read_val_data(self, read, state):
        """The validation table; when resuming, the checkpoint's (which val_data may name again)."""
        if state is None:
            return D.read_csv(self.val_data_path, **read) if self.val_data_path else None
        saved = state["val_data"]
        if saved is None:
            if self.val_data_path:
                raise ConfigError(f"the run in {self.resume} had no --val-data; resume it without one")
            return None
        table = D.read_csv(self.val_data_path or saved["path"], **read)
        if table.sha256 != saved["sha256"]:
            raise ConfigError(f"{table.source} is not the validation data the checkpoint "
                              f"{self.resume} was trained with (its sha256 differs)")
        return table

    # -- training ------------------------------------------------------------------------
    def train(self, callbacks=()):
        """Train (after `prepare`), write the loss log, checkpoints and the model; return the
        summary. `callbacks` are the Trainer's epoch callbacks, called before the run's own.
        Ctrl-C raises KeyboardInterrupt whose message says what was kept."""
        if self.trainer is None:
            self.prepare()
        trainer, net = self.trainer, self.net
        callbacks = list(callbacks)
        if self.grid_schedule:
            callbacks.append(self.grid_schedule)
        log = None
        if self.loss_log and self.writes:
            metric_names = (["val_accuracy"] if self.validation is not None
                            and self.data.task == "classification" else [])
            log = LossLogWriter(self.loss_log, metric_names, trainer.history.records)
            callbacks.append(log)
        if self.checkpoint and self.writes:
            callbacks.append(self._save_checkpoint)
        members = None
        if len(self.trainers) > 1:
            from nncli.ensemble_training import Members
            members = Members(self.trainers, [callbacks] + [[self.grid_schedule] if self.grid_schedule
                                                            else []] * (len(self.trainers) - 1),
                              self.config.get("threads"), self.config.get("seed"))
        try:
            if members is None:
                trainer.run(callbacks)
            else:
                members.run()
        except KeyboardInterrupt:
            raise KeyboardInterrupt(self._interrupted()) from None
        except DivergenceError as e:
            if self.save_diverged and self.writes:
                # The parameters of the last epoch that ended finite: a NaN model is no model.
                if members is None:
                    net.phi[:] = trainer.phi_before_epoch
                else:
                    members.keep_last_finite()
                    net = self._ensemble([t.net for t in self.trainers])
                save_model(self.output, net, {**self.meta(), "diverged": True, "diverged_epoch": e.epoch})
            raise
        except Exception as e:
            if interrupted_during(e):   # Ctrl-C that surfaced as a library's own error
                raise KeyboardInterrupt(self._interrupted()) from None
            raise
        finally:
            if log is not None:
                log.close()
        meta = self.meta(final=True)
        # Per member: the epochs its validation picked (early stopping's best, else all run).
        picked = [t.history.best_epoch or t.epoch for t in self.trainers]
        refit = self._refit(self.trainers, picked)
        final = [t.net for t in self.trainers] if refit is None else refit[0]
        if refit is not None:
            meta["refit"] = refit[1]
        net = final[0]
        if members is not None:
            net = self._ensemble(final)
            meta["ensemble"] = {"members": len(final),
                                "seeds": [self._member_seed(k) for k in range(len(final))],
                                "epochs": picked,
                                **self._ensemble_metrics(self._ensemble([t.net for t in self.trainers]))}
        # The saved network's layout (a KAN refit may stop before a grid refinement the
        # validated network had).
        meta.update(layer_options=net.options, n_params=net.n_params)
        if self.writes:
            save_model(self.output, net, meta)
        h = trainer.history
        return {"model": self.output, "loss_log": self.loss_log, "task": self.data.task,
                "refit": meta.get("refit"), "ensemble": meta.get("ensemble"),
                "columns": D.column_notes(self.data.schema),
                "rows_without_target": self.data.rows_without_target,
                "layers": net.layers, "n_params": net.n_params, "epochs": trainer.epoch,
                "stopped_early": h.stopped_early, "best_epoch": h.best_epoch,
                "seconds": round(h.seconds, 6),
                # Both already JSON-safe in the meta (non-finite values are None there).
                "samples_per_second": meta["samples_per_second"],
                **{k: v for k, v in meta["metrics"].items() if k != "epoch"}}

    def _ensemble(self, networks):
        from nncli.ensemble import Ensemble
        return Ensemble.of(networks, getattr(self.trainer, "X", None))   # (KAN: in memory)

    def _member_seed(self, k):
        seed = self.config.get("seed")
        return None if seed is None else seed + k

    def _refit(self, trainers, picked):
        """With the refit option and rows held out by the split: for each member, a new
        network from the same seed, trained on every row (training and validation) for the
        epochs its validation picked (`picked`), the members together as in training.
        Returns ``([networks], record)`` (the record: the first member's) or None. The
        held-out rows, now learned from, can no longer score them: the metrics stay those of
        the run that chose the epochs."""
        config = self.config
        if not config.get("refit") or self.validation is None or self.val_table is not None:
            return None
        if "kan" in trainers[0].net.kinds and "refit" not in self.given:
            # KAN networks refit when asked (--refit) only: on the hello-world table the refit
            # network ended at RMSE 0.0105 where the validated one had 0.0059 (its loss, near
            # 1e-5, is so noisy at the end that the picked epoch is the validation's luck).
            return None
        if not all(picked):
            return None
        if self.cache is not None:   # every row of the cache, in the run's blocks
            make = self._streaming_member(None, config["shuffle_block"], every_row=True)
        else:
            Y, _ = pipeline.shape_targets(self.data, self.data.Y, None, config)

            def make(net, opts):
                return pipeline.make_trainer(net, self.data.X, Y, None, opts, comm=self.comm)
        refits = []
        for k, epochs in enumerate(picked):
            opts = {**config, "seed": self._member_seed(k), "epochs": epochs, "early_stopping": None}
            net = pipeline.build_network(self.data, opts)
            refit = make(net, opts)
            if self.grid_schedule and self.grid_schedule.adapt:
                from nncli.kan import adapt
                adapt(net, refit.X)
            refits.append(refit)
        schedule = [[self.grid_schedule] if self.grid_schedule else []] * len(refits)
        if len(refits) == 1:
            refits[0].run(schedule[0])
        else:
            from nncli.ensemble_training import Members
            Members(refits, schedule, config.get("threads"), config.get("seed")).run()
        first = refits[0]
        return [t.net for t in refits], {"epochs": int(picked[0]), "rows": int(first.n_train),
                                         "seconds": round(first.history.seconds, 6)}

    def execute(self, callbacks=()):
        """prepare() then train(callbacks): the whole run."""
        return self.prepare().train(callbacks)

    def meta(self, final=False):
        """The model's meta document as of now; `final` adds the validation metrics in the
        target's units (regression), which cost a pass over the validation rows."""
        meta = pipeline.model_meta(self.net, self.data, self.config, self.trainer, self.table.sha256)
        meta["validation"] = self._validation_source()
        if self.comm is not None:
            meta["distributed"] = {"ranks": self.comm.Get_size()}
        if final:
            meta["metrics"] = {**meta["metrics"], **self._metrics_in_target_units()}
        return meta

    def _validation_source(self):
        """Where the validation rows came from: what `evaluate --held-out` needs to find
        them again (the data's sha256 and the seed are in the meta already)."""
        if self.validation is None:
            return {"source": None, "rows": 0}
        rows = len(self.validation[0]) if self.comm is None else self.trainer.n_val
        if self.val_table is not None:
            return {"source": "file", "sha256": self.val_table.sha256, "rows": rows}
        return {"source": "split", "fraction": self.config["val_split"], "rows": rows}

    def _ensemble_metrics(self, validated):
        """The validation score of the averaged members as they were validated (before any
        refit): accuracy, or RMSE/MAE/R² in the target's units. {} without validation rows."""
        if self.validation is None or self.data.task == "reconstruct":
            return {}
        from nncli.predicting import metrics
        m = metrics(self._validation_sums(validated), self.data.schema)
        keys = ("accuracy",) if self.data.task == "classification" else ("rmse", "mae", "r2")
        return json_safe({f"val_{k}": m[k] for k in keys})

    def _validation_table(self):
        """The validation rows as a table: the --val-data file, or the rows the split held out."""
        if self.val_table is not None:
            if self.comm is None:
                return self.val_table
            # every rank read the file: each scores the rows its trainer validated on
            rank, size = self.comm.Get_rank(), self.comm.Get_size()
            return D.table_rows(self.val_table, np.arange(rank, self.val_table.n_rows, size))
        rows = self.data.val_rows if self.data.kept is None else self.data.kept[self.data.val_rows]
        return D.table_rows(self.table, rows)

    def _metrics_in_target_units(self):
        """Regression: RMSE, MAE and R² of the validation rows in the target's own units (the
        loss is computed on standardised targets), by the code `nncli evaluate` runs."""
        if self.data.task != "regression" or self.validation is None:
            return {}
        from nncli.predicting import metrics
        m = metrics(self._validation_sums(self.net), self.data.schema)
        return json_safe({"val_rmse": m["rmse"], "val_mae": m["mae"], "val_r2": m["r2"]})

    def _validation_sums(self, network):
        """The `predicting.Evaluation` of `network` (a Network or an Ensemble) over the
        validation rows: those of the cache in a streamed run, else the validation table's."""
        from nncli.predicting import Evaluation, evaluate_chunk
        if self.cache is not None and self.val_table is None:
            from nncli.streaming import validation_sums
            ev = validation_sums(self.trainer, self.cache, self.data.schema, network)
        else:
            ev = Evaluation(self.data.task)
            evaluate_chunk(ev, network, self.data.schema, self._validation_table(),
                           self.config.get("threads"))
        if self.comm is not None:   # every rank scored its own validation rows
            from nncli.distributed import combine_evaluation
            combine_evaluation(self.comm, ev)
        return ev

    def _save_checkpoint(self, record, trainer):
        if record.epoch % self.checkpoint_every == 0 or record.epoch == trainer.epochs:
            val_info = None if self.val_table is None else {
                "path": os.path.abspath(self.val_table.source), "sha256": self.val_table.sha256}
            # The validation file is not part of the stored config: resuming needs it too.
            meta = {**self.meta(), "checkpoint": {**trainer.state_dict(), "val_data": val_info}}
            save_model(self.checkpoint, self.net, meta, trainer.arrays())
        return False

    def _interrupted(self):
        """The message of a run stopped by Ctrl-C or SIGTERM: what was kept, how to go on."""
        t, ckpt = self.trainer, self.checkpoint
        saved = ckpt and os.path.exists(ckpt) and t.epoch >= self.checkpoint_every
        hint = f" (continue from the last checkpoint with --resume {ckpt})" if saved else ""
        return f"interrupted after {t.epoch} of {t.epochs} epochs; no model written{hint}"


def held_out_table(data, meta, model):
    """The rows of the CSV `data` (the training file of the model whose meta this is) that
    the run held out for validation, as a Table: what `evaluate --held-out` scores. The file
    is read as training read it; `model` names the model in errors."""
    val = meta.get("validation")
    config = meta.get("config")
    if not isinstance(val, dict) or not isinstance(config, dict):
        raise ConfigError(f"{model} does not record its validation rows (trained by an older "
                          "nncli or through the API); evaluate it without --held-out")
    if val.get("source") == "file":
        raise ConfigError(f"{model} was validated on a --val-data file, not on held-out rows: "
                          "evaluate it on that file without --held-out")
    if val.get("source") != "split":
        raise ConfigError(f"{model} held out no rows (trained with --val-split 0); "
                          "evaluate it without --held-out")
    if meta.get("refit") is not None:
        raise ConfigError(f"{model} was refit on every row, the held-out ones included, so they "
                          "cannot score it (its validation metrics are in nncli info); train "
                          "with --no-refit to evaluate the held-out rows")
    table = D.read_csv(data, **read_options(config))
    if table.sha256 != meta.get("data_sha256"):
        raise ConfigError(f"{table.source} is not the data {model} was trained on (its sha256 "
                          "differs), so its held-out rows are unknown")
    try:
        rows = D.held_out_rows(table, target=config.get("target"), features=config.get("features"),
                               drop=config.get("drop"), id_column=config.get("id"),
                               task=config.get("task"), impute=pipeline.impute_option(config),
                               validation_fraction=val["fraction"], seed=meta.get("seed"),
                               **pipeline.column_options(config))
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{model}: the validation record is damaged ({e})") from None
    if len(rows) != val.get("rows"):
        raise ModelFileError(f"{model}: the split gives {len(rows)} held-out rows, "
                             f"the model records {val.get('rows')}")
    return D.table_rows(table, rows)
