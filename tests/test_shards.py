"""Sharded reading and combined statistics (nncli.csvio.byterange, nncli.shards) without MPI.

The byte ranges are checked on their own; the statistics run `data.prepare_training` on R
shards at once, in R threads joined by a communicator whose allgather is a barrier, and
compare the schema with one process's over the whole file: means and standard deviations to
1e-12 relative, medians, vocabularies, classes, kinds and the validation split exactly.
(tests/test_distributed.py runs the same code under `mpiexec -n 2`.)"""
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nncli import data as D
from nncli.csvio import byterange
from nncli.distributed import agree
from nncli.errors import DataError
from nncli.shards import ShardStats, _from_key, _order_keys, read_shard


class ThreadComm:
    """The part of an mpi4py communicator that the preparation uses, for R threads."""

    def __init__(self, rank, shared):
        self.rank, self.shared = rank, shared

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.shared["size"]

    def allgather(self, value):
        s = self.shared
        s["slots"][self.rank] = value
        s["barrier"].wait()
        got = list(s["slots"])
        s["barrier"].wait()   # everyone has read before the next call writes
        return got


def on_ranks(size, work):
    """[work(comm) for each of `size` ranks], run in threads; an exception is returned."""
    shared = {"size": size, "slots": [None] * size,
              "barrier": threading.Barrier(size, timeout=20)}
    out = [None] * size

    def run(rank):
        try:
            out[rank] = work(ThreadComm(rank, shared))
        except Exception as e:  # noqa: BLE001 - returned to the test
            out[rank] = e
    threads = [threading.Thread(target=run, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def assert_same_schema(got, ref, rounded=("mean", "std")):
    """Schemas (as dicts) equal, the statistics in `rounded` to 1e-12 relative."""
    got, ref = got.to_dict(), ref.to_dict()
    assert len(got["inputs"]) == len(ref["inputs"])
    for a, b in zip(got["inputs"] + [got["targets"]], ref["inputs"] + [ref["targets"]]):
        assert {k: v for k, v in a.items() if k not in rounded} == \
               {k: v for k, v in b.items() if k not in rounded}
        for k in rounded:
            if a.get(k) is not None and not isinstance(a[k], str):
                np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-12)
    assert {k: v for k, v in got.items() if k not in ("inputs", "targets")} == \
           {k: v for k, v in ref.items() if k not in ("inputs", "targets")}


def write(tmp_path, text, name="t.csv"):
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return str(p)


# -- byte ranges --------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=30), st.integers(1, 6),
       st.booleans())
def test_the_parts_are_the_lines_once_each_in_order(tmp_path_factory, lengths, parts, crlf):
    end = b"\r\n" if crlf else b"\n"
    lines = [b"h" + b"x" * k for k in lengths]
    body = end.join(lines) + end
    path = write(tmp_path_factory.mktemp("b"), b"a,b" + end + body)
    start = byterange.data_start(path, True)
    assert start == 3 + len(end)
    got, newlines = b"", 0
    for r in range(parts):
        lo, hi = byterange.part_bounds(path, start, len(body) + start, r, parts)
        piece = open(path, "rb").read()[lo:hi]
        assert not piece or piece.endswith(b"\n")   # whole lines only
        got += piece
        newlines += byterange.scan_part(path, lo, hi)[0] if hi > lo else 0
    assert got == body and newlines == len(lines)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.text(alphabet='ab,"\n ', max_size=6), min_size=2, max_size=2),
                min_size=1, max_size=12), st.integers(2, 5))
def test_valid_csv_is_never_cut_inside_a_record(tmp_path_factory, rows, parts):
    """Whatever the quoting, when no part reports a problem the parts' records are the
    file's records (csv module), in order."""
    import csv
    import io
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\n").writerows([["h1", "h2"], *rows])
    path = write(tmp_path_factory.mktemp("q"), buf.getvalue())
    start = byterange.data_start(path, True)
    raw = open(path, "rb").read()
    cuts = [byterange.part_bounds(path, start, len(raw), r, parts) for r in range(parts)]
    if any(byterange.scan_part(path, lo, hi)[1] for lo, hi in cuts if hi > lo):
        return   # read whole instead
    got = [rec for lo, hi in cuts for rec in csv.reader(io.StringIO(raw[lo:hi].decode(), newline=""))]
    assert got == list(csv.reader(io.StringIO(raw[start:].decode(), newline="")))


