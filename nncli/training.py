"""The epoch driver: shuffle, one kernel call per epoch, validate, schedule, stop.

Python runs once per epoch; everything per batch (gather, forward, loss, backward, update)
happens inside ``Engine.train_epoch`` without the GIL. A `Trainer` carries all the state of a
run — φ, the optimiser's moments, the shuffling generator, the schedule, the early-stopping
bookkeeping and the history — so a checkpoint can capture it and a resumed run continues bit
for bit as if never interrupted.
"""
import math
import time
from dataclasses import asdict, dataclass, field
from numbers import Real

import numpy as np

from nncli.errors import DivergenceError
from nncli.functions import LOSSES, lookup
from nncli.optim import OPTIMIZERS, as_optimizer
from nncli.params import check
from nncli.schedules import SCHEDULES

EXPLODE_FACTOR = 1e4   # a loss this many times its first value (and above 1e4) has exploded


@dataclass
class EpochRecord:
    epoch: int                 # 1-based
    train_loss: float          # mean loss over the epoch's batches, as trained
    val_loss: float            # NaN without validation data
    metrics: dict              # e.g. {"val_accuracy": 0.97}
    lr: float
    seconds: float             # wall time of this epoch


@dataclass
class History:
    records: list = field(default_factory=list)
    stopped_early: bool = False
    best_epoch: int = None     # epoch whose φ was kept (early stopping), else None
    samples: int = 0           # rows processed in training steps
    seconds: float = 0.0

    def column(self, name):
        return [getattr(r, name) if hasattr(r, name) else r.metrics.get(name) for r in self.records]

    @property
    def train_loss(self):
        return self.column("train_loss")

    @property
    def val_loss(self):
        return self.column("val_loss")

    @property
    def metric_names(self):
        return list(self.records[0].metrics) if self.records else []

    @property
    def samples_per_second(self):
        return self.samples / self.seconds if self.seconds > 0 else float("nan")


def accuracy(outputs, Y, loss):
    """Share of rows predicted right: the most probable class for one class per row (softmax,
    or bce on one-hot targets as the CLI trains it); every label > 0.5 right for multi-label bce."""
    if loss == "cross_entropy" or Y.shape[1] > 1 and np.all(Y.sum(1) == 1):
        return float(np.mean(outputs.argmax(1) == Y.argmax(1)))
    return float(np.mean(np.all((outputs > 0.5) == (Y > 0.5), axis=1)))


def _split_off_validation(X, Y, fraction, seed, loss):
    """(X, Y, (Xv, Yv)): the rows `nncli train --val-split` holds out for the same data and
    seed — stratified by class for a classification loss with one class per row."""
    from nncli.data import validation_split
    if not 0 < fraction < 1:
        raise ValueError("validation_fraction must lie in (0, 1)")
    if len(X) < 2:
        raise ValueError("validation_fraction needs at least two rows")
    labels = None
    if LOSSES[loss].output != "value":
        if Y.shape[1] == 1:
            labels = Y[:, 0] > 0.5
        elif np.all(Y.sum(1) == 1):    # one-hot (or a softmax target): its most likely class
            labels = Y.argmax(1)
    tr, val = validation_split(len(X), fraction, seed, labels)
    if len(val) == 0:
        raise ValueError(f"validation_fraction={fraction} holds out no row of {len(X)}; "
                         "use a larger fraction or pass validation=(Xv, Yv)")
    return X[tr], Y[tr], (X[val], Y[val])


