"""Tests for nncli.data (CSV reading, encoding, schema, splits). Fast: no kernels needed."""

import io
import json
import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nncli.data import (
    Schema,
    decode_outputs,
    encode_features,
    encode_targets,
    iter_csv_chunks,
    labels_from_proba,
    prepare_training,
    read_csv,
    stratified_split,
)
from nncli.errors import ConfigError, DataError, ModelFileError

DATA = os.path.join(os.path.dirname(__file__), os.pardir, "data")


def csv_bytes(text: str) -> io.BytesIO:
    return io.BytesIO(text.encode("utf-8"))


def write(tmp_path, text, name="t.csv", mode="w"):
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8", newline="")
    return p


def err(exc_type, fn, *args, **kw) -> str:
    with pytest.raises(exc_type) as info:
        fn(*args, **kw)
    return str(info.value)


def numbers(table, name):
    return table.column(name).as_numbers()[0].tolist()


# --------------------------------------------------------------------------- reading


def test_read_simple_file(tmp_path):
    p = write(tmp_path, "a,b,c\n1,2,x\n3.5,-4e2,y\n")
    t = read_csv(p)
    assert t.names == ["a", "b", "c"]
    assert t.sep == ","
    assert t.n_rows == 2
    assert numbers(t, "a") == [1.0, 3.5]
    assert numbers(t, "b") == [2.0, -400.0]
    assert t.column("c").as_text() == ["x", "y"]
    assert t.line_numbers.tolist() == [2, 3]
    assert t.source == str(p)
    assert t.has_header and t.named


def test_sha256_of_bytes_read(tmp_path):
    import hashlib

    raw = b"\xef\xbb\xbfa,b\r\n1,2\r\n"
    t = read_csv(write(tmp_path, raw))
    assert t.sha256 == hashlib.sha256(raw).hexdigest()


def test_bom_and_crlf():
    t = read_csv(io.BytesIO(b"\xef\xbb\xbfx,y\r\n1,2\r\n3,4\r\n"))
    assert t.names == ["x", "y"]
    assert numbers(t, "y") == [2.0, 4.0]
    assert t.line_numbers.tolist() == [2, 3]


def test_quoting_with_separators_and_newlines():
    text = 'id,note,v\n1,"a, b",1.5\n2,"two\nlines ""quoted""",2.5\n3,plain,3.5\n'
    t = read_csv(csv_bytes(text))
    assert t.column("note").as_text() == ["a, b", 'two\nlines "quoted"', "plain"]
    assert numbers(t, "v") == [1.5, 2.5, 3.5]
    # the record after the two-line one starts on line 5
    assert t.line_numbers.tolist() == [2, 3, 5]


def test_error_after_multiline_record_has_right_line():
    text = 'note,v\n"x\ny\nz",1\nok,oops\nfine,3\nfine,4\n'
    msg = err(DataError, lambda: prepare_training(read_csv(csv_bytes(text)), target="v",
                                                  task="regression"))
    assert "<stream>:5: column 'v' (2): cannot read 'oops' as a number" in msg


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_separator_detection(sep):
    text = sep.join(["a", "b", "c"]) + "\n" + sep.join(["1", "2", "3"]) + "\n"
    t = read_csv(csv_bytes(text))
    assert t.sep == sep
    assert t.names == ["a", "b", "c"]


def test_semicolon_with_decimal_commas_is_detected():
    t = read_csv(csv_bytes('a;b\n"1,5";2\n"3,5";4\n'))
    assert t.sep == ";"
    assert t.column("a").as_text() == ["1,5", "3,5"]


def test_separator_inside_quotes_does_not_count():
    t = read_csv(csv_bytes('"x;y",b\n"1;2",3\n'))
    assert t.sep == ","
    assert t.names == ["x;y", "b"]


def test_explicit_separator_and_bad_separator():
    t = read_csv(csv_bytes("a|b\n1|2\n"), sep="|")
    assert t.names == ["a", "b"]
    assert "separator" in err(ConfigError, read_csv, csv_bytes("a\n1\n"), sep=";;")


def test_stdin(monkeypatch):
    class FakeStdin:
        buffer = io.BytesIO(b"a,b\n1,2\n")

    monkeypatch.setattr("sys.stdin", FakeStdin)
    t = read_csv("-")
    assert t.source == "<stdin>"
    assert numbers(t, "b") == [2.0]
    FakeStdin.buffer = io.BytesIO(b"a,b\n1,x\n2,3\n")
    msg = err(DataError, lambda: prepare_training(read_csv("-"), task="regression"))
    assert msg.startswith("<stdin>:2: column 'b' (2)")


def test_no_header_default_and_given_names():
    t = read_csv(csv_bytes("1,2\n3,4\n"), header=False)
    assert t.names == ["c1", "c2"] and not t.named
    assert t.line_numbers.tolist() == [1, 2]
    t = read_csv(csv_bytes("1,2\n3,4\n"), header=False, columns=["p", "q"])
    assert t.names == ["p", "q"] and t.named
    assert "2 column names" in err(ConfigError, read_csv, csv_bytes("1,2,3\n"), header=False,
                                   columns=["p", "q"])


