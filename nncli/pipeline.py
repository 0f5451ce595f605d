"""The steps of a training run (`nncli.run.TrainingRun`), each a function of the data and the
options: the arrays, the network, the optimiser, the trainer, the validation arrays, the meta.

Options are a plain dict (the resolved configuration, stored in the model as it is):
the CSV settings sep, no_header, columns, encoding; target, features, drop, id, task,
standardize, impute, dates, decimal, categorical, max_categories, class_weight,
label_smoothing, refit, ensemble, layers (hidden widths), activation, loss, optimizer, lr,
momentum, beta1, beta2, eps, weight_decay, clip_norm, batch_size, epochs, schedule, lr_gamma,
lr_step_size, lr_patience, min_lr, val_split, early_stopping, init, seed, dtype, threads;
for KAN networks arch ("mlp", "kan" or one kind per layer: a list of dense/kan), grid (intervals, a list: the first is the initial
grid, the others the refinements), spline_order, grid_every, grid_adapt, kan_l1, kan_entropy.
"""
from nncli import data as D
from nncli.errors import ConfigError
from nncli.functions import LOSSES
from nncli.model_io import build_meta, json_safe
from nncli.network import Network
from nncli.optim import OPTIMIZERS, Optimizer
from nncli.schedules import schedule_options
from nncli.training import Trainer

DEFAULT_LOSS = {"classification": "cross_entropy", "regression": "mse", "reconstruct": "mse"}


def prepare_data(table, opts, split=True):
    """TrainingData from a table and the column/task options; with `split`, the rows
    held out by val_split are chosen first and left out of the statistics."""
    return D.prepare_training(
        table, target=opts.get("target"), features=opts.get("features"), drop=opts.get("drop"),
        id_column=opts.get("id"), task=opts.get("task"),
        standardize=opts.get("standardize", True), impute=impute_option(opts),
        validation_fraction=(opts.get("val_split") or 0.0) if split else 0.0, seed=opts.get("seed"),
        **column_options(opts))


def impute_option(opts):
    """The config's impute as `data` takes it: 'none' (the CLI's word) and unset are None."""
    impute = opts.get("impute")
    return None if impute == "none" else impute


def column_options(opts):
    """The options that decide column kinds (dates, decimal, categorical, max_categories), as
    `data.choose_columns` takes them; a config from before them gets their old meaning."""
    return {"dates": opts.get("dates") or "expand", "decimal": opts.get("decimal"),
            "categorical": opts.get("categorical"),
            "max_categories": opts.get("max_categories") or D.DEFAULT_MAX_CATEGORIES}


#: --ensemble's default: this many networks for a table of at most ENSEMBLE_ROWS rows, else
#: one. Chosen on benchmarks/quality: on its small tables the spread over seeds of a single
#: network is what kept the defaults behind the reference on some; averaging 5 networks
#: brought them level or ahead on every table. Above ENSEMBLE_ROWS (none of the benchmark's
#: tables is as large) a single network: the members cost 5× the training time.
DEFAULT_ENSEMBLE, ENSEMBLE_ROWS = 5, 10_000


def default_ensemble(n_rows, *, dense=True, alone=True) -> int:
    """--ensemble when not given: `DEFAULT_ENSEMBLE` networks for a table of at most
    `ENSEMBLE_ROWS` rows of a dense network trained alone (no checkpoint, resume or MPI, which
    take one network), else 1."""
    return DEFAULT_ENSEMBLE if n_rows <= ENSEMBLE_ROWS and dense and alone else 1


def resolve_loss(opts, task):
    loss = opts.get("loss") or DEFAULT_LOSS[task]
    if LOSSES[loss].task != ("classification" if task == "classification" else "regression"):
        kind = "a classification" if task == "classification" else f"a {task}"
        raise ConfigError(f"the {loss} loss does not fit {kind} task; "
                          f"use --loss {DEFAULT_LOSS[task]} (the default) or set --task")
    return loss


