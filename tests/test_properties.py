"""Properties, checked on random inputs with hypothesis:

* well-formed CSVs with text cells (quoted, holding separators, quotes and newlines) and
  numbers read back exactly;
* random and damaged bytes never crash the CSV reader or the model loader with anything
  but our own errors;
* save → load → predict gives the very same predictions for random networks.
"""
import csv
import io
import os
import tempfile
import zipfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nncli.data import prepare_training, read_csv
from nncli.errors import NncliError
from nncli.functions import ACTIVATIONS, LOSSES
from nncli.model_io import build_meta, load_model, save_model
from nncli.network import Network

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text that stresses the CSV syntax; the "t" prefix keeps a cell from reading as a number
# or a missing-value token. (No lone CR: csv.writer does not quote it, and old-Mac line
# ends are not a format we read.)
TEXT = st.lists(st.sampled_from(list("ab Z,;\t\"'\n\\#=é€") + ["\r\n"]), max_size=12).map(
    lambda cs: "t" + "".join(cs))
NUMBER = st.floats(-3e38, 3e38, allow_nan=False, allow_infinity=False)


@st.composite
def tables(draw):
    kinds = draw(st.lists(st.sampled_from(["text", "number"]), min_size=1, max_size=5))
    n = draw(st.integers(1, 12))
    cols = [draw(st.lists(TEXT if k == "text" else NUMBER, min_size=n, max_size=n)) for k in kinds]
    sep = draw(st.sampled_from([",", ";", "\t"]))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    quote_all = draw(st.booleans())
    return kinds, cols, sep, newline, quote_all


def _csv_text(names, cols, sep, newline, quote_all):
    out = io.StringIO()
    writer = csv.writer(out, delimiter=sep, lineterminator=newline,
                        quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    writer.writerow(names)
    for row in zip(*cols):
        writer.writerow([repr(v) if isinstance(v, float) else v for v in row])
    return out.getvalue()


@FAST
@given(tables())
def test_text_and_quoted_csv_round_trips(table):
    kinds, cols, sep, newline, quote_all = table
    names = [f"c{j}" for j in range(len(cols))]
    text = _csv_text(names, cols, sep, newline, quote_all)
    t = read_csv(io.BytesIO(text.encode("utf-8")), sep=sep if len(cols) == 1 else None)
    assert t.names == names and t.n_rows == len(cols[0])
    for j, (kind, values) in enumerate(zip(kinds, cols)):
        column = t.columns[j]
        if kind == "number":
            numbers, bad = column.as_numbers()
            assert not bad and numbers.tolist() == values
        else:
            # The reader makes CRLF line ends LF, inside quoted cells too (documented).
            assert column.as_text() == [v.replace("\r\n", "\n") for v in values]
    # Each record starts on the line after the newlines of the records before it.
    lines, expected = 2, []
    for row in zip(*cols):
        expected.append(lines)
        lines += 1 + sum(v.count("\n") for v in row if isinstance(v, str))
    assert t.line_numbers.tolist() == expected


CSV_BYTES = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from([b",", b";", b"\t", b'"', b"\n", b"\r\n", b"\r", b"a", b"1", b"2.5", b"-",
                              b"e", b"nan", b"inf", b" ", b"\x00", b"\xff", b"\xef\xbb\xbf", b"1e39", b"y"]),
             max_size=80).map(b"".join),
)


@FAST
@given(CSV_BYTES, st.sampled_from([None, ",", ";"]), st.booleans())
def test_random_bytes_never_crash_the_reader(data, sep, header):
    try:
        t = read_csv(io.BytesIO(data), sep=sep, header=header)
        prepare_training(t)
        prepare_training(t, task="regression", impute="mean")
    except NncliError:
        pass


def _model_bytes():
    net = Network([3, 4, 2], "tanh", "cross_entropy", seed=0)
    buf = tempfile.NamedTemporaryFile(suffix=".npz", delete=False)
    buf.close()
    save_model(buf.name, net, build_meta(net))
    with open(buf.name, "rb") as f:
        data = f.read()
    os.unlink(buf.name)
    return data


