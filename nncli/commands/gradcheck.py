"""nncli gradcheck: backpropagation against central differences, parameter by parameter."""
import json

import click

from nncli.commands.options import CommaList, positive_int
from nncli.functions import ACTIVATIONS, LOSSES

MAX_PARAMS = 20000  # a check does about 2 loss evaluations per parameter


@click.command("gradcheck")
@click.argument("data", required=False, metavar="[DATA]")
@click.option("--model", "model_path", type=click.Path(dir_okay=False), metavar="MODEL.npz",
              help="Check a saved model on DATA (a CSV with the columns it was trained on).")
@click.option("--inputs", "n_inputs", type=click.IntRange(min=1), default=3, show_default=True,
              help="Input width (without --model).")
@click.option("--layers", type=CommaList(positive_int, metavar="N,N,..."), default="3,3",
              show_default=True,
              help="Hidden layer widths, as in train ('' for none; without --model).")
@click.option("--outputs", "n_outputs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Output width (without --model).")
@click.option("--activation", type=CommaList(choices=list(ACTIVATIONS)), default="tanh", show_default=True,
              metavar="NAME[,NAME…]",
              help=f"Hidden activation, one name or one per hidden layer: {', '.join(ACTIVATIONS)}.")
@click.option("--loss", type=click.Choice(list(LOSSES)), default="mse", show_default=True,
              help="Loss function.")
@click.option("--arch", type=click.Choice(["mlp", "kan"]), default="mlp", show_default=True,
              help="mlp: dense layers; kan: KAN layers (without --model).")
@click.option("--grid", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="KAN grid intervals (--arch kan).")
@click.option("--spline-order", type=click.IntRange(1, 7), default=3, show_default=True,
              help="KAN B-spline order (--arch kan).")
@click.option("--rows", type=click.IntRange(1, 100000), default=8, show_default=True,
              help="Rows of random data (without --model); rows of DATA used (with it).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of weights and data.")
@click.option("--step", "h", type=click.FloatRange(min=0, min_open=True), default=1e-6,
              show_default=True, help="h of the central difference (L(φ+h) − L(φ−h)) / 2h.")