def test_blank_lines_are_skipped():
    t = read_csv(csv_bytes("a,b\n\n1,2\n\n3,4\n\n"))
    assert t.line_numbers.tolist() == [3, 5]


def test_missing_file_and_directory(tmp_path):
    assert "cannot open" in err(DataError, read_csv, tmp_path / "nope.csv")
    assert "directory" in err(DataError, read_csv, tmp_path)


@pytest.mark.parametrize(
    "raw, words",
    [
        (b"", ["t.csv: the file is empty"]),
        (b"\n\n", ["the file is empty"]),
        (b"a,b,c\n", ["t.csv: has a header but no data rows"]),
        (b"a,b,c\n1,2,3\n4,5\n", ["t.csv:3:", "expected 3 fields", "found 2"]),
        (b"a,b\n1,2\n3,4,5\n", ["t.csv:3:", "expected 2 fields", "found 3"]),
        (b"a,b\n1,2\n3,\xe9\n", ["t.csv:3:", "not valid UTF-8"]),
        (b"a,b\n1,2\n\x89PNG\x00\x00", ["t.csv:3:", "looks like a binary file, not CSV"]),
        (b"a,b,a\n1,2,3\n", ["t.csv:1:", "duplicate column name 'a'", "columns 1 and 3"]),
        (b"a,,c\n1,2,3\n", ["t.csv:1:", "column 2 has an empty name"]),
        (b'a,b\n1,"2\n', ["t.csv:2:", "malformed CSV"]),
    ],
)
def test_read_errors(tmp_path, raw, words):
    p = write(tmp_path, raw)
    msg = err(DataError, read_csv, p)
    for w in words:
        assert w in msg, msg


def test_other_encoding():
    t = read_csv(io.BytesIO("name,v\nJosé,1\n".encode("latin-1")), encoding="latin-1")
    assert t.column("name").as_text() == ["José"]
    assert "not supported" in err(ConfigError, read_csv, csv_bytes("a\n1\n"), encoding="utf-16")


def test_keep_text_keeps_exact_cells():
    t = read_csv(csv_bytes("id,v\n007,1\n010,2\n"), keep_text=["id"])
    assert t.column("id").as_text() == ["007", "010"]
    t = read_csv(csv_bytes("id,v\n007,1\n010,2\n"))
    assert t.column("id").as_text() == ["7", "10"]  # canonical numbers otherwise


# --------------------------------------------------------------------------- chunks


def _table_rows(t):
    return [tuple(c.as_text()[r] for c in t.columns) for r in range(t.n_rows)]


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 7, 1000])
def test_chunks_equal_whole(chunk_rows):
    text = 'a,b,c\n1,x,2\n"3",y,4\n5,"z\nz",6\n\n7,w,8.5\n9,v,1e3\n'
    whole = read_csv(csv_bytes(text))
    chunks = list(iter_csv_chunks(csv_bytes(text), chunk_rows=chunk_rows))
    assert all(0 < c.n_rows <= chunk_rows for c in chunks)
    assert all(c.names == whole.names for c in chunks)
    rows = [r for c in chunks for r in _table_rows(c)]
    assert rows == _table_rows(whole)
    lines = np.concatenate([c.line_numbers for c in chunks])
    assert lines.tolist() == whole.line_numbers.tolist() == [2, 3, 4, 7, 8]
    assert chunks[-1].sha256 == whole.sha256 and chunks[0].sha256 is None or len(chunks) == 1


def test_chunks_of_large_numeric_file(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3000, 4))
    p = write(tmp_path, "a,b,c,d\n" + "".join(",".join(map(repr, r)) + "\n" for r in a.tolist()))
    whole = read_csv(p)
    parts = list(iter_csv_chunks(p, chunk_rows=1024))
    assert [c.n_rows for c in parts] == [1024, 1024, 952]
    for name in "abcd":
        got = np.concatenate([c.column(name).values for c in parts])
        assert np.array_equal(got, whole.column(name).values)
    assert whole.line_numbers.tolist() == list(range(2, 3002))


def test_chunks_header_only_and_bad_chunk_rows():
    assert "no data rows" in err(DataError, lambda: list(iter_csv_chunks(csv_bytes("a,b\n"))))
    assert "chunk_rows" in err(ConfigError, lambda: list(iter_csv_chunks(csv_bytes("a\n1\n"),
                                                                         chunk_rows=0)))


def test_large_file_crosses_block_boundaries(tmp_path):
    # > 2 MiB so the reader cuts pieces; a quoted newline and a bad cell deep inside
    n = 120_000
    lines = [f"{i},{i * 0.5},lbl{i % 3}" for i in range(n)]
    lines[100_000] = '100000,50000.0,"multi\nline"'
    lines[110_000] = "110000,oops,lbl2"
    p = write(tmp_path, "i,v,s\n" + "\n".join(lines) + "\n")
    t = read_csv(p)
    assert t.n_rows == n
    assert t.line_numbers[100_001] == 100_004  # line after the two-line record
    msg = err(DataError, prepare_training, t, target="i", features=["v"], task="regression")
    assert f":{110_000 + 3}: column 'v' (2): cannot read 'oops' as a number" in msg


# --------------------------------------------------------------------------- columns and tasks