def dropout_rates(network, dropout):
    """Each layer's dropout rate for the engine (Engine.set_dropout), or None: `dropout` is
    None, one rate for every hidden layer, or one per hidden layer, each in [0, 1); the
    output layer has none. A ValueError for a rate on the outputs a KAN layer reads:
    rescaling by 1/(1−p) keeps the expected input of a dense layer (linear in it), not of
    a spline, so predict would not see what training averaged over."""
    if dropout is None:
        return None
    hidden = len(network.layers) - 2
    rates = [dropout] if isinstance(dropout, Real) else list(dropout)
    if hidden == 0 and any(rates):
        raise ValueError("dropout applies to hidden layers, and this network has none")
    if len(rates) == 1:
        rates = rates * hidden
    if len(rates) != hidden:
        raise ValueError(f"dropout takes one rate or one per hidden layer ({hidden}), "
                         f"got {len(rates)}")
    for p in rates:
        check("dropout", p)
    for k, p in enumerate(rates):
        if p and network.kinds[k + 1] == "kan":
            raise ValueError(f"dropout on hidden layer {k + 1} feeds a KAN layer, whose splines "
                             "are not linear in their inputs (the 1/(1−p) scaling would not "
                             "make predict see what training averaged): use dropout before "
                             "dense layers only, e.g. --arch kan,dense")
    return [float(p) for p in rates] + [0.0] if any(rates) else None


def dropout_seed(seed):
    """The key of a run's dropout masks: child 3 of SeedSequence(seed) (1 shuffles, 2 splits)."""
    return int(np.random.SeedSequence(seed).spawn(4)[3].generate_state(1, np.uint64)[0])


