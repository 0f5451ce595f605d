"""nncli export --format c: the header compiles with cc -std=c99 -Wall -Werror -pedantic and its
<name>_predict gives what nncli predict gives (float: 1e-5 relative; --fixed: the stated bound)."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from export_util import max_relative, reference, run, train, write_mixed_csv

from nncli.data import encode_features, read_csv
from nncli.model_io import load_model

CC = shutil.which("cc")
pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler")
CFLAGS = ["-std=c99", "-Wall", "-Werror", "-pedantic", "-O1"]
DATA = os.path.join(os.path.dirname(__file__), "..", "data")
BOOL = {"true": 1.0, "yes": 1.0, "false": 0.0, "no": 0.0}
MISSING = {"", "na", "nan", "null"}

MAIN = r"""
#include <stdio.h>
#include "%(header)s"
/* rows of %(n_in)s floats on stdin ("nan" for missing) -> return value and outputs */
int main(void) {
    float in[%(n_in)s], out[%(n_out)s];
    int i, ret;
    for (;;) {
        for (i = 0; i < %(n_in)s; i++) if (scanf("%%f", &in[i]) != 1) return 0;
        ret = %(fn)s(in, out);
        printf("%%d", ret);
        for (i = 0; i < %(n_out)s; i++) printf(" %%.9g", out[i]);
        printf("\n");
    }
}
"""


def compile_and_run(tmp_path, header, name, rows, n_in, n_out, fn=None):
    src = tmp_path / f"main_{name}.c"
    src.write_text(MAIN % dict(header=header.name, n_in=n_in, n_out=n_out, fn=fn or f"{name}_predict"))
    exe = tmp_path / f"main_{name}"
    subprocess.run([CC, *CFLAGS, "-o", str(exe), str(src), "-lm"], check=True, cwd=tmp_path)
    text = "\n".join(" ".join("nan" if np.isnan(v) else repr(float(v)) for v in row) for row in rows)
    out = subprocess.run([str(exe)], input=text + "\n", capture_output=True, text=True, check=True)
    lines = [list(map(float, line.split())) for line in out.stdout.splitlines()]
    return np.array([int(l[0]) for l in lines]), np.array([l[1:] for l in lines])


def c_inputs(model_path, csv):
    """One float per input column, as the header documents: numbers, category indices,
    1/0 for booleans, NaN for missing."""
    schema = load_model(model_path).schema
    table = read_csv(str(csv))
    cols = []
    for c in schema.inputs:
        col = table.column(c.name)
        if c.kind == "numeric":
            cols.append(col.as_numbers()[0])
            continue
        text = [s.strip() for s in col.as_text()]
        if c.kind == "boolean":
            cols.append([np.nan if s.lower() in MISSING else BOOL[s.lower()] for s in text])
        else:
            cols.append([np.nan if s.lower() in MISSING else
                         (c.vocabulary.index(s) if s in c.vocabulary else -1) for s in text])
    return np.array(cols, np.float64).T, schema


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("c")
    extra = ["61.5,-0.9,purple,yes,hi,1,3.1", "12.25,0.25,red,no,lo,0,0.2"]
    return d, write_mixed_csv(d / "train.csv"), write_mixed_csv(d / "test.csv", n=40, seed=1, extra_rows=extra)


MODELS = {
    "cls32": ["--target", "y", "--drop", "k,r", "--impute", "mean", "--layers", "5,5,5,5",
              "--activation", "leaky_relu,elu,gelu,softplus"],
    "cls64": ["--target", "y", "--drop", "k,r", "--impute", "median", "--layers", "5,5,5,5",
              "--activation", "tanh,sigmoid,sin,relu", "--loss", "bce", "--dtype", "float64"],
    "reg32": ["--target", "r", "--drop", "y,k", "--impute", "mean", "--layers", "6",
              "--activation", "identity"],
    "rec64": ["--task", "reconstruct", "--drop", "y,k,r", "--impute", "mean", "--layers", "5,5",
              "--activation", "softplus,leaky_relu", "--dtype", "float64"],
}


@pytest.mark.parametrize("name", list(MODELS))
def test_the_compiled_header_gives_what_predict_gives(data, name):
    d, train_csv, test_csv = data
    model = train(train_csv, d / f"{name}.npz", *MODELS[name])
    header = d / f"{name}.h"
    r = run("export", model, "--format", "c", "-o", header)
    assert r.exit_code == 0, r.output
    rows, schema = c_inputs(model, test_csv)
    n_out = schema.n_outputs
    ret, out = compile_and_run(d, header, name, rows, len(schema.inputs), n_out)
    want = reference(model, test_csv)
    if schema.task == "classification":
        assert [schema.classes[i] for i in ret] == want[0].tolist()
        rel = max_relative(out, np.stack(want[1:], axis=1))
    elif schema.task == "regression":
        assert (ret == 0).all()
        rel = max_relative(out, np.stack(want, axis=1))
    else:
        # one-hot columns come back as the network gives them, numeric ones in their units
        rel = max_relative(out, np.stack(want[:-1], axis=1))
    print(f"C {name}: max relative difference {rel:.2e}")
    assert rel <= 1e-5


def test_a_missing_input_without_a_fill_value_returns_minus_one(data, tmp_path):
    clean = write_mixed_csv(tmp_path / "clean.csv", missing=False)
    model = train(clean, tmp_path / "m.npz", "--target", "r", "--drop", "y,k", "--impute", "drop")
    r = run("export", model, "--format", "c", "-o", tmp_path / "noimp.h")
    assert r.exit_code == 0, r.output
    ret, out = compile_and_run(tmp_path, tmp_path / "noimp.h", "noimp",
                               [[np.nan, 0.5, 1, 1], [40, 0.5, np.nan, 1], [40, 0.5, 1, 1]], 4, 1)
    assert ret.tolist() == [-1, -1, 0]
    assert np.isnan(out[:2]).all() and np.isfinite(out[2]).all()


def test_fixed_point_stays_within_its_stated_bound(tmp_path):
    three = os.path.join(DATA, "three.csv")
    model = train(three, tmp_path / "q.npz", "--layers", "3,3", "--activation", "relu,leaky_relu",
                  "--epochs", "20")
    r = run("export", model, "--format", "c", "--fixed", "16", "-o", tmp_path / "q16.h", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    bound = summary["max_abs_error"]
    assert summary["fixed_bits"] == 16 and 0 < bound < 1e-2
    header = (tmp_path / "q16.h").read_text()
    assert "int32_t" in header and "float q16" not in header
    table = read_csv(three)
    X = encode_features(table, load_model(model).schema)
    assert np.abs(X).max() <= 8   # the range the bound is stated for
    rows = np.stack([table.column(n).as_numbers()[0] for n in ("x1", "x2", "x3")], axis=1)
    _, out = compile_and_run(tmp_path, tmp_path / "q16.h", "q16", rows, 3, 1)
    want = reference(model, three)[0]
    err = np.abs(out[:, 0] - want)
    print(f"Q16: max |error| {err.max():.2e}, stated bound {bound:.2e}")
    assert err.max() <= bound
    assert err.max() > 0   # really integer arithmetic, not the float path


def test_fixed_point_refuses_curved_activations(tmp_path):
    three = os.path.join(DATA, "three.csv")
    model = train(three, tmp_path / "t.npz", "--activation", "tanh")
    r = run("export", model, "--format", "c", "--fixed", "16", "-o", tmp_path / "t.h")
    assert r.exit_code == 1 and not (tmp_path / "t.h").exists()
    assert r.stderr.splitlines() == [
        "Error: --fixed supports relu, leaky_relu, identity layers only; this model has tanh"]


def test_names_must_be_c_identifiers(tmp_path):
    three = os.path.join(DATA, "three.csv")
    model = train(three, tmp_path / "n.npz")
    r = run("export", model, "--format", "c", "-o", tmp_path / "x.h", "--name", "not valid")
    assert r.exit_code == 2 and "not a C identifier" in r.stderr
    r = run("export", model, "--format", "c", "-o", tmp_path / "3d-model.h")
    assert r.exit_code == 0, r.output
    assert "static inline int m_3d_model_predict(const float *in, float *out)" in \
        (tmp_path / "3d-model.h").read_text()


def test_fixed_point_classifier_returns_the_class_and_its_logits_within_the_bound(tmp_path):
    iris = os.path.join(DATA, "iris.csv")
    model = train(iris, tmp_path / "iris.npz", "--layers", "8", "--epochs", "30")
    r = run("export", model, "--format", "c", "--fixed", "16", "-o", tmp_path / "irisq.h", "--json")
    assert r.exit_code == 0, r.output
    bound = json.loads(r.stdout)["max_abs_error"]
    rows, schema = c_inputs(model, iris)
    ret, logits = compile_and_run(tmp_path, tmp_path / "irisq.h", "irisq", rows, 4, 3)
    loaded = load_model(model)
    X = encode_features(read_csv(iris), schema)
    want = X.astype(np.float32)   # the float network's logits, by hand from the layers
    for W, b, act in zip(loaded.network.weights, loaded.network.biases, loaded.network.activations):
        want = want @ W.T + b
        want = np.maximum(want, 0) if act == "relu" else want
    assert np.abs(logits - want).max() <= bound
    labels = reference(model, iris, proba=False)[0]
    top2 = np.sort(want, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * bound   # rows whose class no rounding can change
    assert clear.mean() > 0.9
    assert [schema.classes[i] for i in ret[clear]] == labels[clear].tolist()


def test_a_model_without_schema_exports_its_network_on_encoded_inputs(tmp_path):
    from nncli import Network
    from nncli.model_io import save_model
    net = Network([3, 3, 3, 1], ["tanh", "identity"], "mse", seed=0)
    save_model(tmp_path / "api.npz", net)
    r = run("export", tmp_path / "api.npz", "--format", "c", "-o", tmp_path / "api.h", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["functions"] == ["api_predict_encoded"]
    X = np.random.default_rng(0).normal(size=(9, 3)).astype(np.float32)
    ret, out = compile_and_run(tmp_path, tmp_path / "api.h", "api", X, 3, 1,
                               fn="api_predict_encoded")
    assert (ret == 0).all() and max_relative(out, net.predict(X)) <= 1e-5