def test_default_target_is_last_and_features_the_rest():
    t = read_csv(csv_bytes("a,b,y\n1,2,0.5\n3,4,1.5\n5,6,2.5\n"))
    d = prepare_training(t, standardize=False)
    assert d.task == "regression"
    assert d.schema.target_names == ["y"]
    assert d.feature_names == ["a", "b"]
    assert d.X.tolist() == [[1, 2], [3, 4], [5, 6]]
    assert d.Y.tolist() == [[0.5], [1.5], [2.5]]
    assert d.X.flags.c_contiguous and d.X.dtype == np.float64


def test_target_features_drop_and_id_by_name_and_index():
    t = read_csv(csv_bytes("id,a,b,c,y\nr1,1,2,3,0.1\nr2,4,5,6,0.2\nr3,7,8,9,0.7\n"))
    d = prepare_training(t, target=-1, drop=["b"], id_column=0, standardize=False)
    assert d.feature_names == ["a", "c"]
    assert d.ids == ["r1", "r2", "r3"]
    assert d.schema.id_column == "id"
    d = prepare_training(t, target="a", features=["c", 2], id_column="id", standardize=False)
    assert d.feature_names == ["c", "b"]
    assert d.schema.target_names == ["a"]


def test_unknown_columns_list_available():
    t = read_csv(csv_bytes("a,b,y\n1,2,3\n"))
    msg = err(DataError, prepare_training, t, target="z")
    assert "no column named 'z'" in msg and "'a', 'b', 'y'" in msg
    assert "no column 7" in err(DataError, prepare_training, t, features=[7])


def test_contradictory_options():
    t = read_csv(csv_bytes("id,a,y\n1,2,3\n2,3,4\n"))
    assert "target" in err(ConfigError, prepare_training, t, target="y", features=["a", "y"])
    assert "id" in err(ConfigError, prepare_training, t, id_column="a", features=["a"])
    assert "id" in err(ConfigError, prepare_training, t, id_column="y", target="y")
    assert "feature" in err(ConfigError, prepare_training, t, target="y", drop=["id", "a"])
    assert "task" in err(ConfigError, prepare_training, t, task="clustering")
    assert "impute" in err(ConfigError, prepare_training, t, impute="zero")
    assert "reconstruct" in err(ConfigError, prepare_training, t, task="reconstruct", target="y")


def test_multi_output_regression_and_classification_conflict():
    t = read_csv(csv_bytes("a,y1,y2\n1,2,3\n2,4,7\n3,6,8\n"))
    d = prepare_training(t, target=["y1", "y2"], standardize=False)
    assert d.task == "regression" and d.Y.shape == (3, 2)
    assert d.Y.tolist() == [[2, 3], [4, 7], [6, 8]]
    assert "several targets" in err(ConfigError, prepare_training, t, target=["y1", "y2"],
                                    task="classification")


@pytest.mark.parametrize(
    "values, task",
    [
        (["cat", "dog", "cat", "dog"], "classification"),
        (["true", "false", "True", "false"], "classification"),
        (["1", "0", "1", "0"], "classification"),
        (["0.5", "1.5", "2", "3"], "regression"),
        ([str(i) for i in range(4)], "regression"),  # as many values as rows
        ([str(i % 25) for i in range(100)], "regression"),  # > 20 distinct
        ([str(i % 20) for i in range(100)], "classification"),
    ],
)
def test_task_inference(values, task):
    text = "x,y\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values))
    assert prepare_training(read_csv(csv_bytes(text))).task == task


def test_classification_classes_and_one_hot():
    t = read_csv(csv_bytes("x,y\n1,dog\n2,cat\n3,emu\n4,cat\n"))
    d = prepare_training(t)
    assert d.schema.classes == ["cat", "dog", "emu"]
    assert d.Y.tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 1], [1, 0, 0]]
    assert d.labels.tolist() == [1, 0, 2, 0]
    assert d.schema.n_outputs == 3


def test_numeric_class_labels_in_numeric_order():
    t = read_csv(csv_bytes("x,y\n" + "".join(f"{i},{c}\n" for i, c in enumerate([10, 2, 10, 2, 1, 1]))))
    d = prepare_training(t, task="classification")
    assert d.schema.classes == ["1", "2", "10"]
    assert d.schema.target_kind == "numeric"
    assert d.labels.tolist() == [2, 1, 2, 1, 0, 0]


def test_one_class_is_an_error():
    t = read_csv(csv_bytes("x,y\n1,a\n2,a\n"))
    assert "only one class" in err(DataError, prepare_training, t)


def test_text_target_cannot_be_regression():
    t = read_csv(csv_bytes("x,y\n1,a\n2,b\n"))
    msg = err(DataError, prepare_training, t, task="regression")
    assert "<stream>:2: column 'y' (2)" in msg and "numeric" in msg


def test_reconstruct_target_is_inputs():
    t = read_csv(csv_bytes("a,b,c\n1,x,2\n3,y,4\n"))
    d = prepare_training(t, task="reconstruct")
    assert d.Y is d.X
    assert d.schema.target_names == ["a", "b", "c"]
    assert d.schema.n_outputs == d.schema.n_features == 4


# --------------------------------------------------------------------------- encoding


