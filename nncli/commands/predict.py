"""nncli predict MODEL [DATA]: stream predictions as CSV."""
import sys

import click

from nncli.commands.options import csv_input_options, read_kwargs, warn_if_diverged


@click.command("predict")
@click.argument("model", type=click.Path(dir_okay=True, allow_dash=False))
@click.argument("data", type=click.Path(dir_okay=False, allow_dash=True), default="-")
@csv_input_options
@click.option("--proba", is_flag=True, help="Add one probability column per class.")
@click.option("--id", "id_column", default=None, metavar="COL", help="Copy this input column through, first.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write to this file (atomically) instead of stdout.")
@click.option("--threads", type=click.IntRange(min=1), default=None)
@click.option("--chunk-rows", type=click.IntRange(min=1), default=16384, show_default=True,
              help="Rows read, predicted and written at a time.")
@click.option("--skip-missing", is_flag=True,
              help="A row with a missing input the model cannot fill gets an empty prediction "
                   "(instead of an error).")
def command(model, data, proba, id_column, output, threads, chunk_rows, skip_missing, **csv_opts):
    """Predict for every row of DATA (a CSV file, or - / nothing for stdin); CSV to stdout.

    Classification prints the label (and with --proba one probability per class);
    regression one column per target in the original units; an autoencoder
    (reconstruct) the reconstruction and its reconstruction_error.

    A missing input is filled with the training mean or median (most frequent category) when
    the model was trained with --impute mean|median; otherwise it is an error, or with
    --skip-missing a row with empty prediction fields (one output row per input row).

    \b
    Examples:
      nncli predict iris.npz data/iris.csv --proba
      cat data/iris.csv | nncli predict iris.npz - | sort | uniq -c
      nncli predict curve.npz new.csv -o predictions.csv
    """
    if data == "-" and sys.stdin.isatty():
        # Nothing typed would be CSV a user meant: refuse rather than wait silently.
        raise click.UsageError("reading CSV from standard input, which is a terminal: "
                               "give a file or pipe data in")
    from nncli import data as D
    from nncli.csvio.writer import header as csv_header
    from nncli.errors import ConfigError
    from nncli.model_io import atomic_path, load_model
    from nncli.predicting import (complete_rows, format_rows, model_schema, output_header,
                                  predict_chunk, used_columns)
    loaded = load_model(model)
    schema = model_schema(loaded, model)
    warn_if_diverged(loaded.meta, model)
    if proba and schema.task != "classification":
        raise click.UsageError("--proba applies to classification models only")
    chunks = D.iter_csv_chunks(data, chunk_rows=chunk_rows,
                               keep_text=[id_column] if id_column else None,
                               use_columns=used_columns(schema, extra=[id_column]),
                               **read_kwargs(csv_opts, schema, loaded.meta.get("config")))

    def write_all(out):
        header = csv_header(output_header(schema, proba, id_column))
        for table in chunks:
            if id_column and id_column not in table.names:   # the option does not fit the data
                raise ConfigError(f"--id {id_column}: {table.source} has no column named "
                                  f"{id_column!r}; its columns: {', '.join(map(repr, table.names))}")
            ids = table.column(id_column).as_text() if id_column else None
            rows, skipped = complete_rows(table, schema, skip_missing)
            cols = predict_chunk(loaded.network, schema, rows, proba, threads)
            # The header goes out with the first chunk: a file whose columns do not fit
            # the model fails before anything is written.
            out.write(header + format_rows(cols, ids, skipped=skipped))
            out.flush()
            header = ""

    if output:
        with atomic_path(output) as tmp:
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                write_all(f)
    else:
        write_all(sys.stdout)