def build_network(data, opts):
    """The Network for this data: inputs and outputs from the schema, hidden layers from opts."""
    loss = resolve_loss(opts, data.task)
    hidden = list(opts.get("layers") or [])
    acts = opts.get("activation") or ["relu"]
    if len(acts) == 1:
        acts = acts * len(hidden)
    if len(acts) != len(hidden):
        raise ConfigError(f"--activation gives {len(acts)} names for {len(hidden)} hidden layers; "
                          "give one name, or one per hidden layer")
    layers = [data.schema.n_features, *hidden, data.schema.n_outputs]
    kinds = layer_kinds(opts, len(layers) - 1)
    kan = "kan" in kinds
    if not kan:
        used = [name for name, on in (("--grid G,G…", len(opts.get("grid") or [5]) > 1),
                                      ("--grid-every", opts.get("grid_every")),
                                      ("--grid-adapt", opts.get("grid_adapt")),
                                      ("--kan-l1", opts.get("kan_l1")),
                                      ("--kan-entropy", opts.get("kan_entropy"))) if on]
        if used:
            raise ConfigError(f"{', '.join(used)} apply to KAN layers: add --arch kan")
    try:
        if not kan:
            return Network(layers, acts, loss, dtype=opts.get("dtype", "float32"),
                           init=opts.get("init", "auto"), seed=opts.get("seed"))
        # A KAN layer's edge functions are its non-linearity: no activation on its outputs.
        acts = [a if kind == "dense" else "identity" for a, kind in zip(acts, kinds)]
        net = Network(layers, acts, loss, dtype=opts.get("dtype", "float32"),
                      init=opts.get("init", "auto"), seed=opts.get("seed"), kinds=kinds,
                      options={"grid": (opts.get("grid") or [5])[0],
                               "order": opts.get("spline_order") or 3})
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if data.X is None:
        raise ConfigError("KAN layers train on data held in memory (their grids are set from "
                          "it), and this run would stream the data: use --memory with a larger "
                          "size, or --arch mlp")
    net.regularize(opts.get("kan_l1") or 0.0, opts.get("kan_entropy") or 0.0)
    # Grid ranges from the training rows (not the validation rows, like the statistics).
    return net.fit_grids(data.X if data.val_rows is None else data.X[data.train_rows])


def layer_kinds(opts, n_layers):
    """Each layer's kind from opts["arch"]: mlp (all dense), kan (all KAN), or one kind per
    layer, e.g. dense,kan (a list or a comma-separated string)."""
    arch = opts.get("arch") or ["mlp"]
    arch = arch.split(",") if isinstance(arch, str) else list(arch)
    if arch in (["mlp"], ["kan"]):
        return ["dense" if arch == ["mlp"] else "kan"] * n_layers
    if len(arch) != n_layers or not set(arch) <= {"dense", "kan"}:
        raise ConfigError(f"--arch takes mlp, kan, or one kind per layer (dense or kan) for the "
                          f"{n_layers} layers of this network, not {','.join(arch)}")
    return arch


def grid_schedule(opts):
    """The KAN grid refinements/updates of a run (nncli.kan.GridSchedule), or None."""
    grids = opts.get("grid") or [5]
    if "kan" not in layer_kinds(opts, len(opts.get("layers") or []) + 1):
        return None
    if len(grids) == 1 and not opts.get("grid_adapt"):
        return None
    from nncli.kan import GridSchedule
    return GridSchedule(grids, opts.get("epochs", 100), opts.get("grid_every"),
                        bool(opts.get("grid_adapt")))


def split_validation(data, val_table=None):
    """(train X, train Y, validation (X, Y) or None): the rows data.val_rows held out,
    or `val_table` encoded with the data's schema."""
    if val_table is not None:
        Xv = D.encode_features(val_table, data.schema)
        Yv = D.encode_targets(val_table, data.schema)
        return data.X, data.Y, (Xv, Yv)
    if data.val_rows is None or len(data.val_rows) == 0:
        return data.X, data.Y, None
    train = data.train_rows
    return data.X[train], data.Y[train], (data.X[data.val_rows], data.Y[data.val_rows])


