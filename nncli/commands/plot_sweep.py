"""nncli plot-sweep SWEEP: a sweep's optimisation history and parameter importance."""
import os
import warnings

import click


@click.command("plot-sweep")
@click.argument("sweep", metavar="FOLDER|URL")
@click.option("--study", default=None, help="Study name (default: the storage's only study).")
@click.option("-o", "--output", default="sweep.png", show_default=True, metavar="FILE",
              help="Image to write: .png, .svg or .pdf.")
@click.option("--title", help="Title of the plot.")
def command(sweep, study, output, title):
    """Plot the trials of a sweep: score per trial with the best so far, and how much each
    searched option mattered (Optuna's fANOVA importance).

    \b
    Examples:
      nncli plot-sweep iris-sweep                 # the folder `nncli sweep` wrote
      nncli plot-sweep postgresql://sweeper@db.example/nncli --study large -o large.png
    """
    from nncli import plot
    from nncli.errors import ConfigError
    from nncli.sweep import JOURNAL, import_optuna, open_storage, trial_row
    optuna = import_optuna()
    if "://" not in sweep:
        path = os.path.join(sweep, JOURNAL) if os.path.isdir(sweep) else sweep
        if not os.path.isfile(path):
            raise click.BadParameter(f"{sweep}: no sweep folder or journal file there",
                                     param_hint="FOLDER|URL")
        sweep = path
    storage, name = open_storage(optuna, sweep, None)
    names = optuna.get_all_study_names(storage)
    if study is None:
        if len(names) != 1:
            raise ConfigError(f"{name} holds {len(names)} studies; choose one with --study "
                              f"({', '.join(names) or 'none'})")
        study = names[0]
    elif study not in names:
        raise ConfigError(f"{name} has no study {study!r} ({', '.join(names) or 'none'})")
    s = optuna.load_study(study_name=study, storage=storage)
    rows = [trial_row(t) for t in s.get_trials(deepcopy=False)]
    completed = [r for r in rows if r["state"] == "complete"]
    importances, caught = {}, []
    if len(completed) >= 2:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                importances = optuna.importance.get_param_importances(s)
        except (RuntimeError, ValueError):   # e.g. every completed trial has the same params
            importances = {}
    # Optuna's cautions (e.g. too few trials for a parameter's regimes) as one line each,
    # not as Python warnings with a file and line of Optuna's.
    for message in dict.fromkeys(str(w.message) for w in caught):
        click.echo(f"note: {message}", err=True)
    plot.plot_sweep(rows, importances, output, title=title or f"sweep {study}")
    click.echo(f"wrote {output} ({len(rows)} trials, {len(completed)} completed)", err=True)
