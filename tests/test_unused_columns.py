"""predict and evaluate step over the columns a model does not use, unread."""
import numpy as np
from click.testing import CliRunner

from nncli._kernels import csvparse
from nncli.cli import cli
from nncli.csvio import iter_csv_chunks


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def test_the_kernel_skips_unused_fields_and_stops_at_a_quote_in_one():
    data = b"1,some text,2\n3,more,4\n5,\"q,x\",6\n"
    out = np.full((3, 4), -1.0)
    lines = np.zeros(4, np.int64)
    skip = np.array([0, 1, 0], np.uint8)
    pos, row, line, status = csvparse.parse_numeric(data, 0, len(data), ord(","), out, lines,
                                                    0, 4, 1, skip)
    assert row == 2 and status == csvparse.FAIL and data[pos:pos + 1] == b"5"
    assert out[0, :2].tolist() == [1, 3] and out[2, :2].tolist() == [2, 4]
    assert np.isnan(out[1, :2]).all()
    # without the mask the text stops the kernel at once
    _, row, _, status = csvparse.parse_numeric(data, 0, len(data), ord(","), out, lines, 0, 4, 1)
    assert row == 0 and status == csvparse.FAIL


def test_unused_columns_read_as_missing_and_used_ones_as_always(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('a,note,b\n1,hello,2\n3,"quoted, with comma",4\n5,x,6\n')
    [t] = list(iter_csv_chunks(str(path), use_columns={"a", "b"}))
    assert t.column("a").values.tolist() == [1, 3, 5] and t.column("b").values.tolist() == [2, 4, 6]
    assert np.isnan(t.column("note").values).all()
    [t] = list(iter_csv_chunks(str(path)))   # by default everything is read
    assert t.column("note").text == ["hello", "quoted, with comma", "x"]


def test_predict_and_evaluate_give_the_same_results_with_an_unused_text_column(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 3)).tolist()
    label = ["up" if a + b > 0 else "down" for a, b, _ in x]
    plain = "x1,x2,x3,label\n" + "".join(f"{a!r},{b!r},{c!r},{y}\n" for (a, b, c), y in zip(x, label))
    noisy = "x1,comment,x2,x3,label\n" + "".join(
        f"{a!r},\"free text, {i}\",{b!r},{c!r},{y}\n" if i % 7 == 0 else f"{a!r},word{i},{b!r},{c!r},{y}\n"
        for i, ((a, b, c), y) in enumerate(zip(x, label)))
    (tmp_path / "plain.csv").write_text(plain)
    (tmp_path / "noisy.csv").write_text(noisy)
    assert run("train", "plain.csv", "--epochs", "3", "-q", "-o", "m.npz").exit_code == 0
    a, b = run("predict", "m.npz", "plain.csv", "--proba"), run("predict", "m.npz", "noisy.csv", "--proba")
    assert a.exit_code == 0 and b.exit_code == 0 and a.output == b.output
    a, b = run("evaluate", "m.npz", "plain.csv", "--json"), run("evaluate", "m.npz", "noisy.csv", "--json")
    assert a.exit_code == 0 and a.output == b.output