class Trainer:
    """One training run of `network` on (X, Y). See `train` for the options."""

    def __init__(self, network, X, Y, *, optimizer="adam", lr=None, batch_size=32, epochs=100,
                 seed=0, validation=None, validation_fraction=0.0, early_stopping=None,
                 schedule="constant", schedule_options=None, n_threads=None, dropout=None):
        self.net = network
        X = network.as_input(X)
        Y = network.as_target(Y, len(X))
        if len(X) == 0:
            raise ValueError("no training rows")
        if epochs < 0:
            raise ValueError("epochs must not be negative")
        # Child 1 shuffles; child 2 is validation_split's (nncli.data), shared with the CLI.
        shuffle_seed = np.random.SeedSequence(seed).spawn(2)[1]
        if validation is None and validation_fraction:
            X, Y, validation = _split_off_validation(X, Y, validation_fraction, seed, network.loss)
        if validation is not None:
            Xv = network.as_input(validation[0])
            validation = (Xv, network.as_target(validation[1], len(Xv)))
        early_stopping = early_stopping or None   # 0: off, as None
        if early_stopping is not None and validation is None:
            # Stopping on the training loss would only stop a run that has stopped learning
            # the training set, which is not what early stopping is for.
            raise ValueError("early_stopping watches the validation loss: give validation=(Xv, Yv) "
                             "or validation_fraction")
        self.X, self.Y, self.validation = np.ascontiguousarray(X), np.ascontiguousarray(Y), validation
        self._configure(network, len(self.X), len(validation[0]) if validation else 0,
                        optimizer=optimizer, lr=lr, batch_size=batch_size, epochs=epochs,
                        shuffle_seed=shuffle_seed, early_stopping=early_stopping,
                        schedule=schedule, schedule_options=schedule_options,
                        n_threads=n_threads, dropout=dropout, seed=seed)

    def _configure(self, network, n_train, n_val, *, optimizer, lr, batch_size, epochs,
                   shuffle_seed, early_stopping, schedule, schedule_options, n_threads,
                   dropout=None, seed=None):
        """Everything but the data: shared with `nncli.streaming.StreamingTrainer`."""
        self.net = network
        self.n_train, self.n_val = n_train, n_val
        if batch_size in (None, "full", 0):
            batch_size = n_train
        if int(batch_size) < 1:
            raise ValueError("batch size must be at least 1")
        self.batch_size = min(int(batch_size), n_train)
        self.epochs = int(epochs)
        self.opt = as_optimizer(optimizer, lr=lr).bind(network.n_params, network.dtype)
        self.dropout = dropout_rates(network, dropout)
        if self.dropout and OPTIMIZERS[self.opt.name].solver == "lbfgs":
            # A new mask per iteration makes the loss random: the line search and the
            # curvature pairs (differences of gradients) would follow the masks.
            raise ValueError("dropout makes the loss random, which L-BFGS's line search and "
                             "curvature pairs cannot follow: leave out dropout or use another "
                             "optimizer")
        self.dropout_seed = dropout_seed(seed) if self.dropout else 0
        sched_cls = lookup(SCHEDULES, schedule, "schedule")
        self.schedule = sched_cls(self.opt.lr, self.epochs, **(schedule_options or {}))
        self.patience = early_stopping
        self.n_threads = n_threads
        self.rng = np.random.default_rng(shuffle_seed)
        self.epoch = 0                     # epochs completed
        self.best_loss = math.inf
        self.best_phi = None
        self.bad_epochs = 0
        self.best_epoch = None
        self.history = History()
        self.first_loss = None
        self.last_finite = None

    # -- checkpointing -------------------------------------------------------------------
    def state_dict(self):
        """Everything (besides the data) needed to continue this run exactly."""
        return {
            "epoch": self.epoch, "rng": self.rng.bit_generator.state,
            "optimizer": self.opt.state_dict(), "schedule": self.schedule.state_dict(),
            "best_loss": self.best_loss, "bad_epochs": self.bad_epochs, "best_epoch": self.best_epoch,
            "first_loss": self.first_loss, "last_finite": self.last_finite,
            "history": [asdict(r) for r in self.history.records],
            "samples": self.history.samples, "seconds": self.history.seconds,
            "dropout_seed": self.dropout_seed,
        }

    def arrays(self):
        """The state arrays of a checkpoint: φ, optimiser moments, best φ so far."""
        out = {"phi": self.net.phi, "opt_s1": self.opt.s1, "opt_s2": self.opt.s2}
        if self.best_phi is not None:
            out["best_phi"] = self.best_phi
        return out

    def load_state(self, state, arrays):
        self.epoch = int(state["epoch"])
        self.rng.bit_generator.state = state["rng"]
        self.opt.step_count = int(state["optimizer"]["step_count"])
        self.schedule.load_state_dict(state["schedule"])
        self.best_loss = float(state["best_loss"])
        self.bad_epochs = int(state["bad_epochs"])
        self.best_epoch = state["best_epoch"]
        self.first_loss = state["first_loss"]
        self.last_finite = state["last_finite"]
        self.history.records = [EpochRecord(**r) for r in state["history"]]
        self.history.samples = int(state["samples"])
        self.history.seconds = float(state["seconds"])
        # A run without a seed drew its key from the OS: the masks go on from the saved one.
        self.dropout_seed = int(state.get("dropout_seed", self.dropout_seed))
        self.net.phi[:] = arrays["phi"]
        self.opt.s1[:] = arrays["opt_s1"]
        self.opt.s2[:] = arrays["opt_s2"]
        self.best_phi = np.array(arrays["best_phi"]) if "best_phi" in arrays else None

    # -- the loop ------------------------------------------------------------------------
    def run(self, callbacks=()):
        """Train until `epochs` or early stopping; returns the History. A callback returning
        True stops training after that epoch."""
        self.begin()
        while self.epoch < self.epochs:
            self.epoch_start()
            loss = self.epoch_train()
            self.epoch_check(loss)
            if self.epoch_end(loss, *self.epoch_validate(), callbacks):
                break
        return self.finish()

    # The steps of one epoch, apart so that `nncli.ensemble_training` can run the members of
    # an ensemble side by side (the kernel steps on threads, the bookkeeping in order).
    def begin(self):
        """The engine and solver of a run (before its first epoch)."""
        net = self.net
        self.engine = self._engine()
        # φ as it was before the current epoch: what is left to save if the epoch diverges.
        # Allocated on the first call only (21 MB for the wide benchmark net; a caller that
        # runs one epoch per call must not pay for a fresh array each time).
        prev = getattr(self, "phi_before_epoch", None)
        if prev is None or prev.shape != net.phi.shape or prev.dtype != net.phi.dtype:
            self.phi_before_epoch = np.empty_like(net.phi)
        self.classifier = LOSSES[net.loss].output != "value"
        self.solver = None
        if OPTIMIZERS[self.opt.name].solver == "lbfgs":
            from nncli.lbfgs import LBFGS
            if getattr(self, "X", None) is None:
                raise ValueError("lbfgs needs every training row in memory; it cannot stream")
            if self.batch_size != len(self.X):
                raise ValueError("lbfgs takes full batches: use batch_size='full'")
            self.solver = LBFGS()

    def epoch_start(self):
        """Before an epoch: its learning rate and clock, φ kept for a divergence."""
        net = self.net
        if net.phi.shape != self.phi_before_epoch.shape:
            # A KAN grid refinement (nncli.kan.refine, from a callback) changed P: the
            # optimiser's moments belonged to the old parameters, so it restarts.
            self.restart_optimizer()
            self.engine = self._engine()
            if self.solver is not None:
                self.solver = type(self.solver)()   # its curvature pairs had the old length
            self.phi_before_epoch = np.empty_like(net.phi)
        self._t0 = time.perf_counter()
        np.copyto(self.phi_before_epoch, net.phi)
        self._lr = self.schedule.lr(self.epoch)

    def epoch_train(self):
        """One epoch of training steps; the mean loss."""
        if self.solver is not None:   # one full-batch iteration (nncli.lbfgs)
            loss = self.solver.iterate(self.engine, self.net, self.X, self.Y, self._lr,
                                       self.opt.weight_decay)
            self.opt.step_count += 1
            return loss
        return self._train_epoch(self.engine, self._lr)

    def epoch_check(self, loss):
        """Count the epoch; a DivergenceError if its loss is not finite or exploded."""
        self.epoch += 1
        self._check_divergence(loss)

    def epoch_validate(self):
        """(validation loss, metrics) after the epoch; (NaN, {}) without validation rows."""
        if self.validation is None:
            return math.nan, {}
        return self._validate(self.engine, self.classifier)

    def epoch_end(self, loss, val_loss, metrics, callbacks=()):
        """Record the epoch, step the schedule, call the callbacks; True to stop."""
        seconds = time.perf_counter() - self._t0
        record = EpochRecord(self.epoch, float(loss), float(val_loss), metrics, self._lr, seconds)
        self.history.records.append(record)
        self.history.samples += self.n_train
        self.history.seconds += seconds
        monitored = val_loss if self.validation is not None else loss
        self.schedule.observe(monitored)
        stop = self._early_stopping(monitored)
        for cb in callbacks:
            stop = bool(cb(record, self)) or stop
        return stop

    def finish(self):
        """After the last epoch: early stopping's best φ restored. Returns the History."""
        if self.patience is not None and self.best_phi is not None:
            self.net.phi[:] = self.best_phi
            self.history.best_epoch = self.best_epoch
        return self.history

    def _engine(self):
        """The network's engine for this run's batches, with this run's dropout (or none:
        the engine is the network's and may have trained another run before)."""
        engine = self.net.engine(self.batch_size, self.n_threads)
        engine.set_dropout(self.dropout, self.dropout_seed)
        return engine

    def restart_optimizer(self):
        """Zero moments and step count for the network's (new) φ; early stopping starts over,
        since a best φ of another length cannot be restored."""
        self.opt.s1 = self.opt.s2 = None
        self.opt.step_count = 0
        self.opt.bind(self.net.n_params, self.net.dtype)
        self.best_loss, self.best_phi, self.bad_epochs, self.best_epoch = math.inf, None, 0, None

    def _train_epoch(self, engine, lr):
        """One epoch over the training rows in a new shuffled order; the mean loss."""
        opt = self.opt
        # rng.permutation(n) is arange(n) shuffled: the same order, in arrays made once
        # (no allocation per epoch).
        if getattr(self, "_order", None) is None or len(self._order) != len(self.X):
            self._rows = np.arange(len(self.X), dtype=np.int64)
            self._order = np.empty_like(self._rows)
        idx = self._order
        np.copyto(idx, self._rows)
        self.rng.shuffle(idx)
        loss, opt.step_count = engine.train_epoch(
            self.X, self.Y, idx, self.batch_size, opt.s1, opt.s2, *opt.kernel_args(lr))
        return loss

    def _validate(self, engine, classifier):
        """(validation loss, metrics) of the current φ."""
        val_loss, out = engine.evaluate(*self.validation, outputs=classifier)
        metrics = {}
        if classifier:
            metrics["val_accuracy"] = accuracy(out, self.validation[1], self.net.loss)
        return val_loss, metrics

    def _check_divergence(self, loss):
        if self.first_loss is None and math.isfinite(loss):
            self.first_loss = float(loss)
        exploded = (math.isfinite(loss) and self.first_loss is not None
                    and loss > 1e4 and loss > EXPLODE_FACTOR * self.first_loss)
        if not math.isfinite(loss) or exploded:
            last = (f"last finite loss {self.last_finite:.6g}" if self.last_finite is not None
                    else "no finite loss before it")
            what = "became " + str(loss) if not exploded else f"exploded to {loss:.3g}"
            raise DivergenceError(
                f"training diverged at epoch {self.epoch}: the loss {what} ({last}). "
                "Try a lower learning rate (--lr), gradient clipping (--clip-norm), "
                "or standardised inputs.", epoch=self.epoch, last_finite_loss=self.last_finite)
        self.last_finite = float(loss)

    def _early_stopping(self, monitored):
        if self.patience is None:
            return False
        if monitored < self.best_loss:
            self.best_loss, self.bad_epochs = monitored, 0
            self.best_phi = self.net.phi.copy()
            self.best_epoch = self.epoch
            return False
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.history.stopped_early = True
            return True
        return False


