"""nncli info MODEL: what a model file holds."""
import json

import click


@click.command("info")
@click.argument("model", type=click.Path(dir_okay=True))
@click.option("--json", "json_out", is_flag=True, help="Print everything as one JSON object.")
def command(model, json_out):
    """Show a model's architecture, task, training configuration and final metrics.

    \b
    Example:
      nncli info iris.npz
    """
    from nncli.data import column_notes
    from nncli.model_io import load_model
    from nncli.run import diverged_note
    loaded = load_model(model)
    net, meta = loaded.network, loaded.meta
    layers = []
    ranges = net.layer_ranges()
    for k, (n_in, n_out, act) in enumerate(zip(net.layers[:-1], net.layers[1:], net.activations), 1):
        layer = {"layer": k, "kind": net.kinds[k - 1], "inputs": n_in, "outputs": n_out,
                 "activation": act, "params": ranges[k - 1].stop - ranges[k - 1].start}
        if net.kinds[k - 1] == "kan":
            g = net.grids[k - 1]
            opt = net.options[k - 1]
            layer.update(grid=opt["grid"], order=opt["order"],
                         grid_range=[[float(g[i, opt["order"]]), float(g[i, opt["grid"] + opt["order"]])]
                                     for i in range(n_in)])
        layers.append(layer)
    info = {"model": model, "nncli_version": meta.get("nncli_version"), "task": meta.get("task"),
            "loss": net.loss, "dtype": net.dtype.name, "layers": layers, "n_params": net.n_params,
            "inputs": meta.get("feature_names"), "config": meta.get("config"),
            "data_sha256": meta.get("data_sha256"), "train_rows": meta.get("train_rows"),
            "val_rows": meta.get("val_rows"), "epochs_run": meta.get("epochs_run"),
            "metrics": meta.get("metrics"), "checkpoint": "checkpoint" in meta,
            "diverged": meta.get("diverged") is True, "diverged_epoch": meta.get("diverged_epoch"),
            "columns": column_notes(loaded.schema) if loaded.schema is not None else [],
            "sweep": meta.get("sweep"), "distributed": meta.get("distributed")}
    if json_out:
        click.echo(json.dumps(info))
        return
    out = [f"model      {model}  (nncli {info['nncli_version']}, {info['dtype']})",
           f"task       {info['task'] or '—'}   loss {info['loss']}",
           f"network    {'→'.join(map(str, net.layers))}   {net.n_params} parameters", "",
           "layer  kind   in → out   activation    params" + ("  grid  order" if "kan" in net.kinds else "")]
    for l in layers:
        spline = f"  {l['grid']:>4}  {l['order']:>5}" if l["kind"] == "kan" else ""
        out.append(f"{l['layer']:>5}  {l['kind']:<5} {l['inputs']:>3} → {l['outputs']:<4} "
                   f"{l['activation']:<12} {l['params']:>7}{spline}")
    if info["inputs"]:
        shown = ", ".join(info["inputs"][:12]) + (" …" if len(info["inputs"]) > 12 else "")
        out += ["", f"inputs     {shown}"]
    if info["columns"]:
        out += [("columns    " if k == 0 else "           ") + note
                for k, note in enumerate(info["columns"])]
    if info["config"]:
        c = info["config"]
        keys = ["optimizer", "lr", "batch_size", "epochs", "schedule", "val_split", "early_stopping",
                "weight_decay", "clip_norm", "dropout", "seed", "threads"]
        out.append("training   " + "  ".join(f"{k}={_listed(c.get(k))}" for k in keys
                                             if c.get(k) not in (None, 0.0, [])))
    if info["data_sha256"]:
        out.append(f"data       sha256 {info['data_sha256'][:16]}…  {info['train_rows']} training rows, "
                   f"{info['val_rows']} validation rows, {info['epochs_run']} epochs")
    if info["metrics"]:
        out.append("metrics    " + "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                             for k, v in info["metrics"].items() if v is not None))
    if isinstance(meta.get("ensemble"), dict):
        e = meta["ensemble"]
        scores = "  ".join(f"{k} {v:.4g}" for k, v in e.items() if k.startswith("val_")
                           and isinstance(v, (int, float)))
        out.append(f"ensemble   {e.get('members')} networks, predictions averaged (seeds "
                   f"{e.get('seeds')}" + (f", epochs {e['epochs']}" if e.get("epochs") else "")
                   + ")" + (f"; validated together: {scores}" if scores else "")
                   + "; the metrics above are the first one's")
    refit = meta.get("refit")
    if isinstance(refit, dict):
        out.append(f"refit      on all {refit.get('rows')} rows for {refit.get('epochs')} epochs "
                   "(the saved network; metrics are the validation run's)")
    sweep = info["sweep"]
    if isinstance(sweep, dict):   # the best model of `nncli sweep`
        out.append(f"sweep      trial {sweep.get('trial')} of study {sweep.get('study')!r} in "
                   f"{sweep.get('storage')}")
    if isinstance(info["distributed"], dict):
        out.append(f"trained    data-parallel over {info['distributed'].get('ranks')} MPI ranks")
    note = diverged_note(meta)
    if note:
        out.append(f"diverged   yes — {note}")
    if info["checkpoint"]:
        out.append("checkpoint yes (resume with: nncli train DATA --resume " + model + ")")
    click.echo("\n".join(out))


def _listed(value):
    """A config value as typed: a list (--dropout 0.1,0.3) comma-separated."""
    return ",".join(map(str, value)) if isinstance(value, list) else value
