"""nncli evaluate MODEL DATA: metrics of a model on labelled data."""
import json

import click

from nncli.commands.options import csv_input_options, read_kwargs, warn_if_diverged


@click.command("evaluate")
@click.argument("model", type=click.Path(dir_okay=True))
@click.argument("data", type=click.Path(dir_okay=False, allow_dash=True))
@csv_input_options
@click.option("--threads", type=click.IntRange(min=1), default=None)
@click.option("--json", "json_out", is_flag=True, help="Print the metrics as one JSON object.")
@click.option("--held-out", is_flag=True,
              help="Score only the rows the model held out for validation (DATA: its training file).")
@click.option("--skip-missing", is_flag=True,
              help="Leave out rows with a missing target, or a missing input the model cannot "
                   "fill (instead of an error); the count is reported.")
def command(model, data, threads, json_out, held_out, skip_missing, **csv_opts):
    """Score MODEL on DATA, a CSV with the target column(s).

    Regression: MSE, RMSE, MAE, R² (original units). Classification: accuracy, log-loss,
    precision/recall/F1 per class and the confusion matrix. Reconstruct: the mean
    reconstruction error.

    --held-out scores exactly the rows `nncli train --val-split` held out of DATA (the
    file the model was trained on, checked by its sha256).

    \b
    Examples:
      nncli evaluate iris.npz data/iris.csv
      nncli evaluate iris.npz data/iris.csv --held-out
    """
    from nncli import data as D
    from nncli.errors import DataError
    from nncli.model_io import load_model
    from nncli.predicting import (CHUNK_ROWS, Evaluation, evaluate_chunk, metrics, model_schema,
                                  used_columns)
    from nncli.run import held_out_table
    loaded = load_model(model)
    schema = model_schema(loaded, model)
    warn_if_diverged(loaded.meta, model)
    ev = Evaluation(schema.task)
    if held_out:   # the training file, read as training read it
        evaluate_chunk(ev, loaded.network, schema, held_out_table(data, loaded.meta, model),
                       threads, skip_missing)
    else:
        reading = read_kwargs(csv_opts, schema, loaded.meta.get("config"))
        # chunks as predict's: the memory is the chunk's, whatever the file's size
        for table in D.iter_csv_chunks(data, use_columns=used_columns(schema, targets=True),
                                       chunk_rows=CHUNK_ROWS, **reading):
            evaluate_chunk(ev, loaded.network, schema, table, threads, skip_missing)
    if ev.n == 0:
        raise DataError(f"{data}: every row has a missing value; no row is left to score")
    result = metrics(ev, schema)
    if skip_missing:
        result["skipped_rows"] = ev.skipped
    if json_out:
        click.echo(json.dumps(result))
    else:
        click.echo(render(result))


def render(m):
    lines = [f"rows      {m['rows']}"]
    if m.get("skipped_rows"):
        lines.append(f"skipped   {m['skipped_rows']} (a missing value)")
    if m["task"] == "classification":
        lines += [f"accuracy  {m['accuracy']:.4f}", f"log-loss  {m['log_loss']:.4f}", ""]
        w = max(len("class"), *(len(c) for c in m["classes"]))
        lines.append(f"{'class':<{w}}  precision  recall      f1  support")
        for c, s in m["per_class"].items():
            lines.append(f"{c:<{w}}  {s['precision']:9.4f}  {s['recall']:6.4f}  {s['f1']:6.4f}  {s['support']:7d}")
        lines += ["", "confusion matrix (rows: true class, columns: predicted)"]
        cw = max(w, *(len(str(v)) for row in m["confusion_matrix"] for v in row))
        lines.append(" " * (w + 2) + "  ".join(f"{c:>{cw}}" for c in m["classes"]))
        for c, row in zip(m["classes"], m["confusion_matrix"]):
            lines.append(f"{c:<{w}}  " + "  ".join(f"{v:>{cw}}" for v in row))
    elif m["task"] == "regression":
        r2 = "—" if m["r2"] is None else f"{m['r2']:.4f}"
        lines += [f"mse       {m['mse']:.6g}", f"rmse      {m['rmse']:.6g}",
                  f"mae       {m['mae']:.6g}", f"r2        {r2}"]
        if len(m["per_target"]) > 1:
            lines.append("")
            for t, s in m["per_target"].items():
                r2 = "—" if s["r2"] is None else f"{s['r2']:.4f}"
                lines.append(f"{t}: mse {s['mse']:.6g}  rmse {s['rmse']:.6g}  mae {s['mae']:.6g}  r2 {r2}")
    else:
        lines.append(f"mean reconstruction error  {m['reconstruction_error']:.6g}")
    return "\n".join(lines)
