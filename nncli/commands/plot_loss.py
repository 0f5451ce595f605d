"""nncli plot-loss: loss curves of one or several training runs, as an image or as text."""
import os
import shutil
import sys

import click


@click.command("plot-loss")
@click.argument("logs", nargs=-1, required=True, metavar="LOG...")
@click.option("-o", "--output", default="loss.png", show_default=True, metavar="FILE",
              help="Image to write: .png, .svg or .pdf.")
@click.option("--metric", metavar="NAME",
              help="Plot a logged metric column (e.g. val_accuracy, or accuracy for "
                   "train_/val_accuracy) instead of the losses.")
@click.option("--log-scale", is_flag=True, help="Logarithmic y axis.")
@click.option("--title", help="Title of the plot.")
@click.option("--terminal", is_flag=True,
              help="Draw the curves as text on stdout instead of writing an image "
                   "(works over ssh, without matplotlib).")
@click.option("--width", type=click.IntRange(30, 1000), metavar="N",
              help="Width of the --terminal plot in characters [default: the terminal's].")
@click.option("--height", type=click.IntRange(8, 500), default=20, show_default=True, metavar="N",
              help="Height of the --terminal plot in lines.")
@click.option("--color/--no-color", default=None,
              help="Colour the --terminal plot [default: when stdout is a terminal].")
def command(logs, output, metric, log_scale, title, terminal, width, height, color):
    """Plot the loss curves of training runs: train solid, validation dashed.

    Each LOG is a loss log written by `nncli train` (epoch,train_loss,val_loss,…,lr,seconds);
    several logs overlay, one colour per run, named by file. `-` reads a log from stdin.
    A log still being written can be plotted at any time.

    \b
    Examples:
      nncli plot-loss iris.loss.csv                       # → loss.png
      nncli plot-loss a.loss.csv b.loss.csv --log-scale -o runs.svg
      nncli plot-loss iris.loss.csv --metric val_accuracy -o acc.png
      nncli plot-loss iris.loss.csv --terminal            # text plot, e.g. over ssh
    """
    from nncli import plot
    if logs.count("-") > 1:
        raise click.BadParameter("stdin ('-') can be read only once", param_hint="LOG")
    parsed = [plot.read_loss_log(p) for p in logs]
    if terminal:
        parsed, series = plot.loss_series(parsed, metric)
        if width is None:
            width = shutil.get_terminal_size((80, 24)).columns
        if color is None:
            color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        click.echo(plot.terminal_plot(series, width, height, log_scale=log_scale, x_label="epoch",
                                      y_label=plot.y_label(parsed, metric), title=title,
                                      color=color), nl=False, color=color)
        return
    lines = plot.plot_loss(parsed, output, metric=metric, log_scale=log_scale, title=title)
    click.echo(f"wrote {output} ({len(lines)} curve{'s' if len(lines) != 1 else ''} "
               f"from {len(parsed)} log{'s' if len(parsed) != 1 else ''})", err=True)