def test_standardisation_and_constant_column():
    t = read_csv(csv_bytes("a,k,y\n1,5,0\n2,5,10\n3,5,20\n"))
    d = prepare_training(t)
    a = d.schema.inputs[0]
    assert a.mean == 2.0 and a.std == pytest.approx(math.sqrt(2 / 3))
    assert d.X[:, 0] == pytest.approx([-1.2247449, 0, 1.2247449])
    k = d.schema.inputs[1]
    assert (k.mean, k.std) == (5.0, 1.0)
    assert d.X[:, 1].tolist() == [0.0, 0.0, 0.0]
    assert d.schema.target_mean == [10.0]
    assert d.Y[:, 0] == pytest.approx([-1.2247449, 0, 1.2247449])
    assert decode_outputs(d.Y, d.schema)[:, 0] == pytest.approx([0, 10, 20])


def test_one_hot_and_booleans():
    t = read_csv(csv_bytes("color,flag,y\nred,yes,1.5\nblue,no,2\n green ,YES,3\nred,no,4\n"))
    d = prepare_training(t, standardize=False)
    assert d.feature_names == ["color=blue", "color=green", "color=red", "flag"]
    assert d.X.tolist() == [[0, 0, 1, 1], [1, 0, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0]]
    assert d.schema.inputs[0].vocabulary == ["blue", "green", "red"]
    assert d.schema.inputs[1].kind == "boolean"


def test_mostly_numeric_column_with_typo_is_an_error_mostly_text_is_categorical():
    t = read_csv(csv_bytes("a,y\n1,1\n2,2\nthree,3\n4,4\n"))
    msg = err(DataError, prepare_training, t)
    assert msg == "<stream>:4: column 'a' (1): cannot read 'three' as a number"
    t = read_csv(csv_bytes("a,y\nS,1\nM,2\n10,3\nL,4\n"))
    d = prepare_training(t, standardize=False)
    assert d.schema.inputs[0].vocabulary == ["10", "L", "M", "S"]


@pytest.mark.parametrize("cell", ["", "NA", "nan", "NaN", "null", "NULL", "inf", "-inf"])
def test_missing_values_are_errors_by_default(cell):
    t = read_csv(csv_bytes(f"a,b,y\n1,2,3\n4,{cell},6\n7,8,9\n"))
    msg = err(DataError, prepare_training, t)
    assert msg.startswith("<stream>:3: column 'b' (2): missing value")
    assert "--impute" in msg


def test_impute_mean_median_and_drop():
    text = "a,c,y\n1,x,10\nNA,y,20\n3,,30\n8,x,40\n"
    t = read_csv(csv_bytes(text))
    d = prepare_training(t, impute="mean", standardize=False)
    assert d.X[:, 0].tolist() == [1, 4, 3, 8]
    assert d.schema.inputs[0].impute == 4.0
    assert d.schema.inputs[1].impute == "x"  # categorical: most frequent
    assert d.X[2, 1:].tolist() == [1, 0]
    d = prepare_training(t, impute="median", standardize=False)
    assert d.X[:, 0].tolist() == [1, 3, 3, 8]
    d = prepare_training(t, impute="drop", standardize=False)
    assert d.X[:, 0].tolist() == [1, 8]
    assert d.line_numbers.tolist() == [2, 5]
    # A 'drop' model never saw a gap, so it has no fill: new data with one is an error
    # (naming the cell), not a silent mean-fill; complete rows encode as in training.
    assert d.schema.inputs[0].impute is None and d.schema.inputs[1].impute is None
    msg = err(DataError, encode_features, read_csv(csv_bytes("a,c\nNA,\n2,y\n")), d.schema)
    assert msg.startswith("<stream>:2: column 'a' (1): missing value")
    X = encode_features(read_csv(csv_bytes("a,c\n2,y\n")), d.schema)
    assert X.tolist() == [[2, 0]]  # 'y' was dropped in training: unseen → zeros


def test_missing_target():
    t = read_csv(csv_bytes("a,y\n1,2\n2,\n3,4\n4,5\n"))
    msg = err(DataError, prepare_training, t)
    assert msg.startswith("<stream>:3: column 'y' (2): missing target value")
    for impute in ("drop", "mean", "median"):   # the row is left out, and counted
        d = prepare_training(t, impute=impute)
        assert d.X.shape == (3, 1) and d.rows_without_target == 1 and d.rows_dropped == 1
        assert d.line_numbers.tolist() == [2, 4, 5]


def test_float32_overflow_is_an_error():
    t = read_csv(csv_bytes("a,y\n1,2\n-5e38,3\n"))
    msg = err(DataError, prepare_training, t)
    assert msg.startswith("<stream>:3: column 'a' (1): -5e+38 is too large")


def test_prepare_training_on_example_files():
    d = prepare_training(read_csv(os.path.join(DATA, "iris.csv")))
    assert d.task == "classification" and d.X.shape == (150, 4)
    assert d.schema.classes == ["setosa", "versicolor", "virginica"]
    assert np.bincount(d.labels).tolist() == [50, 50, 50]
    d = prepare_training(read_csv(os.path.join(DATA, "xor.csv")), standardize=False)
    assert d.task == "classification" and d.X.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    for name, shape in [("curve", (200, 1)), ("three", (500, 3))]:
        d = prepare_training(read_csv(os.path.join(DATA, f"{name}.csv")))
        assert d.task == "regression" and d.X.shape == shape
    d = prepare_training(read_csv(os.path.join(DATA, "large.csv")))
    assert d.X.shape == (20000, 10) and d.schema.n_outputs == 3