MODEL = _model_bytes()


@st.composite
def damaged_models(draw):
    data = bytearray(MODEL)
    for _ in range(draw(st.integers(0, 12))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return bytes(data)


@FAST
@given(st.one_of(st.binary(max_size=400), st.binary(max_size=60).map(lambda b: b"PK\x03\x04" + b),
                 damaged_models()))
def test_random_bytes_never_crash_the_model_loader(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("m") / "m.npz"
    path.write_bytes(data)
    try:
        load_model(path)
    except NncliError:
        pass


@FAST
@given(st.dictionaries(st.sampled_from(["phi.npy", "meta.npy", "x.npy"]), st.binary(max_size=200),
                       min_size=1))
def test_zips_of_random_entries_never_crash_the_model_loader(tmp_path_factory, entries):
    path = tmp_path_factory.mktemp("z") / "z.npz"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(name, b"\x93NUMPY" + data)
    try:
        load_model(path)
    except NncliError:
        pass


HIDDEN = [a for a in ACTIVATIONS]


@st.composite
def networks(draw):
    loss = draw(st.sampled_from(sorted(LOSSES)))
    widths = draw(st.lists(st.integers(1, 7), min_size=2, max_size=5))
    hidden = [draw(st.sampled_from(HIDDEN)) for _ in widths[1:-1]]
    if LOSSES[loss].output == "value" and draw(st.booleans()):
        hidden.append(draw(st.sampled_from(HIDDEN)))   # an explicit output activation
    dtype = draw(st.sampled_from(["float32", "float64"]))
    net = Network(widths, hidden, loss, dtype=dtype, seed=draw(st.integers(0, 2**32 - 1)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    net.phi[:] = rng.normal(0, 1, net.n_params)   # biases too, not just the init's zeros
    return net, rng.normal(0, 2, (draw(st.integers(1, 20)), widths[0]))


@FAST
@given(networks())
def test_save_load_predict_is_identical(tmp_path_factory, case):
    net, X = case
    path = tmp_path_factory.mktemp("net") / "net.npz"
    save_model(path, net)
    loaded = load_model(path).network
    assert loaded.layers == net.layers and loaded.activations == net.activations
    assert loaded.loss == net.loss and loaded.dtype == net.dtype
    assert loaded.phi.tobytes() == net.phi.tobytes()
    a, b = net.predict(X, n_threads=1), loaded.predict(X, n_threads=1)
    assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


@FAST
@given(tables())
def test_the_csv_writer_reads_back_through_the_csv_reader(table):
    """nncli.csvio.writer (predictions, loss logs) and nncli.csvio's reader agree: text cells
    come back as written and numbers exactly (``number``) or as their printed digits."""
    from nncli.csvio import writer
    kinds, cols, _, _, _ = table
    names = [f"c{j}" for j in range(len(cols))]
    fields = [[writer.number(v) if k == "number" else writer.quote(v) for v in c]
              for k, c in zip(kinds, cols)]
    short = [[writer.number(v, ".7g") for v in c] for k, c in zip(kinds, cols) if k == "number"]
    text = writer.header(names + [f"s{j}" for j in range(len(short))]) + writer.records(fields + short)
    t = read_csv(io.BytesIO(text.encode("utf-8")), sep=",")
    assert t.n_rows == len(cols[0])
    for j, (kind, values) in enumerate(zip(kinds, cols)):
        if kind == "number":
            numbers, bad = t.columns[j].as_numbers()
            assert not bad and numbers.tolist() == values
        else:
            assert t.columns[j].as_text() == [v.replace("\r\n", "\n") for v in values]
    for k, s in enumerate(short):
        assert t.columns[len(cols) + k].as_numbers()[0].tolist() == [float(v) for v in s]
