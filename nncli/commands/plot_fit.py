"""nncli plot-fit: one-input regression models drawn over their data."""
import os

import click


@click.command("plot-fit")
@click.argument("files", nargs=-1, required=True, metavar="MODEL... DATA")
@click.option("-o", "--output", default="fit.png", show_default=True, metavar="FILE",
              help="Image to write: .png, .svg or .pdf.")
@click.option("--points", type=click.IntRange(10, 1_000_000), default=1000, show_default=True,
              help="Points of each curve (over the data's range, extended 5% each side).")
@click.option("--title", help="Title of the plot.")
def command(files, output, points, title):
    """Draw the data as points and each model's curve over it.

    For regression models with one numeric input and one output, trained on DATA's columns
    (or with the same names). Several models overlay, each named by its file and
    architecture, e.g. "relu3.npz (1→3→1 relu)": a ReLU network is piecewise linear,
    and its kinks show.

    \b
    Examples:
      nncli plot-fit curve.npz data/curve.csv                   # → fit.png
      nncli plot-fit relu3.npz relu6.npz data/curve.csv -o fit.svg
    """
    from nncli import plot
    from nncli.errors import NncliError
    from nncli.model_io import load_model
    if len(files) < 2:
        raise click.UsageError("give at least one MODEL and then the DATA file")
    *model_paths, data = files
    plot.image_format(output)      # a bad extension fails before any work
    models = []
    for path in model_paths:
        model = load_model(path)
        net = model.network
        if net.layers[0] != 1 or net.layers[-1] != 1:
            raise NncliError(f"{path}: plot-fit draws models with one input and one output; "
                             f"this one has {net.layers[0]} input{'s' * (net.layers[0] != 1)} and "
                             f"{net.layers[-1]} output{'s' * (net.layers[-1] != 1)} "
                             f"({'→'.join(map(str, net.layers))})")
        schema = model.schema
        if schema is not None and (schema.task != "regression" or schema.inputs[0].kind != "numeric"):
            raise NncliError(f"{path}: plot-fit draws regression models with a numeric input; "
                             f"this is a {schema.task} model on a {schema.inputs[0].kind} input")
        label = f"{os.path.basename(path)} ({plot.architecture(net)})"
        models.append((label, model))
    x_name, y_name, x, y = _xy(data, [m for _, m in models])
    plot.plot_fit(models, x, y, output, x_name=x_name, y_name=y_name, title=title, points=points)
    click.echo(f"wrote {output} ({len(models)} model{'s' * (len(models) != 1)}, "
               f"{len(x)} data points)", err=True)


def _xy(data, models):
    """The input and target columns of DATA, named as the models were trained (else the
    first two columns), as float arrays."""
    from nncli.data import read_csv
    from nncli.errors import DataError
    schemas = [m.schema for m in models if m.schema is not None]
    # DATA is decoded as the (first) model's training file was.
    configs = [m.meta.get("config") for m in models if m.meta.get("config")]
    encoding = (configs[0] if configs else {}).get("encoding") or "utf-8"
    if schemas and not schemas[0].has_header:
        # Trained on a file without a header: read DATA the same way, named as in training.
        table = read_csv(data, header=False, columns=schemas[0].columns, encoding=encoding)
    else:
        table = read_csv(data, encoding=encoding)
    if schemas:
        names = {(s.inputs[0].name, s.target_names[0]) for s in schemas}
        if len(names) > 1:
            raise DataError("the models were trained on different columns: "
                            + "; ".join(f"{a} → {b}" for a, b in sorted(names)))
        x_name, y_name = names.pop()
        if not table.named or x_name not in table.names or y_name not in table.names:
            raise DataError(f"{table.source}: the models need the columns {x_name!r} and "
                            f"{y_name!r}; the file has {', '.join(map(repr, table.names))}")
    else:
        if len(table.names) < 2:
            raise DataError(f"{table.source}: needs two columns (input, target)")
        x_name, y_name = table.names[0], table.names[1]
    out = []
    for name in (x_name, y_name):
        j = table.index_of(name)
        values, bad = table.columns[j].as_numbers()
        if bad:
            row, text = bad[0]
            raise DataError(f"{table.where(row, j)}: {text!r} is not a number")
        out.append(values)
    import numpy as np
    ok = np.isfinite(out[0]) & np.isfinite(out[1])
    if not ok.any():
        raise DataError(f"{table.source}: no row has numbers in both {x_name!r} and {y_name!r}")
    return x_name, y_name, out[0][ok], out[1][ok]