def train(network, X, Y, *, optimizer="adam", lr=None, momentum=None, beta1=None, beta2=None,
          eps=None, weight_decay=None, clip_norm=None, batch_size=32, epochs=100, seed=0,
          validation=None, validation_fraction=0.0, early_stopping=None, schedule="constant",
          schedule_options=None, callbacks=(), n_threads=None, dropout=None):
    """Train `network` in place on inputs X (N×n_in) and targets Y; return the History.

    Y is N×n_out; for cross_entropy (or bce) it may be N integer class labels instead, which
    are one-hot encoded (0..n_out−1; 0/1 for one bce output), in `validation` too.
    optimizer: a name from OPTIMIZERS with its hyper-parameters by name — lr (α), momentum (μ,
    for momentum/nesterov), beta1 (β1, adam/adamw), beta2 (β2 for adam/adamw, ρ for
    rmsprop), eps (ε), weight_decay (λ, decoupled for adamw), clip_norm (global gradient
    norm); unset ones take the optimiser's defaults, and one the optimiser does not take is a
    ValueError — or an `Optimizer`, which carries its own.
    batch_size: 1 is SGD, None/'full' is full-batch gradient descent.
    validation: (Xv, Yv), or validation_fraction of the rows held out — the rows `nncli train
    --val-split` holds out for the same seed (stratified by class for a classification loss).
    early_stopping: patience in epochs on the validation loss, the best φ restored; it needs
    validation data (a ValueError without).
    schedule: constant, step, exponential, cosine or plateau, with schedule_options such as
    {"gamma": 0.5, "step_size": 10} (see nncli.schedules). callbacks: callables
    cb(record, trainer), called after each epoch; returning True stops training.
    dropout: inverted dropout on the hidden layers' outputs while training (not in
    validation or predict): one rate for all, or one per hidden layer, each in [0, 1).
    Same seed and thread count give the same φ, bit for bit.

        train(net, X, y, optimizer="adam", lr=1e-3, beta1=0.95, beta2=0.99, weight_decay=1e-4)
        train(net, X, y, optimizer="momentum", lr=0.05, momentum=0.8, schedule="step",
              schedule_options={"gamma": 0.5, "step_size": 20})
    """
    optimizer = as_optimizer(optimizer, lr=lr, momentum=momentum, beta1=beta1, beta2=beta2,
                             eps=eps, weight_decay=weight_decay, clip_norm=clip_norm)
    trainer = Trainer(network, X, Y, optimizer=optimizer, batch_size=batch_size,
                      epochs=epochs, seed=seed, validation=validation,
                      validation_fraction=validation_fraction, early_stopping=early_stopping,
                      schedule=schedule, schedule_options=schedule_options, n_threads=n_threads,
                      dropout=dropout)
    return trainer.run(callbacks)