# --------------------------------------------------------------------------- predict-time encoding


def _trained():
    text = "id,num,color,flag,y\na,1,red,true,x\nb,2,blue,false,y\nc,3,red,true,x\nd,6,blue,false,y\n"
    return prepare_training(read_csv(csv_bytes(text)), id_column="id")


def test_encode_features_reproduces_training_and_matches_by_name():
    d = _trained()
    text = "id,num,color,flag,y\na,1,red,true,x\nb,2,blue,false,y\nc,3,red,true,x\nd,6,blue,false,y\n"
    assert np.array_equal(encode_features(read_csv(csv_bytes(text)), d.schema), d.X)
    # other order, extra column, no target
    X = encode_features(read_csv(csv_bytes("extra,flag,color,num\nq,false,blue,2\n")), d.schema)
    assert np.array_equal(X, d.X[1:2])
    # unseen category: all zeros
    X = encode_features(read_csv(csv_bytes("num,color,flag\n2,green,no\n")), d.schema)
    assert X[0, 1:3].tolist() == [0, 0]


def test_encode_features_missing_columns_named():
    d = _trained()
    msg = err(DataError, encode_features, read_csv(csv_bytes("num,other\n1,2\n")), d.schema)
    assert "missing column(s)" in msg and "'color'" in msg and "'flag'" in msg


def test_encode_features_without_header_by_position():
    d = _trained()
    full = read_csv(csv_bytes("b,2,blue,false,y\n"), header=False)
    assert np.array_equal(encode_features(full, d.schema), d.X[1:2])
    inputs_only = read_csv(csv_bytes("2,blue,false\n"), header=False)
    assert np.array_equal(encode_features(inputs_only, d.schema), d.X[1:2])
    msg = err(DataError, encode_features, read_csv(csv_bytes("2,blue\n"), header=False), d.schema)
    assert "without a header" in msg


def test_encode_features_errors_name_cells():
    d = _trained()
    msg = err(DataError, encode_features, read_csv(csv_bytes("num,color,flag\n1,red,true\n,red,true\n")),
              d.schema)
    assert msg.startswith("<stream>:3: column 'num' (1): missing value")
    msg = err(DataError, encode_features, read_csv(csv_bytes("num,color,flag\nx,red,true\n1,red,true\n2,red,no\n")),
              d.schema)
    assert msg.startswith("<stream>:2: column 'num' (1): cannot read 'x'")
    msg = err(DataError, encode_features, read_csv(csv_bytes("num,color,flag\n1,red,maybe\n")), d.schema)
    assert msg.startswith("<stream>:2: column 'flag' (3): expected true/false")


def test_encode_features_by_chunks_equals_whole():
    d = prepare_training(read_csv(os.path.join(DATA, "iris.csv")))
    parts = [encode_features(c, d.schema)
             for c in iter_csv_chunks(os.path.join(DATA, "iris.csv"), chunk_rows=40)]
    assert np.array_equal(np.vstack(parts), d.X)


def test_encode_targets_and_decode():
    d = _trained()
    t = read_csv(csv_bytes("num,color,flag,y\n1,red,true,y\n2,blue,false,x\n"))
    assert encode_targets(t, d.schema).tolist() == [[0, 1], [1, 0]]
    bad = read_csv(csv_bytes("num,color,flag,y\n1,red,true,y\n2,blue,false,z\n"))
    msg = err(DataError, encode_targets, bad, d.schema)
    assert msg.startswith("<stream>:3: column 'y' (4): unknown class 'z'")
    assert decode_outputs(np.array([[0.2, 0.8], [0.9, 0.1]]), d.schema).tolist() == ["y", "x"]
    assert labels_from_proba(np.array([[0.7], [0.2]]), d.schema).tolist() == ["y", "x"]


def test_encode_targets_regression_scaled():
    d = prepare_training(read_csv(csv_bytes("a,y\n1,10\n2,20\n3,30\n")))
    t = read_csv(csv_bytes("a,y\n5,20\n6,40\n"))
    Y = encode_targets(t, d.schema)
    assert decode_outputs(Y, d.schema)[:, 0] == pytest.approx([20, 40])
    assert encode_targets(t, d.schema, scaled=False)[:, 0].tolist() == [20, 40]


def test_numeric_class_labels_match_at_evaluate_time():
    d = prepare_training(read_csv(csv_bytes("x,y\n1,0\n2,1\n3,0\n4,1\n")))
    t = read_csv(csv_bytes("x,y\n1,1.0\n2,0\n"))
    assert encode_targets(t, d.schema).tolist() == [[0, 1], [1, 0]]


# --------------------------------------------------------------------------- schema


