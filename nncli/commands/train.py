"""nncli train DATA: fit a network to a CSV file, write the model and the loss log."""
import json

import click

from nncli.commands.options import (BatchSize, CommaList, TrainingCommand, click_type, column_key,
                                   csv_input_options, positive_int)
from nncli.functions import ACTIVATIONS, INITS, LOSSES
from nncli.optim import OPTIMIZERS
from nncli.schedules import SCHEDULES

# Options that are not part of the training configuration stored in the model.
NOT_CONFIG = {"data", "config", "output", "loss_log", "quiet", "log_every", "json_out",
              "checkpoint", "checkpoint_every", "resume", "save_diverged", "val_data",
              "cache", "no_cache", "distributed"}


# Keys other libraries use for our options (scikit-learn, Keras, PyTorch), to suggest ours.
CONFIG_SYNONYMS = {
    "learning_rate": "lr", "learning_rate_init": "lr", "hidden_layer_sizes": "layers",
    "hidden_layers": "layers", "hidden": "layers", "activations": "activation",
    "optimiser": "optimizer", "n_epochs": "epochs", "num_epochs": "epochs", "max_iter": "epochs",
    "batch": "batch_size", "validation_split": "val_split", "validation_fraction": "val_split",
    "random_state": "seed", "epsilon": "eps", "alpha": "weight_decay", "n_jobs": "threads",
    "num_threads": "threads", "scheduler": "schedule", "lr_schedule": "schedule",
}


def load_config_file(ctx, param, path):
    """--config FILE.toml: its keys become defaults, so the command line wins.

    A file that cannot be read is an I/O error (exit 1, like any missing file); a file that is
    not TOML, or holds an unknown key or a value of the wrong type, is a usage error (exit 2;
    the values go through the options' own types)."""
    if path is None:
        return None
    import tomllib
    with open(path, "rb") as f:    # OSError: the CLI reports 'run.toml: No such file or directory'
        try:
            doc = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise click.BadParameter(f"{path} is not valid TOML: {e}", ctx, param) from None
    doc = doc.get("train", doc)   # either top-level keys or a [train] table
    known = {p.name: p for p in ctx.command.params if p.name not in ("config", "data")}
    defaults = {}
    for key, value in doc.items():
        name = key.replace("-", "_")
        name = {"json": "json_out", "standardise": "standardize"}.get(name, name)
        if name not in known:
            raise click.BadParameter(f"{path}: unknown option {key!r}{_did_you_mean(key, known)}",
                                     ctx, param)
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        defaults[name] = value
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return path


def _did_you_mean(key, known):
    """' (did you mean 'lr'?)' for a key close to an option's name (spelled as the key is)."""
    import difflib
    name = key.replace("-", "_").lower()
    match = CONFIG_SYNONYMS.get(name) or next(iter(difflib.get_close_matches(name, known, 1, 0.7)), None)
    if match is None:
        return ""
    if "-" in key:
        match = match.replace("_", "-")
    return f" (did you mean {match!r}?)"


@click.command("train", cls=TrainingCommand)
@click.argument("data", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--config", type=click.Path(dir_okay=False), is_eager=True, expose_value=True,
              callback=load_config_file, help="TOML file with any of these options (the command line wins).")
@csv_input_options
@click.option("--target", type=CommaList(column_key), default=None, metavar="COL[,COL...]",
              help="Target column(s) by name or index (negative from the end). Default: the last column.")
@click.option("--features", type=CommaList(column_key), default=None, metavar="COL,...",
              help="Input columns (default: all but the target, --id and --drop).")
@click.option("--drop", type=CommaList(column_key), default=None, metavar="COL,...", help="Columns to leave out.")
@click.option("--id", "id", default=None, metavar="COL", help="An identifier column: never an input.")
@click.option("--task", type=click.Choice(["classification", "regression", "reconstruct"]), default=None,
              help="Default: from the target (text or few integers → classification). "
                   "reconstruct: an autoencoder, the target is the input.")
@click.option("--standardize/--no-standardize", default=True, show_default=True,
              help="Scale numeric inputs (and regression targets) to mean 0, std 1.")
@click.option("--impute", type=click.Choice(["median", "mean", "drop", "none"]), default="median",
              show_default=True,
              help="Missing inputs: fill numbers and dates with the training median or mean and "
                   "text with its most frequent value (plus a 0/1 'missing' input for a column "
                   "missing in 5%+ of rows), drop their rows, or none: stop with an error naming "
                   "the cell. Rows without a target are left out (counted) unless none.")
