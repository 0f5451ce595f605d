"""Option types and option groups shared by several commands."""
import codecs
import os

import click


class CommaList(click.ParamType):
    """'a,b,c' → ['a', 'b', 'c']; items are checked by `item` (a function raising ValueError)."""
    name = "list"

    def __init__(self, item=str, choices=None, metavar="A,B,..."):
        self.item = item
        self.choices = choices
        self.metavar_text = metavar

    def get_metavar(self, param, ctx=None):
        return self.metavar_text

    def convert(self, value, param, ctx):
        if isinstance(value, (list, tuple)):
            items = list(value)
        else:
            items = [v.strip() for v in str(value).split(",")] if str(value).strip() else []
        out = []
        for v in items:
            if self.choices is not None and v not in self.choices:
                self.fail(f"{v!r} is not one of {', '.join(self.choices)}", param, ctx)
            try:
                out.append(self.item(v))
            except (TypeError, ValueError) as e:
                self.fail(f"{v!r}: {e}", param, ctx)
        return out


def positive_int(v):
    n = int(v)
    if n < 1:
        raise ValueError("must be a whole number of at least 1")
    return n


def column_key(v):
    """A column by name, or by (possibly negative) index if it is an integer."""
    v = str(v).strip()
    try:
        return int(v)
    except ValueError:
        return v


class BatchSize(click.ParamType):
    name = "N|full"

    def convert(self, value, param, ctx):
        if value in ("full", None) or isinstance(value, int) and value >= 1:
            return value
        try:
            n = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is neither a positive whole number nor 'full'", param, ctx)
        if n < 1:
            self.fail("must be at least 1 (or 'full')", param, ctx)
        return n


def csv_input_options(f):
    """--sep, --no-header, --columns, --encoding: how to read a CSV."""
    f = click.option("--encoding", default=None, metavar="NAME",
                     help="The file's text encoding, e.g. latin-1 (default: utf-8; predict and "
                          "evaluate use the one the model was trained with).")(f)
    f = click.option("--columns", type=CommaList(), default=None,
                     help="Column names, for a file without a header (with --no-header).")(f)
    f = click.option("--no-header", "no_header", is_flag=True,
                     help="The file has no header row (columns c1..cn, or --columns).")(f)
    f = click.option("--sep", default=None, metavar="CHAR",
                     help="Field separator (default: detected among , ; and tab).")(f)
    return f


def read_kwargs(opts, schema=None, config=None):
    """Keyword arguments of nncli.data.read_csv from the CSV options. With a model's `schema`,
    a model trained on a file without a header reads new files without one too (no need to
    repeat --no-header: columns are then matched by position); with its training `config`,
    new files are decoded as the training file was unless --encoding says otherwise."""
    sep = opts.get("sep")
    if sep == "\\t" or sep == "tab":
        sep = "\t"
    if sep is not None and len(sep) != 1:
        raise click.BadParameter("the separator is one character (or 'tab')", param_hint="--sep")
    if opts.get("columns") and not opts.get("no_header"):
        raise click.UsageError("--columns names the columns of a file without a header: add --no-header")
    header = not opts.get("no_header") and (schema is None or schema.has_header)
    encoding = opts.get("encoding") or (config or {}).get("encoding") or "utf-8"
    if opts.get("encoding"):
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise click.BadParameter(f"unknown encoding {encoding!r} (e.g. utf-8, latin-1, cp1252)",
                                     param_hint="--encoding") from None
    return {"sep": sep, "header": header, "columns": opts.get("columns") or None,
            "encoding": encoding}


def default_output(data_path, suffix):
    """'data/iris.csv' → 'iris<suffix>' in the current folder; stdin → 'model<suffix>'."""
    if data_path == "-":
        return "model" + suffix
    stem = os.path.basename(data_path)
    for ext in (".csv", ".tsv", ".txt"):
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
    return (stem or "model") + suffix


def echo_err(message):
    click.echo(message, err=True)
