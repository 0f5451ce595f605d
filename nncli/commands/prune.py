"""nncli prune: drop the faint hidden nodes of a KAN model."""
import click


@click.command("prune")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("data")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The pruned model file.")
@click.option("--threshold", type=click.FloatRange(min=0), default=1e-2, show_default=True,
              help="A hidden node stays when its strongest incoming and outgoing edges both "
                   "exceed this importance (mean |φ| over DATA).")
@click.option("--rows", type=click.IntRange(1, 1_000_000), default=2000, show_default=True,
              help="Rows of DATA used for the importances.")
def command(model, data, output, threshold, rows):
    """Remove the hidden nodes of a KAN model whose edges are all faint (the paper's pruning).

    The importance of an edge is its L1 norm over DATA, mean |φ_ji(x_i)| (what plot-kan
    shows); a hidden node is kept when its largest incoming and largest outgoing importance
    both exceed --threshold. Train with --kan-l1/--kan-entropy first for a sparse network;
    then train the pruned model further if you like (it starts from the kept edges).

    \b
    Example:
      nncli prune sparse.npz data/kan.csv -o pruned.npz
    """
    from nncli.commands.options import read_kwargs
    from nncli.data import encode_features, read_csv
    from nncli.errors import ConfigError, NncliError
    from nncli.kan import prune
    from nncli.model_io import build_meta, load_model, save_model
    loaded = load_model(model)
    net, schema = loaded.network, loaded.schema
    if schema is None:
        raise NncliError(f"{model} has no data schema (saved through the API): prune it with nncli.kan.prune")
    table = read_csv(data, **read_kwargs({}, schema, loaded.meta.get("config")))
    if table.n_rows > rows:
        table = table.rows(slice(0, rows))
    try:
        pruned, kept = prune(net, encode_features(table, schema), threshold)
    except ValueError as e:
        raise ConfigError(f"{model}: {e}") from None
    meta = {k: v for k, v in loaded.meta.items() if k != "checkpoint"}
    meta.update(build_meta(pruned), pruned_from={"layers": net.layers, "threshold": threshold,
                                                 "kept": kept})
    save_model(output, pruned, meta)
    click.echo(f"wrote {output}: {'→'.join(map(str, net.layers))} → "
               f"{'→'.join(map(str, pruned.layers))} ({net.n_params} → {pruned.n_params} parameters)",
               err=True)