@click.option("--dates", type=click.Choice(["expand", "monthfirst", "none"]), default="expand",
              show_default=True,
              help="Date/time columns: expand into year, cyclic month, day of year, weekday and "
                   "hour, and elapsed days (03/04/2024 is 3 April where both orders fit; "
                   "monthfirst: 4 March); none: treat them as text.")
@click.option("--decimal", type=click.Choice([".", ","]), default=None,
              help="Decimal mark of numbers written as text (default: ',' when --sep is ';').")
@click.option("--categorical", type=CommaList(column_key), default=None, metavar="COL,...",
              help="Inputs to one-hot encode even though they hold numbers (codes).")
@click.option("--max-categories", type=click.IntRange(min=2), default=100, show_default=True,
              help="One-hot at most this many values of a text column: the most frequent, the "
                   "rest as one 'other' input.")
@click.option("--layers", type=CommaList(positive_int, metavar="N,N,..."), default="64,32", show_default=True,
              help="Hidden layer widths ('' for none).")
@click.option("--activation", type=CommaList(choices=list(ACTIVATIONS), metavar="NAME[,NAME...]"),
              default="relu", show_default=True,
              help=f"Hidden activation, or one per hidden layer: {', '.join(ACTIVATIONS)}.")
@click.option("--loss", type=click.Choice(list(LOSSES)), default=None,
              help="Default: cross_entropy for classification, mse otherwise.")
@click.option("--arch", type=CommaList(choices=["mlp", "kan", "dense"], metavar="mlp|kan|KIND,..."),
              default="mlp", show_default=True,
              help="mlp: dense layers with --activation; kan: Kolmogorov–Arnold layers, a "
                   "learned spline on every edge (--grid, --spline-order; no activation); or "
                   "one kind per layer, e.g. dense,kan for --layers 8.")
@click.option("--grid", type=CommaList(positive_int, metavar="G[,G...]"), default="5",
              show_default=True,
              help="KAN grid intervals; more values refine the grid during training "
                   "(5,10,20: at evenly spaced epochs, or every --grid-every epochs).")
@click.option("--spline-order", type=click.IntRange(1, 7), default=3, show_default=True,
              help="KAN B-spline order k (3: cubic).")
@click.option("--grid-every", type=click.IntRange(min=1), default=None, metavar="EPOCHS",
              help="KAN: epochs between grid refinements (with several --grid values).")
@click.option("--kan-l1", type=click.FloatRange(min=0), default=0.0, show_default=True,
              metavar="λ", help="KAN: weight of the edges' L1 norms (mean |φ| over the batch) "
                                "in the loss, for sparse networks (paper eq. 2.20: λ·μ1).")
@click.option("--kan-entropy", type=click.FloatRange(min=0), default=0.0, show_default=True,
              metavar="λ", help="KAN: weight of the entropy of the edges' L1 norms in the loss "
                                "(paper eq. 2.20: λ·μ2).")
@click.option("--grid-adapt", is_flag=True,
              help="KAN: move the grid points to the quantiles of each layer's inputs (before "
                   "training and at each refinement, or every --grid-every epochs).")
@click.option("--optimizer", type=click.Choice(list(OPTIMIZERS)), default="adam", show_default=True)
@click.option("--lr", type=click_type("lr"), default=None,
              help="Learning rate (default: the optimiser's, 0.001 for adam).")
@click.option("--momentum", type=click_type("momentum"), default=None,
              help="Momentum μ (momentum, nesterov; default 0.9).")
@click.option("--beta1", type=click_type("beta1"), default=None, help="β1 (adam, adamw; default 0.9).")
@click.option("--beta2", type=click_type("beta2"), default=None,
              help="β2 (adam, adamw; default 0.999), ρ (rmsprop; default 0.99).")
@click.option("--eps", type=click_type("eps"), default=None,
              help="ε (adam, adamw, rmsprop: default 1e-8; adagrad: 1e-10).")
@click.option("--weight-decay", type=click_type("weight_decay"), default=0.0, show_default=True,
              help="L2 penalty (decoupled for adamw).")
