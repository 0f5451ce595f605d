"""nncli export MODEL -o FILE: the model for ONNX runtimes or as a C99 header."""
import json

import click


@click.command("export")
@click.argument("model", type=click.Path(dir_okay=True))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="The file to write (atomically): model.onnx, or model.h with --format c.")
@click.option("--format", "fmt", type=click.Choice(["onnx", "c"]), default="onnx", show_default=True)
@click.option("--raw", is_flag=True,
              help="ONNX: one input X, the already-encoded feature matrix, instead of one "
                   "input per CSV column.")
@click.option("--fixed", type=click.IntRange(1, 24), default=None, metavar="BITS",
              help="C: Q-format integer arithmetic with BITS fraction bits (e.g. 16), for CPUs "
                   "without floating point; relu, leaky_relu and identity layers only.")
@click.option("--name", default=None, metavar="NAME",
              help="C: prefix of the header's identifiers (default: from the output file's name).")
@click.option("--json", "json_out", is_flag=True, help="Print a summary as one JSON object.")
def command(model, output, fmt, raw, fixed, name, json_out):
    """Export MODEL: the whole pipeline as ONNX, or a dependency-free C99 header.

    ONNX (needs pip install 'nncli[onnx]'): one input per CSV input column (numbers as
    float, or double for a float64 model; categorical and boolean cells as strings), the
    stored imputation, standardisation and one-hot encoding, the network, and the outputs
    nncli predict prints (label and probabilities; values in the target's units; the
    reconstruction).

    C: one header, libm only: NAME_predict(const float *in, float *out), one float per input
    column (a category as its index in NAME_vocab_<k>, k its position; NaN for missing).

    \b
    Examples:
      nncli export iris.npz -o iris.onnx
      nncli export iris.npz --format c -o iris.h
      nncli export curve.npz --format c --fixed 16 -o curve_q16.h
    """
    from nncli.export import export_model
    from nncli.export.common import default_name
    if name is not None and not (name.isidentifier() and name.isascii()):
        raise click.BadParameter(f"{name!r} is not a C identifier", param_hint="--name")
    if fmt == "c" and name is None and not default_name(output).isidentifier():
        raise click.BadParameter("give a C identifier", param_hint="--name")
    summary = export_model(model, output, fmt, raw=raw, fixed=fixed, name=name)
    if json_out:
        click.echo(json.dumps(summary))
        return
    extra = ""
    if summary.get("max_abs_error") is not None:
        extra = f"; fixed-point Q{summary['fixed_bits']} error bound {summary['max_abs_error']:.3g}"
    click.echo(f"wrote {output} ({fmt}{', raw' if raw else ''}{extra})", err=True)