@click.option("--tolerance", type=click.FloatRange(min=0), default=1e-6, show_default=True,
              help="Largest overall relative error that passes.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
def command(data, model_path, n_inputs, layers, n_outputs, activation, loss, arch, grid,
            spline_order, rows, seed, h, tolerance, as_json):
    """Compare ∂L/∂φ from backpropagation with central differences, in float64.

    Without --model: a network --inputs → --layers (hidden widths, as in train) → --outputs
    with --activation and --loss, random weights and --rows rows of random data (one-hot
    targets for cross_entropy, 0/1 for bce). With --model: that model's parameters on the
    rows of DATA, encoded as in training.

    Prints, per layer k, the weights Ω_k and biases β_k: size, parameters skipped, max |error|
    and relative error (max |error| / max |gradient|), then the overall relative error
    ‖a − n‖ / max(‖a‖, ‖n‖). A parameter whose ±h steps cross a kink of relu, leaky_relu, elu
    (or of mae) is skipped: there central differences do not measure the derivative.
    Exits 1 when the overall relative error is above --tolerance.

    \b
    Examples:
      nncli gradcheck --layers 3,3 --activation tanh --loss mse
      nncli gradcheck --inputs 4 --layers 8,8 --outputs 3 --activation relu,gelu --loss cross_entropy --json
      nncli gradcheck --arch kan --layers 5 --inputs 2 --grid 5 --spline-order 3
      nncli gradcheck --model iris.npz data/iris.csv --rows 20
    """
    from nncli.gradcheck import SKIP_REASON, gradient_check
    ctx = click.get_current_context()
    if model_path is not None:
        if data is None:
            raise click.UsageError("--model needs a DATA file to compute the loss on")
        for name in ("n_inputs", "layers", "n_outputs", "activation", "loss", "arch", "grid",
                     "spline_order"):
            if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE:
                option = "--" + name.removeprefix("n_")
                raise click.UsageError(f"{option} describes a new network; it cannot be "
                                       "combined with --model")
        net, X, Y, what = _from_model(model_path, data, rows)
    else:
        if data is not None:
            raise click.UsageError("DATA is only read with --model (without it the data are random)")
        from nncli.network import n_params
        widths = [n_inputs, *layers, n_outputs]
        kan = {"kinds": ["kan"] * (len(widths) - 1),
               "options": {"grid": grid, "order": spline_order}} if arch == "kan" else {}
        if n_params(widths, kan.get("kinds"), kan.get("options")) > MAX_PARAMS:
            raise click.UsageError(f"more than {MAX_PARAMS} parameters: a check does 2 passes "
                                   "per parameter; use a smaller network")
        net, X, Y, what = _random_problem(widths, activation, loss, rows, seed, kan)
    check = gradient_check(net, X, Y, h=h)
    passed = check.passed(tolerance)
    if as_json:
        from nncli.model_io import json_safe
        click.echo(json.dumps(json_safe({
            "network": what, "layers": net.layers, "activations": net.activations,
            "loss_function": net.loss, "rows": int(len(X)), "n_params": net.n_params,
            "loss": check.loss, "h": h,
            "parts": [{"name": p.name, "size": p.size, "skipped": p.skipped,
                       "max_abs_error": p.max_abs, "rel_error": p.rel} for p in check.parts],
            "skipped": check.n_skipped, "skipped_reason": SKIP_REASON if check.n_skipped else None,
            "max_abs_error": check.max_abs, "rel_error": check.rel,
            "tolerance": tolerance, "passed": passed})))
    else:
        click.echo(_table(net, check, what, len(X), h))
    if not passed:
        click.echo(f"gradcheck failed: relative error {check.rel:.3e} is above the tolerance "
                   f"{tolerance:g}", err=True)
        ctx.exit(1)


def _random_problem(layers, activation, loss, rows, seed, kan=None):
    import numpy as np

    from nncli.network import Network
    n_hidden = len(layers) - 2
    if len(activation) not in (1, n_hidden):
        raise click.BadParameter(f"{len(activation)} activations for {n_hidden} hidden layers: "
                                 "give one name or one per hidden layer",
                                 param_hint="--activation")
    acts = activation * n_hidden if len(activation) == 1 else activation
    if kan:
        acts = ["identity"] * n_hidden
    try:
        net = Network(layers, acts, loss, dtype="float64", seed=seed, **(kan or {}))
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    rng = np.random.default_rng([seed, 1])
    X = rng.standard_normal((rows, layers[0]))
    if kan:
        # Grids over the data, and the spline coefficients made larger than at init so
        # that the spline terms weigh in the check as much as the silu ones.
        net.fit_grids(X)
        for p in net.parts:
            p["c"][:] = rng.standard_normal(p["c"].shape)
    m = layers[-1]
    if loss == "cross_entropy":
        Y = np.eye(m)[rng.integers(0, m, rows)]
    elif loss == "bce":
        Y = rng.integers(0, 2, (rows, m)).astype(np.float64)
    else:
        Y = rng.standard_normal((rows, m))
    arch = "→".join(map(str, layers))
    if kan:
        o = kan["options"]
        return net, X, Y, f"{arch} KAN (grid {o['grid']}, order {o['order']}), {loss}, random data (seed {seed})"
    return net, X, Y, f"{arch} {'/'.join(dict.fromkeys(acts)) or 'linear'}, {loss}, random data (seed {seed})"


def _from_model(model_path, data, rows):
    from nncli.commands.options import read_kwargs
    from nncli.data import encode_features, encode_targets, read_csv
    from nncli.errors import ModelFileError
    from nncli.model_io import load_model
    model = load_model(model_path)
    schema = model.schema
    if schema is None:
        raise ModelFileError(f"{model_path} has no data schema (it was saved through the Python "
                             "API), so DATA cannot be encoded for it")
    # DATA is read as the training file was: without a header if it had none (columns by
    # position), in its encoding.
    table = read_csv(data, **read_kwargs({}, schema, model.meta.get("config")))
    if table.n_rows > rows:
        table = table.rows(slice(0, rows))
    X, Y = encode_features(table, schema), encode_targets(table, schema)
    net = model.network.copy("float64")
    return net, X, Y, f"{model_path} on {table.n_rows} rows of {data}"


def _table(net, check, what, n_rows, h):
    from nncli.gradcheck import SKIP_REASON
    lines = [f"gradcheck: {what}",
             f"P = {net.n_params} parameters, {n_rows} rows, loss {check.loss:.6g}, h = {h:g}",
             "",
             f"{'part':<8}{'size':>7}{'skipped':>9}  {'max abs error':>14}  {'rel error':>10}"]
    for p in check.parts:
        lines.append(f"{p.name:<8}{p.size:>7}{p.skipped:>9}  {p.max_abs:>14.3e}  {p.rel:>10.3e}")
    lines.append(f"{'overall':<8}{net.n_params:>7}{check.n_skipped:>9}  {check.max_abs:>14.3e}  "
                 f"{check.rel:>10.3e}")
    if check.n_skipped:
        lines += ["", f"{check.n_skipped} skipped: {SKIP_REASON}."]
    return "\n".join(lines)