@click.option("--clip-norm", type=click_type("clip_norm"), default=0.0, show_default=True,
              help="Clip the gradient to this global norm (0: off).")
@click.option("--batch-size", type=BatchSize(), default=32, show_default=True,
              help="Rows per update: 1 is SGD, 'full' is full-batch gradient descent.")
@click.option("--epochs", type=click.IntRange(min=1), default=300, show_default=True,
              help="Epochs at most (early stopping usually ends the run sooner).")
@click.option("--schedule", type=click.Choice(list(SCHEDULES)), default="constant", show_default=True,
              help="Learning-rate schedule: step (× gamma every step size epochs), exponential "
                   "(× gamma every epoch), cosine (down to the minimum rate), plateau (× gamma "
                   "after more than patience epochs without a better loss, not below the "
                   "minimum rate).")
@click.option("--lr-gamma", type=click_type("gamma"), default=None, metavar="FACTOR",
              help="Factor of each cut (step: default 0.1, plateau: 0.5; exponential: default "
                   "down to 1% of --lr at the last epoch).")
@click.option("--lr-step-size", type=click_type("step_size"), default=None, metavar="EPOCHS",
              help="Epochs between cuts (step; default a third of --epochs).")
@click.option("--lr-patience", type=click_type("patience"), default=None, metavar="EPOCHS",
              help="Epochs without improvement tolerated before a cut (plateau; default 10).")
@click.option("--min-lr", type=click_type("min_lr"), default=None, metavar="LR",
              help="Lowest learning rate (cosine, plateau; default 0).")
@click.option("--val-split", type=click.FloatRange(0, 1, max_open=True), default=0.2, show_default=True,
              help="Share of rows held out for validation (stratified for classification).")
@click.option("--val-data", type=click.Path(dir_okay=False), default=None,
              help="Validation CSV (instead of --val-split).")
@click.option("--early-stopping", type=click_type("early_stopping"), default=20, show_default=True,
              metavar="PATIENCE",
              help="Stop after this many epochs without a better validation loss and keep the "
                   "best epoch (0: off; off by itself when there is no validation set).")
@click.option("--class-weight", default=None, metavar="balanced|CLASS=W,...",
              help="Weigh each class's rows in the loss: balanced (n / (classes × n_class)) or "
                   "given weights (others 1). Classification with cross_entropy.")
@click.option("--label-smoothing", type=click_type("label_smoothing"), default=0.0,
              show_default=True, metavar="EPS",
              help="Train on targets (1 − EPS)·one-hot + EPS/classes (classification).")
@click.option("--refit/--no-refit", default=True, show_default=True,
              help="After training with a validation split, train a new network on every row "
                   "for the epochs the validation picked (the best epoch with --early-stopping) "
                   "and save that one.")
@click.option("--ensemble", type=click_type("ensemble"), default=None, metavar="N",
              help="Train N networks (seeds SEED, SEED+1, …; one after another) and save them "
                   "in one model file: predictions are their average. Default: 5 for a table "
                   "of at most 10,000 rows trained in memory, else 1.")
@click.option("--init", type=click.Choice(INITS), default="auto", show_default=True,
              help="Weight initialisation (auto: He for relu-like layers, Glorot otherwise).")
@click.option("--seed", type=click_type("seed"), default=0, show_default=True, help="Seeds init, split and shuffling.")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True)
@click.option("--threads", type=click_type("threads"), default=None, help="Threads (default: all cores).")
@click.option("--memory", default=None, metavar="SIZE",
              help="Memory budget, e.g. 512M or 2G: data that would not fit is streamed from a "
                   "binary cache in blocks (default: stream when the data would not fit "
                   "comfortably in the memory available).")
@click.option("--shuffle-block", type=click.IntRange(min=1), default=None, metavar="ROWS",
              help="Stream in blocks of ROWS (shuffled within, blocks in shuffled order); "
                   "default when streaming: what a quarter of the budget holds.")
@click.option("--cache", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Stream from a cache in DIR (default when streaming: .nncli-cache beside the "
                   "data); reused while the data and options are the same.")
@click.option("--no-cache", is_flag=True, help="Always read the data in memory; no cache.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Model file (default: the data file's name with .npz, in this folder).")
@click.option("--loss-log", type=click.Path(dir_okay=False), default=None,
              help="Loss log CSV (default: beside the model, NAME.loss.csv).")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Save a resumable checkpoint here during training.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=10, show_default=True,
              help="Epochs between checkpoints.")
