"""Compressed CSV and Parquet input: the same data gives the same model and predictions."""
import bz2
import gzip
import json
import lzma
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from nncli.cli import cli
from nncli.csvio import iter_csv_chunks, read_csv

TRAIN = ["--epochs", "3", "--layers", "5", "-q", "--seed", "3", "--ensemble", "1"]


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def _csv_bytes(n=400):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(n, 3))
    # Python floats: numpy 2 writes a numpy float's repr as 'np.float64(…)', which is text
    rows = [f"{a!r},{b!r},{c!r},{'yes' if a + b > 0 else 'no'}" for a, b, c in x.tolist()]
    return ("x1,x2,x3,label\n" + "\n".join(rows) + "\n").encode()


def _compress(fmt, raw):
    if fmt == "gz":
        return gzip.compress(raw)
    if fmt == "bz2":
        return bz2.compress(raw)
    if fmt == "xz":
        return lzma.compress(raw)
    zstandard = pytest.importorskip("zstandard")
    return zstandard.ZstdCompressor().compress(raw)


@pytest.fixture
def plain(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.csv").write_bytes(_csv_bytes())
    r = run("train", "d.csv", *TRAIN, "-o", "plain.npz")
    assert r.exit_code == 0, r.output
    return tmp_path


def _phi(path):
    with np.load(path) as z:
        return z["phi"].copy()


@pytest.mark.parametrize("fmt", ["gz", "bz2", "xz", "zst"])
def test_a_compressed_csv_trains_the_same_model_by_name_and_on_stdin(plain, fmt):
    raw = (plain / "d.csv").read_bytes()
    packed = _compress(fmt, raw)
    (plain / f"d.csv.{fmt}").write_bytes(packed)
    r = run("train", f"d.csv.{fmt}", *TRAIN, "-o", "named.npz")
    assert r.exit_code == 0, r.output
    assert np.array_equal(_phi("named.npz"), _phi("plain.npz"))
    # stdin: recognised by its magic bytes
    r = run("train", "-", *TRAIN, "-o", "piped.npz", input=packed)
    assert r.exit_code == 0, r.output
    assert np.array_equal(_phi("piped.npz"), _phi("plain.npz"))
    # the digest is that of the CSV, however it is stored
    assert read_csv(f"d.csv.{fmt}").sha256 == read_csv("d.csv").sha256
    a = run("predict", "plain.npz", f"d.csv.{fmt}")
    b = run("predict", "plain.npz", "d.csv")
    assert a.exit_code == 0 and a.output == b.output
    e = run("evaluate", "plain.npz", "-", "--json", input=packed)
    assert e.exit_code == 0 and e.output == run("evaluate", "plain.npz", "d.csv", "--json").output


def test_a_truncated_compressed_file_is_one_line_error(plain):
    (plain / "t.csv.gz").write_bytes(gzip.compress((plain / "d.csv").read_bytes())[:300])
    r = run("train", "t.csv.gz", *TRAIN)
    assert r.exit_code == 1
    assert "t.csv.gz: the gzip data is damaged or truncated" in r.output


def _write_parquet(plain, name="d.parquet", row_group_size=90):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    t = read_csv("d.csv")
    table = pa.table({n: (c.values if not c.is_text else c.text) for n, c in zip(t.names, t.columns)})
    pq.write_table(table, str(plain / name), row_group_size=row_group_size)
    return name


def test_parquet_trains_predicts_and_evaluates_as_the_csv(plain):
    name = _write_parquet(plain)
    r = run("train", name, *TRAIN, "-o", "pq.npz")
    assert r.exit_code == 0, r.output
    assert np.array_equal(_phi("pq.npz"), _phi("plain.npz"))
    assert run("predict", "plain.npz", name).output == run("predict", "plain.npz", "d.csv").output
    e = run("evaluate", "plain.npz", name, "--json")
    assert e.exit_code == 0
    # row groups of 90 are 90-row batches through the float32 network, the CSV one of 400:
    # the log loss agrees to float32 rounding, everything else exactly
    ours, theirs = (json.loads(o) for o in (e.output, run("evaluate", "plain.npz", "d.csv",
                                                             "--json").output))
    assert ours.pop("log_loss") == pytest.approx(theirs.pop("log_loss"), rel=1e-6)
    assert ours == theirs
    # read by row groups: chunks never mix groups, and every row comes once
    sizes = [t.n_rows for t in iter_csv_chunks(name, chunk_rows=1000)]
    assert sum(sizes) == 400 and max(sizes) <= 90


def test_parquet_without_pyarrow_says_which_extra_to_install(plain, monkeypatch):
    name = _write_parquet(plain)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)   # import fails
    r = run("train", name, *TRAIN)
    assert r.exit_code == 2
    assert "pip install 'nncli[parquet]'" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_zstd_without_zstandard_says_which_extra_to_install(plain, monkeypatch):
    raw = (plain / "d.csv").read_bytes()
    (plain / "d.csv.zst").write_bytes(_compress("zst", raw))
    monkeypatch.setitem(sys.modules, "zstandard", None)
    r = run("train", "d.csv.zst", *TRAIN)
    assert r.exit_code == 2 and "pip install 'nncli[zstd]'" in r.output


def test_parquet_piped_on_stdin_is_refused_in_one_line(plain):
    name = _write_parquet(plain)
    r = run("predict", "plain.npz", "-", input=(plain / name).read_bytes())
    assert r.exit_code == 1 and "Parquet file" in r.output