def test_quotes_and_lone_carriage_returns_are_found(tmp_path):
    quoted = write(tmp_path, 'a,b\n1,"x\ny"\n2,z\n', "q.csv")
    assert byterange.scan_part(quoted, 4, 16)[1] == "a quoted field holds a newline"
    assert byterange.scan_part(quoted, 9, 16)[1] == "a quoted field holds a newline"  # its end
    commas = write(tmp_path, 'a,b\n1,"x, ""y"""\n2,z\n', "c.csv")
    assert byterange.scan_part(commas, 4, 21) == (2, None)   # quotes, but no field spans lines
    cr = write(tmp_path, "a,b\r1,2\r3,4\r", "cr.csv")
    assert byterange.data_start(cr, True) is None    # no newline: the header is not found
    mixed = write(tmp_path, "a,b\n1,2\r3,4\r\n", "mixed.csv")
    assert byterange.scan_part(mixed, 4, 13)[1] == "lines ending in a lone CR"
    assert byterange.data_start(write(tmp_path, '"a",b\n1,2\n', "qh.csv"), True) == 6
    assert byterange.data_start(write(tmp_path, '"a\nb",c\n1,2\n', "qh.csv"), True) is None
    assert byterange.why_not_by_bytes("-", "utf-8")
    assert byterange.why_not_by_bytes(write(tmp_path, "a\n1\n", "x.csv.gz"), "utf-8")
    assert byterange.why_not_by_bytes(write(tmp_path, "a\n1\n"), "utf-16") is not None


# -- combined statistics ------------------------------------------------------------------
def _keys_round_trip():
    v = np.array([-np.inf, -1e300, -1.5, -0.0, 0.0, 5e-324, 1.0, 2.5, 1e308, np.inf])
    k = _order_keys(v)
    assert np.all(np.diff(k.astype(object)) >= 0)
    assert [float(_from_key(x)) for x in k] == v.tolist()


def test_order_keys_follow_the_floats():
    _keys_round_trip()


def _mixed_csv(rng, n):
    """Numbers with gaps, a category with a rare value, a date, a boolean, an identifier,
    a class target."""
    rows = ["x,y,colour,when,flag,name,label"]
    colours = ["red", "green", "blue", "teal"]
    for i in range(n):
        x = "" if rng.random() < 0.1 else f"{rng.normal(3.0, 2.0):.6f}"
        y = "NA" if rng.random() < 0.02 else f"{rng.integers(-5, 50)}"
        colour = "violet" if i == n - 3 else colours[rng.integers(0, 4)] if rng.random() > 0.05 else ""
        when = f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}"
        flag = ["yes", "no"][rng.integers(0, 2)]
        label = "c" if i == n - 1 else ["a", "b"][rng.integers(0, 2)]   # a class in the last shard only
        rows.append(f"{x},{y},{colour},{when},{flag},id{i * 7919 % 1000},{label}")
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize("ranks", [2, 3])
@pytest.mark.parametrize("impute", ["median", "mean"])
def test_shards_fit_the_schema_one_process_fits(tmp_path, ranks, impute):
    path = write(tmp_path, _mixed_csv(np.random.default_rng(ranks), 301))
    options = dict(target="label", impute=impute, validation_fraction=0.2, seed=4)
    one = D.prepare_training(D.read_csv(path), **options)

    def prepare(comm):
        table, sha, note = read_shard(comm, path, {"header": True})
        data = D.prepare_training(table, stats=ShardStats(comm), **options)
        return table, sha, note, data
    got = on_ranks(ranks, prepare)
    for g in got:
        assert not isinstance(g, Exception), g
    tables = [g[0] for g in got]
    assert all(g[2] == f"each of {ranks} ranks read its byte range of {path}" for g in got)
    assert all(g[1] == D.read_csv(path).sha256 for g in got)
    # Each rank holds its own rows, in file order, with the file's line numbers.
    lines = np.concatenate([t.line_numbers for t in tables])
    assert lines.tolist() == list(range(2, 303)) and min(t.n_rows for t in tables) > 50
    for _, _, _, data in got:
        assert data.schema.classes == ["a", "b", "c"]
        assert [ic.kind for ic in data.schema.inputs] == ["numeric", "numeric", "categorical",
                                                          "date", "boolean"]
        assert data.schema.ignored == one.schema.ignored == [
            {"name": "name", "reason": "identifier-like: 301 distinct values in 301 rows"}]
        # medians exactly; means, standard deviations (and mean fills) to rounding
        assert_same_schema(data.schema, one.schema,
                           ("mean", "std") + (("impute",) if impute == "mean" else ()))
    # The split is the global one; X is every rank's rows of one process's X.
    X = np.concatenate([d.X for *_, d in got])
    np.testing.assert_allclose(X, one.X, rtol=1e-12, atol=1e-12)
    offsets = np.cumsum([0] + [len(d.X) for *_, d in got])
    val = np.concatenate([d.val_rows + o for (*_, d), o in zip(got, offsets)])
    assert val.tolist() == one.val_rows.tolist()
    assert sum(d.rows_without_target for *_, d in got) == ranks * one.rows_without_target


