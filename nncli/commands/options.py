"""Option types and option groups shared by several commands."""
import codecs
import os
from numbers import Integral

import click

from nncli.params import CONSTRAINTS


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


def click_type(name):
    """The Click type of a number constrained by nncli.params.CONSTRAINTS[name]."""
    c = CONSTRAINTS[name]
    kind = click.IntRange if c.kind is Integral else click.FloatRange
    return kind(c.low, c.high, min_open=c.closed in ("right", "neither"),
                max_open=c.closed in ("left", "neither"))


def number_in(name=None):
    """An item parser for CommaList: a number within CONSTRAINTS[name] (any float without)."""
    c = CONSTRAINTS[name] if name is not None else None
    whole = c is not None and c.kind is Integral

    def parse(text):
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            raise ValueError("not a whole number" if whole else "not a number") from None
        if c is not None and value not in c:
            raise ValueError(f"must be {c}")
        return value
    return parse


def dashed(name):
    """An option's name as typed: weight_decay → --weight-decay."""
    return "--" + name.replace("_", "-")


class TrainingCommand(click.Command):
    """A command with an --optimizer and a --schedule: a hyper-parameter or schedule option
    given (on the command line or in --config) for one that does not take it is a usage
    error naming the option, e.g. --momentum with --optimizer sgd."""

    def parse_args(self, ctx, args):
        rest = super().parse_args(ctx, args)
        params = ctx.params
        if params.get("resume"):
            return rest   # the checkpoint's optimiser and schedule, checked when it was trained
        from nncli.optim import HYPERPARAMETERS, check_hyperparameters
        from nncli.schedules import CONFIG_KEYS, check_options, schedule_options
        try:
            # An option left at its default (--clip-norm 0) was not given: an optimiser that
            # does not take it (lbfgs) does not refuse it.
            given = {k: params[k] for k in HYPERPARAMETERS if params.get(k) is not None
                     and ctx.get_parameter_source(k) != click.core.ParameterSource.DEFAULT}
            check_hyperparameters(params["optimizer"], given, dashed)
            check_options(params["schedule"], schedule_options(params),
                          lambda option: dashed(CONFIG_KEYS[option]))
        except ValueError as e:
            raise click.UsageError(str(e), ctx) from None
        return rest


def positive_int(v):
    try:
        n = int(v)
    except ValueError:
        raise ValueError("not a whole number") from None
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
    from nncli.csvio import read_options
    sep = opts.get("sep")
    if sep is not None and sep not in ("\\t", "tab") and len(sep) != 1:
        raise click.BadParameter("the separator is one character (or 'tab')", param_hint="--sep")
    if opts.get("columns") and not opts.get("no_header"):
        raise click.UsageError("--columns names the columns of a file without a header: add --no-header")
    if opts.get("encoding"):
        try:
            codecs.lookup(opts["encoding"])
        except LookupError:
            raise click.BadParameter(f"unknown encoding {opts['encoding']!r} (e.g. utf-8, latin-1, "
                                     "cp1252)", param_hint="--encoding") from None
    kwargs = read_options({**opts, "encoding": opts.get("encoding") or (config or {}).get("encoding")})
    kwargs["header"] = kwargs["header"] and (schema is None or schema.has_header)
    return kwargs


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


def warn_if_diverged(meta, model_path):
    """One stderr line when the model was saved by --save-diverged (predict, evaluate)."""
    from nncli.run import diverged_note
    note = diverged_note(meta)
    if note:
        echo_err(f"Warning: {model_path} was {note}; its outputs may be poor.")
