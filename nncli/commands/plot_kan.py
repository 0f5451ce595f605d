"""nncli plot-kan: the learned function on every edge of a KAN model."""
import click

MAX_EDGES = 400   # small plots in one image beyond which nothing can be read


@click.command("plot-kan")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("data", required=False)
@click.option("-o", "--output", default="kan.png", show_default=True, metavar="FILE",
              help="Image to write: .png, .svg or .pdf.")
@click.option("--rows", type=click.IntRange(1, 1_000_000), default=2000, show_default=True,
              help="Rows of DATA used for the ranges and the importances.")
@click.option("--title", help="Title of the image.")
def command(model, data, output, rows, title):
    """Draw every edge function φ_ji of a KAN model, layer by layer.

    Layer k is a block of small plots, one row per output and one column per input; each
    curve is drawn over the range its input takes on the data, with an alpha set by the
    edge's importance: its L1 norm over the data, mean |φ_ji(x_i)| (the KAN paper's), printed
    above it. Faint edges can be pruned. DATA (a CSV with the model's input columns) gives
    the inputs; without it, 2000 points spread over the first layer's grid range.

    \b
    Examples:
      nncli plot-kan kan.npz -o kan.png
      nncli plot-kan kan.npz data/kan.csv -o kan.svg
    """
    import numpy as np

    from nncli import plot
    from nncli.errors import NncliError
    from nncli.model_io import load_model
    plot.image_format(output)
    loaded = load_model(model)
    net = loaded.network
    if "kan" not in net.kinds:
        raise NncliError(f"{model} has no KAN layer (train one with --arch kan)")
    edges = sum(a * b for a, b, kind in zip(net.layers, net.layers[1:], net.kinds) if kind == "kan")
    if edges > MAX_EDGES:
        raise NncliError(f"{model} has {edges} KAN edges; plot-kan draws at most {MAX_EDGES}")
    schema = loaded.schema
    if data is not None:
        if schema is None:
            raise NncliError(f"{model} has no data schema (saved through the API): plot it without DATA")
        from nncli.commands.options import read_kwargs
        from nncli.data import encode_features, read_csv
        table = read_csv(data, **read_kwargs({}, schema, loaded.meta.get("config")))
        if table.n_rows > rows:
            table = table.rows(slice(0, rows))
        X = encode_features(table, schema)
    elif net.kinds[0] == "kan":
        g, o = net.grids[0], net.options[0]
        lo, hi = g[:, o["order"]], g[:, o["grid"] + o["order"]]
        X = np.random.default_rng(0).uniform(lo, hi, (rows, net.layers[0]))
    else:
        raise NncliError(f"{model} starts with a dense layer: give DATA to plot its KAN edges on")
    inputs = loaded.meta.get("feature_names")
    outputs = list(schema.target_names) if schema is not None else None
    plot.plot_kan(net, X, output, input_names=inputs, output_names=outputs, title=title)
    click.echo(f"wrote {output} ({edges} edges)", err=True)