def shape_targets(data, Y, validation, opts, train_rows=None):
    """Class weights and label smoothing (nncli.targets) applied to the training targets Y
    (the rows ``train_rows`` of data, None: all) and the validation pair's targets (weights
    only); unchanged without those options. A ConfigError for a loss other than
    cross-entropy, whose kernel alone reads them the way nncli.targets says."""
    from nncli import targets as T
    spec, eps = opts.get("class_weight"), opts.get("label_smoothing") or 0.0
    if spec in (None, "none") and not eps:
        return Y, validation
    if data.task != "classification" or resolve_loss(opts, data.task) != "cross_entropy":
        raise ConfigError("--class-weight and --label-smoothing apply to classification with "
                          "the cross_entropy loss")
    try:
        T.check("label_smoothing", eps)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    labels = data.labels if train_rows is None else data.labels[train_rows]
    weights = T.class_weights(spec, data.schema.classes, labels)
    Y = T.shape_targets(Y, weights, eps)
    if validation is not None and weights is not None:
        validation = (validation[0], T.shape_targets(validation[1], weights))
    return Y, validation


def make_optimizer(opts):
    name = opts.get("optimizer") or "adam"
    # A config has a key per hyper-parameter (None when unset). Only those the optimiser
    # takes are passed: configs saved by earlier versions may hold others, which were
    # ignored then (the CLI now refuses them when given).
    hyper = {k: opts[k] for k in OPTIMIZERS[name].hyperparameters if opts.get(k) is not None}
    try:
        return Optimizer(name, **hyper)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def make_trainer(net, X, Y, validation, opts, cache=None, block_rows=None, comm=None):
    """The Trainer of (X, Y), or with `cache` the StreamingTrainer of the cache's rows, or
    with an MPI communicator `comm` the data-parallel DistributedTrainer."""
    batch = opts.get("batch_size", 32)
    if OPTIMIZERS[opts.get("optimizer") or "adam"].full_batch:
        batch = "full"   # a sign-based rule on mini-batches follows noise, not the loss
    threads = opts.get("threads")
    if comm is not None and threads is None:
        from nncli import distributed
        threads = distributed.default_threads(comm)
    common = dict(optimizer=make_optimizer(opts),
                  batch_size=None if batch == "full" else int(batch),
                  epochs=opts.get("epochs", 100), seed=opts.get("seed"),
                  early_stopping=opts.get("early_stopping"),
                  schedule=opts.get("schedule") or "constant",
                  schedule_options=schedule_options(opts), n_threads=threads)
    try:
        if cache is not None:
            from nncli.streaming import StreamingTrainer
            return StreamingTrainer(net, cache, block_rows=block_rows, validation=validation,
                                    **common)
        if comm is not None:
            from nncli.distributed import DistributedTrainer
            return DistributedTrainer(net, X, Y, comm=comm, validation=validation, **common)
        return Trainer(net, X, Y, validation=validation, **common)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def final_metrics(trainer):
    """Last epoch's losses and metrics (the kept epoch's, with early stopping)."""
    h = trainer.history
    if not h.records:
        return {}
    r = h.records[(h.best_epoch or len(h.records)) - 1]
    out = {"epoch": r.epoch, "train_loss": r.train_loss, "val_loss": r.val_loss, **r.metrics}
    return json_safe(out)


def model_meta(net, data, opts, trainer, sha256):
    """The meta document of a trained model: everything `info` and `predict` need."""
    h = trainer.history
    return build_meta(
        net, task=data.task, schema=data.schema.to_dict(), feature_names=data.feature_names,
        config=json_safe(dict(opts)), seed=opts.get("seed"), data_sha256=sha256,
        train_rows=int(trainer.n_train), val_rows=int(trainer.n_val),
        epochs_run=len(h.records), stopped_early=h.stopped_early, best_epoch=h.best_epoch,
        train_seconds=h.seconds, samples_per_second=json_safe(h.samples_per_second),
        metrics=final_metrics(trainer))