def test_schema_round_trip_through_json():
    for d in [_trained(),
              prepare_training(read_csv(csv_bytes("a,y1,y2\n1,2,3\n2,4,7\n3,6,8\n")),
                               target=["y1", "y2"], impute="median"),
              prepare_training(read_csv(csv_bytes("a,b\n1,2\n3,5\n")), task="reconstruct")]:
        dd = json.loads(json.dumps(d.schema.to_dict()))
        s = Schema.from_dict(dd)
        assert s == d.schema
        assert s.to_dict() == dd
        assert (s.n_features, s.n_outputs) == (d.X.shape[1], d.Y.shape[1])


def _mutations():
    def setter(path, value):
        def f(d):
            obj = d
            for k in path[:-1]:
                obj = obj[k]
            obj[path[-1]] = value
        return f

    def delete(path):
        def f(d):
            obj = d
            for k in path[:-1]:
                obj = obj[k]
            del obj[path[-1]]
        return f

    return [
        ("not a dict", lambda d: "schema"),
        ("version", setter(["version"], 99)),
        ("task", setter(["task"], "clustering")),
        ("lacks", delete(["inputs"])),
        ("unknown", setter(["surprise"], 1)),
        ("columns", setter(["columns"], ["id", "id"])),
        ("has_header", setter(["has_header"], "yes")),
        ("id_column", setter(["id_column"], "nope")),
        ("inputs", setter(["inputs"], [])),
        ("kind", setter(["inputs", 0, "kind"], "complex")),
        ("mean", setter(["inputs", 0, "mean"], "1.0")),
        ("mean", setter(["inputs", 0, "mean"], True)),
        ("std", setter(["inputs", 0, "std"], 0.0)),
        ("std", setter(["inputs", 0, "std"], float("nan"))),
        ("vocabulary", setter(["inputs", 1, "vocabulary"], [])),
        ("vocabulary", setter(["inputs", 1, "vocabulary"], ["a", 3])),
        ("impute", setter(["inputs", 1, "impute"], "purple")),
        ("not one of the columns", setter(["inputs", 0, "name"], "ghost")),
        ("classes", setter(["targets", "classes"], ["only"])),
        ("n_features", setter(["n_features"], 17)),
        ("n_outputs", setter(["n_outputs"], 1)),
        ("n_features", setter(["n_features"], True)),
        ("impute", setter(["impute"], "zero")),
        ("target", setter(["targets", "names"], ["num"])),
    ]


@pytest.mark.parametrize("word, mutate", _mutations())
def test_schema_from_dict_rejects_malformed(word, mutate):
    d = _trained().schema.to_dict()
    out = mutate(d)
    if out is not None:
        d = out
    msg = err(ModelFileError, Schema.from_dict, d)
    assert msg.startswith("model schema:")
    assert word in msg or word in ("not a dict", "lacks")


def test_schema_from_dict_rejects_bad_regression_scaling():
    d = prepare_training(read_csv(csv_bytes("a,y\n1,2\n2,3\n"))).schema.to_dict()
    d["targets"]["std"] = [1.0, 2.0]
    assert "targets.std" in err(ModelFileError, Schema.from_dict, d)


# --------------------------------------------------------------------------- splits


def test_stratified_split_keeps_class_proportions_and_is_deterministic():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    tr, va = stratified_split(labels, 100, 0.2, np.random.default_rng(3))
    assert len(va) == 20 and len(tr) == 80
    assert np.bincount(labels[va]).tolist() == [10, 6, 4]
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(100))
    tr2, va2 = stratified_split(labels, 100, 0.2, np.random.default_rng(3))
    assert np.array_equal(tr, tr2) and np.array_equal(va, va2)


def test_stratified_split_keeps_a_training_row_per_class():
    labels = np.array(["a", "b", "b", "c", "c", "c"])
    tr, va = stratified_split(labels, 6, 0.9, np.random.default_rng(0))
    assert set(labels[tr]) == {"a", "b", "c"}


def test_random_split_and_bad_fraction():
    tr, va = stratified_split(None, 10, 0.3, np.random.default_rng(0))
    assert len(va) == 3 and len(tr) == 7 and not set(tr) & set(va)
    tr, va = stratified_split(None, 1, 0.5, np.random.default_rng(0))
    assert tr.tolist() == [0] and va.tolist() == []
    assert "fraction" in err(ConfigError, stratified_split, None, 10, 1.0, np.random.default_rng(0))


# --------------------------------------------------------------------------- property


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 6).flatmap(lambda d: st.tuples(
        st.just(d),
        st.lists(st.lists(st.floats(-3e38, 3e38, allow_nan=False),
                          min_size=d, max_size=d), min_size=1, max_size=40),
        st.sampled_from([",", ";", "\t"]),
        st.booleans(),
    ))
)
def test_numeric_csv_round_trips_exactly(args):
    d, rows, sep, crlf = args
    nl = "\r\n" if crlf else "\n"
    names = [f"col{j}" for j in range(d + 1)]
    rows = [r + [float(i)] for i, r in enumerate(rows)]  # a distinct target per row
    text = sep.join(names) + nl + "".join(sep.join(map(repr, r)) + nl for r in rows)
    t = read_csv(csv_bytes(text))
    assert t.sep == sep or d == 0
    data = prepare_training(t, standardize=False, task="regression")
    expected = np.array(rows, dtype=np.float64)
    assert np.array_equal(data.X, expected[:, :-1])
    assert np.array_equal(data.Y[:, 0], expected[:, -1])
    assert data.line_numbers.tolist() == list(range(2, len(rows) + 2))


