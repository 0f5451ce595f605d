"""nncli sweep DATA --space FILE: search train options with Optuna; keep the best model."""
import json
import sys

import click

from nncli.commands import train as train_command
from nncli.sweep import HEARTBEAT_TIMEOUT, PRUNERS, SAMPLERS

# Train options a sweep does not take: it writes its own files, and prints its own table.
NOT_SWEPT = {"data", "output", "loss_log", "checkpoint", "checkpoint_every", "resume",
             "save_diverged", "quiet", "log_every", "json_out", "distributed"}
TRAIN_OPTIONS = [p for p in train_command.command.params if p.name not in NOT_SWEPT]
# Options that are part of a trial's configuration, so a space may search any of them.
SEARCHABLE = {p.name for p in TRAIN_OPTIONS} - train_command.NOT_CONFIG - {"config"}


def _with_train_options(f):
    f.__click_params__ = getattr(f, "__click_params__", []) + list(reversed(TRAIN_OPTIONS))
    return f


def convert(name, value):
    """A value of the space file → the option's value, checked by the option's own type."""
    from nncli.errors import ConfigError
    param = next(p for p in TRAIN_OPTIONS if p.name == name)
    try:
        return param.type.convert(value, param, None)
    except click.BadParameter as e:
        raise ConfigError(f"{_dashed(name)}={value!r}: {e.format_message()}") from None


def _dashed(name):
    return "--" + name.replace("_", "-")


@click.command("sweep")
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--space", type=click.Path(exists=True, dir_okay=False), required=True,
              help="TOML file: option = [choices] or option = {low, high, log, step}.")
@click.option("--trials", type=click.IntRange(min=1), default=20, show_default=True,
              help="The study's budget of trials, all workers and earlier runs together.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Trials run at once by this process (threads; kernels release the GIL).")
@click.option("--sampler", type=click.Choice(SAMPLERS), default="tpe", show_default=True)
@click.option("--pruner", type=click.Choice(PRUNERS), default="median", show_default=True,
              help="Stop poor trials early from their per-epoch validation loss.")
@click.option("--sampler-seed", type=int, default=None, help="Seed of the sampler (default: random).")
@click.option("--storage", default=None, metavar="URL|FILE",
              help="Optuna storage shared by workers, e.g. postgresql://user@host/db "
                   "(default: the journal file sweep.journal in the output folder).")
@click.option("--study", default="nncli", show_default=True, help="Study name in the storage.")
@click.option("--heartbeat-timeout", type=click.IntRange(min=2), default=HEARTBEAT_TIMEOUT,
              show_default=True, metavar="SECONDS",
              help="With a database --storage: a trial whose worker sent no heartbeat for this "
                   "long (a killed worker, a lost machine) is marked failed.")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False), default=None,
              help="Folder of best.npz, trials.csv/json and the journal (default: NAME-sweep "
                   "for data NAME.csv, in this folder).")
@click.option("-q", "--quiet", is_flag=True, help="No table on stderr.")
@click.option("--json", "json_out", is_flag=True, help="All trials and the best as JSON on stdout.")
@_with_train_options
def command(data, space, trials, jobs, sampler, pruner, sampler_seed, storage, study,
            heartbeat_timeout, output_dir, quiet, json_out, **opts):
    """Search train options on DATA with Optuna; write the best model.

    Every option of `nncli train` is accepted (fixed for all trials) or searched in the
    --space file. Run the same command again to continue a stopped sweep, or on several
    machines with one --storage to share the budget.

    \b
    Examples:
      nncli sweep data/iris.csv --space space.toml --trials 30 --epochs 40
      nncli sweep data/large.csv --space space.toml --trials 100 --jobs 2 \\
          --storage postgresql://sweeper@db.example/nncli --study large
    """
    from nncli.commands.options import default_output, echo_err, read_kwargs
    from nncli.sweep import Sweep, read_space
    read_kwargs(opts)
    folder = output_dir or default_output(data, "-sweep")
    dims = read_space(space, SEARCHABLE, convert)
    fixed = {k: v for k, v in opts.items() if k in SEARCHABLE}
    sweep = Sweep(data, fixed, dims, folder=folder, convert=convert, trials=trials,
                  storage=storage, study=study, jobs=jobs, sampler=sampler, pruner=pruner,
                  sampler_seed=sampler_seed, val_data=opts.get("val_data"),
                  on_trial=None if quiet else _print_row,
                  run_options={"cache_dir": opts.get("cache"), "no_cache": opts.get("no_cache", False)},
                  heartbeat_timeout=heartbeat_timeout)
    if not quiet:
        echo_err(f"Sweep {study!r} in {sweep.storage_name}: {sweep.started()} of {trials} trials "
                 f"done, searching {', '.join(d.name for d in dims)} ({sampler}, pruner {pruner}).")
        if sweep.stale:
            echo_err(f"Marked failed: trials {', '.join(map(str, sweep.stale))}, left running by a "
                     "worker that died.")
        echo_err(f"{'trial':>5}  {'state':<8} {'score':>10} {'epochs':>6} {'seconds':>8}  params")
    try:
        sweep.run()
    except KeyboardInterrupt:
        sweep.write_tables()
        best = sweep.best()
        kept = (f"best model so far (trial {best['trial']}): {sweep.best_path}" if best
                else "no trial completed, no model written")
        raise KeyboardInterrupt(f"sweep interrupted; {kept}; run the same command to continue") from None
    rows = sweep.write_tables()
    best = sweep.best()
    if not quiet:
        counts = {}
        for r in rows:
            counts[r["state"]] = counts.get(r["state"], 0) + 1
        tally = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        echo_err(f"{len(rows)} trials in the study ({tally}).")
        echo_err(f"Best: trial {best['trial']}, score {best['score']:.6g}, {_params(best)}\n"
                 f"Model: {sweep.best_path}   trials: {folder}/trials.csv" if best
                 else "No trial completed: no model written.")
    if json_out:
        click.echo(json.dumps({"study": study, "storage": sweep.storage_name, "folder": folder,
                               "model": sweep.best_path if best else None, "best": best,
                               "trials": rows}, allow_nan=False))
    if best is None:
        sys.exit(1)


def _params(row):
    return " ".join(f"{k}={v}" for k, v in row["params"].items())


def _print_row(r):
    score = "—" if r["score"] is None else f"{r['score']:.5g}"
    epochs = "—" if r["epochs"] is None else r["epochs"]
    seconds = "—" if r["seconds"] is None else f"{r['seconds']:.2f}"
    why = f"  ({r['fail_reason']})" if r["fail_reason"] else ""
    click.echo(f"{r['trial']:>5}  {r['state']:<8} {score:>10} {epochs:>6} {seconds:>8}  "
               f"{_params(r)}{why}", err=True)
