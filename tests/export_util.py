"""Shared by the export tests: a mixed CSV, training through the CLI, predict's reference values."""
import numpy as np
from click.testing import CliRunner

from nncli.cli import cli
from nncli.data import read_csv
from nncli.model_io import load_model
from nncli.predicting import predict_chunk

TRAIN = ["--epochs", "3", "--layers", "5", "-q", "--val-split", "0", "--seed", "3", "--ensemble", "1"]


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def write_mixed_csv(path, n=90, seed=0, missing=True, extra_rows=()):
    """Numeric, categorical and boolean inputs (with missing cells), a text class `y`,
    an integer class `k` and a numeric target `r`."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(50, 20, n), rng.normal(-1, 0.5, n)
    color = rng.choice(["red", "green", "blue"], n)
    flag = rng.choice(["yes", "no", "True", "FALSE"], n)
    lines = ["x1,x2,color,flag,y,k,r"]
    for i in range(n):
        y = "hi" if x1[i] / 20 + (color[i] == "red") + x2[i] > 2 else "lo"
        k = int(x1[i] > 50) + int(color[i] == "blue")
        r = x1[i] * 0.05 + x2[i] * 2 + (color[i] == "blue") + (flag[i] in ("yes", "True"))
        a, c, f = f"{x1[i]:.4f}", color[i], flag[i]
        if missing and i % 11 == 3:
            a = ["", "NA", "nan"][i % 3]
        if missing and i % 13 == 5:
            c = ["NA", "", "null"][i % 3]
        if missing and i % 17 == 7:
            f = "Null"
        lines.append(f"{a},{x2[i]:.4f},{c},{f},{y},{k},{r:.4f}")
    lines += list(extra_rows)
    path.write_text("\n".join(lines) + "\n")
    return path


def train(csv, out, *args):
    r = run("train", csv, *TRAIN, "-o", out, *args)
    assert r.exit_code == 0, r.output
    return out


def reference(model_path, csv, proba=True):
    """predict's output columns for every row of csv, as `nncli predict` computes them."""
    model = load_model(model_path)
    return predict_chunk(model.network, model.schema, read_csv(str(csv)), proba=proba)


def column_cells(csv):
    """{column name: (stripped text cells, numbers with NaN where missing)}."""
    table = read_csv(str(csv))
    out = {}
    for name in table.names:
        col = table.column(name)
        values, _ = col.as_numbers()
        out[name] = ([s.strip() for s in col.as_text()], values)
    return out


def max_relative(got, want, floor=1e-6):
    """max |got − want| / max(|want|, floor) over the finite entries (both NaN elsewhere)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    if not ok.any():
        return 0.0
    return float(np.max(np.abs(got[ok] - want[ok]) / np.maximum(np.abs(want[ok]), floor)))