def test_a_column_all_missing_in_one_shard_takes_the_others_kind(tmp_path):
    rows = ["x,z,y"] + [f"{i},{i % 3},{i % 2}" for i in range(20)] + [f"{i},,{i % 2}" for i in range(20)]
    path = write(tmp_path, "\n".join(rows) + "\n")
    one = D.prepare_training(D.read_csv(path), target="y", impute="median")
    got = on_ranks(2, lambda comm: D.prepare_training(
        read_shard(comm, path, {"header": True})[0], stats=ShardStats(comm), target="y",
        impute="median"))
    for d in got:
        assert_same_schema(d.schema, one.schema)


@pytest.mark.parametrize("numbers", [10, 30])
def test_numbers_in_one_shard_and_words_in_another_read_as_one_process_reads_them(tmp_path, numbers):
    """More words than numbers over the whole column: categories; else numbers, and the
    words are errors — even where one shard holds only numbers and another only words."""
    rows = ["x,c,y"] + [f"{i},{i % 4},{i % 2}" for i in range(numbers)] + \
           [f"{i},k{i % 3},{i % 2}" for i in range(40 - numbers)]
    path = write(tmp_path, "\n".join(rows) + "\n")
    try:
        one = D.prepare_training(D.read_csv(path), target="y")
    except DataError as e:
        one = e
    got = on_ranks(3, lambda comm: agree(comm, lambda: D.prepare_training(
        read_shard(comm, path, {"header": True})[0], stats=ShardStats(comm), target="y")))
    if isinstance(one, DataError):
        assert "cannot read 'k0' as a number" in str(one)
        # every rank raises the error of the rank that met the words
        assert all(isinstance(g, DataError) and "cannot read 'k0' as a number" in str(g)
                   for g in got)
    else:
        assert one.schema.inputs[1].kind == "categorical"
        for d in got:
            assert_same_schema(d.schema, one.schema)