# --------------------------------------------------------------------------- number kernel

csvparse = pytest.importorskip("nncli._kernels.csvparse")


def kparse(data: bytes, ncols: int, cap: int = 16, sep: str = ",", line: int = 1):
    out = np.full((ncols, cap), -1.5)
    lines = np.zeros(cap, np.int64)
    pos, n, line_end, status = csvparse.parse_numeric(data, 0, len(data), ord(sep), out, lines,
                                                       0, cap, line)
    return out[:, :n].T.copy(), lines[:n].tolist(), pos, line_end, status


def bits(a):
    return np.asarray(a, np.float64).view(np.int64).tolist()


AWKWARD = [
    "0", "-0", "-0.0", "+0.0", "0.1", "0.2", "0.30000000000000004", "1e308", "-1e308",
    "1.7976931348623157e308", "1.7976931348623158e308", "1e309", "5e-324", "4.9e-324",
    "2.4703282292062328e-324", "2.4703282292062327e-324", "1e-400", "2.2250738585072014e-308",
    "2.2250738585072011e-308", "+1", ".5", "5.", "-.5e-3", "1E5", "1e+05", "1e-05", "00012",
    "9007199254740992", "9007199254740993", "9007199254740995", "18446744073709551615",
    "123456789012345678901234567890", "0.000000000000000000000000000001234567890123456789",
    "1e23", "8.98846567431158e307", "1e22", "1e37", "123e30", "9007199254740993e10",
    "0.12345678901234567", "-0.98765432109876543", "3.141592653589793238462643383279",
    "1.00000000000000011102230246251565404236316680908203125",
    "1.00000000000000011102230246251565404236316680908203124", "  7.25", "7.25\t",
]


def test_kernel_numbers_are_bit_for_bit_float():
    data = "\n".join(AWKWARD).encode() + b"\n"
    got, lines, pos, _, status = kparse(data, 1, cap=len(AWKWARD))
    assert status == csvparse.DONE and pos == len(data)
    assert bits(got[:, 0]) == bits([float(s) for s in AWKWARD])
    assert lines == list(range(1, len(AWKWARD) + 1))


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False),
       st.sampled_from(["{!r}", "{:.17g}", "{:.17e}", "{:.6e}", "{:.3f}", "{:.25f}", "{:.1g}", "{:.0f}"]))
def test_kernel_agrees_with_float_on_any_double(x, fmt):
    s = fmt.format(x)
    got = kparse(f"{s},{s}\n".encode(), 2)[0]
    assert bits(got[0]) == bits([float(s), float(s)])


@pytest.mark.parametrize("cell", ["inf", "-inf", "nan", "NaN", "NA", "null", "", " ", "1_000",
                                  "1e", "1e+", "+", "-", ".", "e5", "1.2.3", "--1", "0x10",
                                  '"1"', "1 2", "١", "1,5\x00"])
def test_kernel_routes_other_cells_to_the_csv_path(cell):
    data = f"1,2\n3,{cell}\n5,6\n".encode()
    got, lines, pos, line, status = kparse(data, 2)
    assert status == csvparse.FAIL
    assert got.tolist() == [[1.0, 2.0]] and lines == [1]
    assert pos == 4 and line == 2  # where the record it could not read starts


def test_kernel_field_counts_quotes_and_line_ends():
    for data in (b"1,2\n3\n", b"1,2\n3,4,5\n", b"1,2\n3,4,\n", b'1,2\n3,"4"\n', b"1,2\n3,4\r5\n"):
        assert kparse(data, 2)[2:] == (4, 2, csvparse.FAIL), data
    got, lines, pos, line, status = kparse(b"\n1;2\r\n\r\n\n3;4", 2, sep=";", line=10)
    assert got.tolist() == [[1.0, 2.0], [3.0, 4.0]] and lines == [11, 14]
    assert (pos, line, status) == (12, 15, csvparse.DONE)
    got, lines, pos, line, status = kparse(b"1\t2\n", 2, sep="\t")
    assert got.tolist() == [[1.0, 2.0]] and status == csvparse.DONE


def test_kernel_empty_block_one_row_and_full():
    assert kparse(b"", 3)[2:] == (0, 1, csvparse.DONE)
    got, lines, pos, line, status = kparse(b"-1.5e3", 1)
    assert got.tolist() == [[-1500.0]] and (pos, status) == (6, csvparse.DONE)
    got, lines, pos, line, status = kparse(b"1\n2\n3\n", 1, cap=2)
    assert got.tolist() == [[1.0], [2.0]] and (pos, line, status) == (4, 3, csvparse.FULL)
    with pytest.raises(ValueError):
        kparse(b"1.2\n", 1, sep=".")


def test_kernel_count_skip_and_restride():
    data = b'a\n"b\nc"\nd\n'
    assert csvparse.count_byte(data, 0, len(data), ord("\n")) == 4
    assert csvparse.skip_records(data, 0, len(data), 2) == 8
    assert csvparse.skip_records(data, 0, len(data), 9) == len(data)
    m = np.arange(12.0)
    csvparse.restride(m, 3, 2, 4, 2)  # (3 cols × stride 2) → stride 4
    assert m[[0, 1, 4, 5, 8, 9]].tolist() == [0, 1, 2, 3, 4, 5]
    csvparse.restride(m, 3, 4, 2, 2)
    assert m[:6].tolist() == [0, 1, 2, 3, 4, 5]