@click.option("--resume", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Continue the run saved in this checkpoint (its options are used).")
@click.option("--save-diverged", is_flag=True, help="Write the model even if training diverges.")
@click.option("--distributed", is_flag=True,
              help="Data-parallel training over the ranks of `mpiexec -n R` (needs nncli[mpi]): "
                   "each rank trains on 1/R of the rows of every batch; rank 0 writes.")
@click.option("-q", "--quiet", is_flag=True, help="No progress, no summary on stderr.")
@click.option("--log-every", type=click.IntRange(min=1), default=1, show_default=True,
              help="Epochs between progress lines when stderr is not a terminal.")
@click.option("--json", "json_out", is_flag=True, help="Print the final summary as JSON on stdout.")
def command(**opts):
    """Train a network on DATA (a CSV file, .csv.gz/.bz2/.xz/.zst, .parquet, or - for stdin).

    \b
    Examples:
      nncli train data/iris.csv
      nncli train data/curve.csv --layers 32,32 --activation tanh --epochs 300
      nncli train data/large.csv --target label --batch-size 128 --threads 2 -o large.npz
      cat data/xor.csv | nncli train - --layers 4 --activation tanh --lr 0.05 --batch-size full
      nncli train data/three.csv --config run.toml --epochs 50
      nncli train events.csv.gz --target label --memory 2G     # streams if it would not fit
      mpiexec -n 2 nncli train data/large.csv --distributed --threads 1
    """
    from nncli.commands.options import default_output, echo_err, read_kwargs
    from nncli.progress import Progress
    from nncli.run import TrainingRun, loss_log_beside
    ctx = click.get_current_context()
    given = {name for name in opts if name not in NOT_CONFIG
             and ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
    read_kwargs(opts)   # --sep and --columns, checked with Click's messages
    output = opts["output"] or default_output(opts["data"], ".npz")
    comm = _communicator(opts)
    run = TrainingRun(opts["data"], {k: v for k, v in opts.items() if k not in NOT_CONFIG},
                      output=output, loss_log=opts["loss_log"] or loss_log_beside(output),
                      checkpoint=opts["checkpoint"], checkpoint_every=opts["checkpoint_every"],
                      resume=opts["resume"], val_data=opts["val_data"],
                      save_diverged=opts["save_diverged"], given=given,
                      cache_dir=opts["cache"], no_cache=opts["no_cache"],
                      read_progress=None if opts["quiet"] else _ReadProgress(),
                      on_note=None if opts["quiet"] else
                      lambda note: echo_err(note[:1].upper() + note[1:] + "."), comm=comm)
    if comm is None:
        run.prepare()
    else:
        from nncli.distributed import agree
        agree(comm, run.prepare)
    if comm is not None and comm.Get_rank() != 0:
        opts["quiet"], opts["json_out"] = True, False   # rank 0 reports
    progress = None
    if not opts["quiet"]:
        progress = Progress(run.trainer.epochs, every=opts["log_every"])
        columns = _columns_line(run)
        if columns:
            echo_err(columns)
        echo_err(_start_line(run))
    try:
        summary = _train(run, [progress] if progress else [], comm)
    finally:
        trainer = run.trainer
        if progress is not None and trainer.history.records and trainer.epoch < trainer.epochs:
            progress.close()
    if not opts["quiet"]:
        echo_err(_summary_line(summary))
    if opts["json_out"]:
        click.echo(json.dumps(summary, allow_nan=False))


def _communicator(opts):
    """MPI's world communicator for --distributed, else None. On ranks other than 0,
    stderr is muted: errors every rank sees are reported by rank 0 (a rank failing alone
    writes to the real stderr before it aborts the others)."""
    if not opts["distributed"]:
        return None
    import os
    import sys
    from nncli.distributed import import_mpi
    comm = import_mpi().COMM_WORLD
    if comm.Get_rank() != 0:
        sys.stderr = open(os.devnull, "w")
    return comm


def _train(run, callbacks, comm):
    """run.train; in data-parallel training, a failure of this rank alone aborts all ranks
    (the others would wait for it in the next Allreduce). Divergence is seen by every rank
    at once (the loss is summed over ranks) and reported like any error."""
    if comm is None:
        return run.train(callbacks)
    from nncli.distributed import abort_on_failure
    from nncli.errors import DivergenceError
    try:
        return run.train(callbacks)
    except DivergenceError:
        raise
    except KeyboardInterrupt as e:
        abort_on_failure(comm, str(e) or "interrupted", 130)
    except Exception as e:  # noqa: BLE001 - anything else leaves the other ranks waiting
        abort_on_failure(comm, f"{type(e).__name__}: {e}", 1)


def _columns_line(run):
    """'Columns: …' — what nncli decided about the columns, when it decided anything."""
    from nncli.data import column_notes
    notes = column_notes(run.data.schema) + run.data.notes
    if run.data.rows_without_target:
        notes.append(f"{run.data.rows_without_target} rows without a target left out")
    dropped = run.data.rows_dropped - run.data.rows_without_target
    if dropped > 0:
        notes.append(f"{dropped} rows with a missing input dropped (--impute drop)")
    return "Columns: " + "; ".join(notes) + "." if notes else None


def _start_line(run):
    from nncli.pipeline import ENSEMBLE_ROWS
    net, n_val = run.net, len(run.validation[0]) if run.validation else 0
    members, arch = int(run.config.get("ensemble") or 1), '→'.join(map(str, net.layers))
    head = (f"Training {arch} network ({net.n_params} parameters)" if members == 1 else
            f"Training {members} networks {arch} ({net.n_params} parameters each" + (
                "" if "ensemble" in run.given else
                f"; the default up to {ENSEMBLE_ROWS:,} rows, --ensemble 1 for one") + ")")
    return (f"{head} on {run.trainer.n_train} rows"
            + (f" over {run.comm.Get_size()} ranks" if run.comm is not None else "")
            + (f", validating on {n_val}" if n_val
               else ", no validation (too few rows for --val-split)" if run.split_left_no_rows else "")
            + f" ({run.data.task}, {net.loss}, {run.config.get('optimizer')}).")


def _summary_line(s):
    parts = [f"train loss {s['train_loss']:.4g}"]
    if s.get("val_loss") is not None:
        parts.append(f"val loss {s['val_loss']:.4g}")
    if s.get("val_accuracy") is not None:
        parts.append(f"val accuracy {s['val_accuracy']:.4f}")
    if s.get("val_rmse") is not None:   # regression, in the target's units
        r2 = "—" if s["val_r2"] is None else f"{s['val_r2']:.4f}"
        parts.append(f"val RMSE {s['val_rmse']:.4g}, MAE {s['val_mae']:.4g}, R² {r2}")
    rate = f", {s['samples_per_second']:,.0f} samples/s" if s["samples_per_second"] else ""
    stop = f", stopped early, kept epoch {s['best_epoch']}" if s["stopped_early"] else ""
    if s.get("refit"):
        stop += f"; refit on all {s['refit']['rows']} rows for {s['refit']['epochs']} epochs"
    e = s.get("ensemble")
    if e:
        score = (f"val accuracy {e['val_accuracy']:.4f}" if e.get("val_accuracy") is not None
                 else f"val RMSE {e['val_rmse']:.4g}, R² {e['val_r2']:.4f}"
                 if e.get("val_r2") is not None else "")
        stop += f"; an ensemble of {e['members']} networks" + (f" (together: {score})" if score else "")
        parts[0] = "first network: " + parts[0]
    return (f"Done: {s['epochs']} epochs in {s['seconds']:.2f} s{rate}{stop}; {', '.join(parts)}.\n"
            f"Model: {s['model']}   loss log: {s['loss_log']}")


class _ReadProgress:
    """Lines (or a live line on a terminal) while the cache is built: rows read, rows/s,
    bytes read of the total and the time left."""

    def __init__(self, every=2.0):
        import sys
        self.every, self.next, self.tty = every, every, sys.stderr.isatty()

    def __call__(self, rows, seconds, done=None, total=None):
        from nncli.commands.options import echo_err
        if seconds < self.next:
            return
        self.next = seconds + self.every
        line = f"Reading: {rows:,} rows, {rows / max(seconds, 1e-9):,.0f} rows/s"
        if done and total:
            from nncli.streaming import human
            eta = seconds * (total - done) / done
            line += f", {human(done)} of {human(total)} ({100 * done / total:.0f}%), ETA {eta:.0f} s"
        echo_err(line)