@pytest.mark.parametrize("spanning", [False, True])
def test_quoted_fields_are_cut_by_bytes_unless_one_holds_a_newline(tmp_path, spanning):
    rows = ['x,name,y'] + [f'{i},"n, {i % 3}",{i % 2}' for i in range(30)]
    if spanning:
        rows[20] = '19,"n,\n1",1'
    path = write(tmp_path, "\n".join(rows) + "\n")
    one = D.prepare_training(D.read_csv(path), target="y")
    got = on_ranks(2, lambda comm: read_shard(comm, path, {"header": True}))
    assert sum(t.n_rows for t, _, _ in got) == 30
    if spanning:   # the rank whose part holds it finds a line with an odd number of quotes
        assert [t.n_rows for t, _, _ in got] == [15, 15]
        assert got[1][2] == (f"every rank read all of {path} (a quoted field holds a newline) "
                             "and kept 1/2 of the rows")
        assert got[1][0].line_numbers[0] == 17
    else:
        assert got[1][2] == f"each of 2 ranks read its byte range of {path}"
    datas = on_ranks(2, lambda comm: D.prepare_training(
        read_shard(comm, path, {"header": True})[0], stats=ShardStats(comm), target="y"))
    assert_same_schema(datas[0].schema, one.schema)


@pytest.mark.parametrize("groups", [5, 1])
def test_a_parquet_file_is_shared_out_by_row_groups(tmp_path, groups):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa
    rng = np.random.default_rng(0)
    n = 100
    table = pa.table({"x": rng.normal(size=n), "c": [f"k{i % 7}" for i in range(n)],
                      "y": rng.integers(0, 2, n)})
    path = str(tmp_path / "t.parquet")
    pq.write_table(table, path, row_group_size=-(-n // groups))
    one = D.prepare_training(D.read_csv(path), target="y", validation_fraction=0.2, seed=1)
    got = on_ranks(2, lambda comm: read_shard(comm, path, {"header": True}))
    assert np.concatenate([t.line_numbers for t, _, _ in got]).tolist() == list(range(1, n + 1))
    assert got[0][1] == got[1][1] == D.read_csv(path).sha256
    assert got[1][2] == (f"each of 2 ranks read its row groups of {path}" if groups > 1 else
                         f"every rank read all of {path} (its 1 row group is fewer than the "
                         "ranks) and kept 1/2 of the rows")
    datas = on_ranks(2, lambda comm: D.prepare_training(
        read_shard(comm, path, {"header": True})[0], stats=ShardStats(comm), target="y",
        validation_fraction=0.2, seed=1))
    assert_same_schema(datas[1].schema, one.schema)
    np.testing.assert_allclose(np.concatenate([d.X for d in datas]), one.X, rtol=1e-12)


def test_a_bad_cell_in_one_shard_is_every_ranks_error_with_its_line(tmp_path):
    """The rank that meets it fails before the next exchange; the others learn of it there
    instead of waiting (nncli.distributed.agree turns it into one message)."""
    from nncli.distributed import PeerFailed
    rows = ["x,y"] + [f"{i},{i % 2}" for i in range(40)]
    rows[35] = "oops,1"
    path = write(tmp_path, "\n".join(rows) + "\n")
    with pytest.raises(DataError) as one:
        D.prepare_training(D.read_csv(path), target="y")

    def prepare(comm):
        table = read_shard(comm, path, {"header": True})[0]
        try:
            return D.prepare_training(table, stats=ShardStats(comm), target="y")
        except DataError as e:
            comm.allgather(((type(e), str(e)), None))   # what agree() sends
            return e
    got = on_ranks(2, prepare)
    assert isinstance(got[1], DataError) and str(got[1]) == str(one.value)
    assert ":36: column 'x'" in str(got[1])
    assert isinstance(got[0], PeerFailed) and got[0].errors[1][1] == str(one.value)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=9), min_size=2,
                max_size=4).filter(lambda parts: sum(map(len, parts)) > 0))
def test_the_combined_median_and_moments_are_numpys(parts):
    got = on_ranks(len(parts), lambda comm: (ShardStats(comm).median(np.array(parts[comm.rank])),
                                             ShardStats(comm).moments(np.array(parts[comm.rank]))))
    every = np.concatenate([np.array(p, np.float64) for p in parts])
    for median, (mean, std) in got:
        assert median == np.median(every)
        assert mean == pytest.approx(np.mean(every), rel=1e-12, abs=1e-9)
        assert std == pytest.approx(np.std(every), rel=1e-9, abs=1e-9)