def test_mixed_fast_and_exact_records_read_like_float(tmp_path):
    rng = np.random.default_rng(3)
    a = rng.normal(size=(5000, 3)) * 10.0 ** rng.integers(-30, 30, size=(5000, 3))
    cells = [[repr(v) for v in r] for r in a.tolist()]
    cells[10][1] = "NA"
    cells[11][0] = " 2.5 "
    cells[3000][2] = '"7"'
    cells[4000][0] = "inf"
    text = "a,b,c\r\n" + "".join(",".join(r) + "\r\n" + ("\r\n" if i == 20 else "")
                                 for i, r in enumerate(cells))
    p = write(tmp_path, text)
    t = read_csv(p)
    expected = [[float(c.strip('"')) if c != "NA" else math.nan for c in r] for r in cells]
    got = np.column_stack([t.column(k).values for k in "abc"])
    assert np.array_equal(got, np.array(expected), equal_nan=True)
    assert t.line_numbers[20] == 22 and t.line_numbers[21] == 24
    parts = list(iter_csv_chunks(p, chunk_rows=999))
    assert [c.n_rows for c in parts] == [999] * 5 + [5]
    assert np.array_equal(np.concatenate([c.column("b").values for c in parts]),
                          t.column("b").values, equal_nan=True)
    assert np.concatenate([c.line_numbers for c in parts]).tolist() == t.line_numbers.tolist()


def test_prepare_training_matrix_is_c_contiguous_and_standardised(tmp_path):
    rng = np.random.default_rng(4)
    a = rng.normal(size=(300, 4))
    p = write(tmp_path, "a,b,c,y\n" + "".join(",".join(map(repr, r)) + "\n" for r in a.tolist()))
    d = prepare_training(read_csv(p), target="y")
    assert d.X.flags.c_contiguous and d.X.dtype == np.float64
    cols = [np.ascontiguousarray(a[:, k]) for k in range(4)]
    expected = np.column_stack([(c - c.mean()) / c.std() for c in cols])  # bit for bit
    assert np.array_equal(d.X, expected[:, :3])
    assert np.array_equal(d.Y[:, 0], expected[:, 3])


# --------------------------------------------------------------------------- #
# The validation split comes before the statistics
# --------------------------------------------------------------------------- #


def test_statistics_come_from_the_training_rows_only():
    rng = np.random.default_rng(0)
    n = 50
    x = rng.normal(0, 1, n)
    z = [("" if i % 7 == 0 else format(v, ".6g")) for i, v in enumerate(rng.normal(5, 2, n))]
    y = rng.normal(10, 3, n)
    text = "x,z,y\n" + "".join(f"{float(a)!r},{b},{float(c)!r}\n" for a, b, c in zip(x, z, y))
    d = prepare_training(read_csv(csv_bytes(text)), impute="mean", validation_fraction=0.3, seed=4)
    assert len(d.val_rows) == 15 and len(d.train_rows) == 35
    tr = d.train_rows
    zs = np.array([float(s) if s else np.nan for s in z])
    fill = np.nanmean(zs[tr])
    assert d.schema.inputs[0].mean == pytest.approx(x[tr].mean(), rel=1e-12)
    assert d.schema.inputs[0].std == pytest.approx(x[tr].std(), rel=1e-12)
    assert d.schema.inputs[1].impute == pytest.approx(fill, rel=1e-12)
    assert d.schema.inputs[1].mean == pytest.approx(np.where(np.isnan(zs[tr]), fill, zs[tr]).mean())
    assert d.schema.target_mean[0] == pytest.approx(y[tr].mean(), rel=1e-12)
    assert d.schema.target_mean[0] != pytest.approx(y.mean(), rel=1e-6)
    # Every row is encoded (validation rows with the training statistics).
    np.testing.assert_allclose(d.X[:, 0], (x - x[tr].mean()) / x[tr].std())


def test_the_split_is_decided_among_the_rows_kept(tmp_path):
    text = "a,b\n" + "".join(f"{i},{'' if i % 5 == 0 else i % 2}\n" for i in range(40))
    d = prepare_training(read_csv(csv_bytes(text)), impute="drop", task="classification",
                         validation_fraction=0.25, seed=1)
    assert len(d.X) == 32 and len(d.val_rows) == 8
    assert np.bincount(d.labels[d.val_rows]).tolist() == [4, 4]   # stratified


def test_encode_features_is_the_training_encoder(tmp_path):
    text = ("n,b,c,y\n1.5,yes,red,1\n,no,blue,2\n3.25,true,,1\n-2,false,red,2\n"
            "7,yes,green,1\n0.5,NA,blue,2\n")
    t = read_csv(csv_bytes(text))
    d = prepare_training(t, impute="median", target="y", validation_fraction=0.34, seed=2)
    np.testing.assert_array_equal(encode_features(t, d.schema), d.X)
