"""The Schema's richer encodings (issue 10) exported exactly: missing indicators on numeric
and boolean columns, capped one-hot with an 'other' input; dates are refused clearly."""
import dataclasses
import shutil

import numpy as np
import pytest

from export_util import max_relative, reference, run, train, write_mixed_csv

from nncli.data import InputColumn
from nncli.model_io import load_model

# Written and checked against issue 10's Schema (branch w-tables); active once it is in the build.
pytestmark = pytest.mark.skipif(
    not {"indicator", "other", "parts"} <= {f.name for f in dataclasses.fields(InputColumn)},
    reason="no indicators, 'other' or dates in this build's Schema")

EXTRA = ["61.5,-0.9,purple,yes,hi,1,3.1", ",0.25,red,,lo,0,0.2", "40,-1,NA,TRUE,lo,1,2"]
ARGS = {"cls": ["--target", "y", "--drop", "k,r", "--max-categories", "2", "--layers", "5"],
        "reg64": ["--target", "r", "--drop", "y,k", "--max-categories", "2", "--dtype", "float64"]}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("enc")
    train_csv = write_mixed_csv(d / "train.csv", n=200)
    test_csv = write_mixed_csv(d / "test.csv", n=40, seed=1, extra_rows=EXTRA)
    models = {k: train(train_csv, d / f"{k}.npz", *a) for k, a in ARGS.items()}
    schema = load_model(models["cls"]).schema
    kinds = {c.name: (c.kind, c.indicator if c.kind != "categorical" else c.other)
             for c in schema.inputs}
    # what this test is about: an indicator on x1 and flag, and color capped with 'other'
    assert kinds == {"x1": ("numeric", True), "x2": ("numeric", False),
                     "color": ("categorical", True), "flag": ("boolean", True)}
    return d, test_csv, models


def assert_onnx_matches_predict(model, onnx_path, test_csv, classifier):
    """Export `model`, run it in onnxruntime on test_csv: the labels equal predict's and the
    probabilities (or values) lie within 1e-5 relative of them."""
    import onnxruntime as ort
    from test_export_onnx import feeds
    r = run("export", model, "-o", onnx_path)
    assert r.exit_code == 0, r.output
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, feeds(sess, test_csv))
    want = reference(model, test_csv)
    if classifier:
        assert got[0].tolist() == want[0].tolist()
        rel = max_relative(got[1], np.stack(want[1:], axis=1))
    else:
        rel = max_relative(got[0], np.stack(want, axis=1))
    assert rel <= 1e-5


@pytest.mark.parametrize("name", list(ARGS))
def test_onnx_reproduces_indicators_and_other(data, name):
    pytest.importorskip("onnxruntime")
    d, test_csv, models = data
    assert_onnx_matches_predict(models[name], d / f"{name}.onnx", test_csv, name == "cls")


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
@pytest.mark.parametrize("name", list(ARGS))
def test_c_reproduces_indicators_and_other(data, name):
    from test_export_c import c_inputs, compile_and_run
    d, test_csv, models = data
    r = run("export", models[name], "--format", "c", "-o", d / f"{name}.h")
    assert r.exit_code == 0, r.output
    rows, schema = c_inputs(models[name], test_csv)
    ret, out = compile_and_run(d, d / f"{name}.h", name, rows, len(schema.inputs), schema.n_outputs)
    want = reference(models[name], test_csv)
    if name == "cls":
        assert [schema.classes[i] for i in ret] == want[0].tolist()
        rel = max_relative(out, np.stack(want[1:], axis=1))
    else:
        rel = max_relative(out, np.stack(want, axis=1))
    assert rel <= 1e-5


def date_csv(path, n=120, seed=0):
    rng = np.random.default_rng(seed)
    rows = ["when,x,y"]
    for i in range(n):
        day = f"{rng.integers(1990, 2030)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}"
        when = "" if i % 9 == 4 else f"{day} {rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}:00"
        rows.append(f"{when},{rng.normal():.4f},{rng.normal():.4f}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_onnx_takes_dates_as_seconds_and_makes_nncli_s_parts(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from nncli.columns import parse_dates
    from nncli.data import read_csv
    model = train(date_csv(tmp_path / "d.csv"), tmp_path / "d.npz", "--target", "y", "--layers", "4")
    schema = load_model(model).schema
    date = schema.inputs[0]
    assert date.kind == "date" and len(date.parts) > 5 and date.indicator
    r = run("export", model, "-o", tmp_path / "d.onnx")
    assert r.exit_code == 0, r.output
    test = date_csv(tmp_path / "t.csv", n=40, seed=1)
    table = read_csv(str(test))
    seconds, bad = parse_dates([s.strip() for s in table.column("when").as_text()], date.date_format)
    assert not bad and np.isnan(seconds).any()
    sess = ort.InferenceSession(str(tmp_path / "d.onnx"), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in sess.get_inputs()] == [("when", "tensor(double)"),
                                                              ("x", "tensor(float)")]
    got = sess.run(None, {"when": seconds, "x": table.column("x").as_numbers()[0].astype(np.float32)})
    assert max_relative(got[0][:, 0], reference(model, test)[0]) <= 1e-5


def test_onnx_date_parts_match_numpy_far_and_wide():
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    from nncli.columns import DATE_PARTS, date_parts
    from nncli.data import InputColumn
    from nncli.export.onnx import OPSET, _date, _Graph
    ic = InputColumn("d", "date", impute=0.0, parts=list(DATE_PARTS),
                     part_mean=[0.0] * len(DATE_PARTS), part_std=[1.0] * len(DATE_PARTS))
    g = _Graph()
    g.op("Identity", _date(g, "d", ic), out="parts")
    graph = helper.make_graph(g.nodes, "d", [helper.make_tensor_value_info("d", TensorProto.DOUBLE, ["N"])],
                              [helper.make_tensor_value_info("parts", TensorProto.DOUBLE, ["N", len(DATE_PARTS)])],
                              g.inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=9)
    rng = np.random.default_rng(0)
    # 1600..2400, leap days, the epoch and the days around it, negative times
    seconds = np.concatenate([np.floor(rng.uniform(-1.2e10, 1.3e10, 5000)),
                              [0, -1, 86399, 86400, -86400, 951782400, 951868800, 4107456000]])
    got = ort.InferenceSession(proto.SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(None, {"d": seconds})[0]
    want = date_parts(seconds)
    for j, part in enumerate(DATE_PARTS):
        np.testing.assert_allclose(got[:, j], want[part], rtol=1e-12, atol=1e-9, err_msg=part)


def test_c_refuses_date_columns_clearly(tmp_path):
    model = train(date_csv(tmp_path / "d.csv"), tmp_path / "d.npz", "--target", "y")
    r = run("export", model, "--format", "c", "-o", tmp_path / "d.h")
    assert r.exit_code == 1 and not (tmp_path / "d.h").exists()
    assert r.stderr.splitlines() == [
        "Error: cannot export input column 'when' of kind 'date': the exporter encodes numeric, "
        "boolean, categorical columns only (a date needs seconds since 1970 in double precision, "
        "which the float inputs cannot hold; the ONNX export takes dates)"]


@pytest.mark.parametrize("task", ["cls", "reg64"])
def test_onnx_averages_an_ensemble_as_predict_does(data, task):
    pytest.importorskip("onnxruntime")
    d, test_csv, _ = data
    model = train(d / "train.csv", d / f"ens_{task}.npz", *ARGS[task], "--ensemble", "3")
    assert len(load_model(model).network.members) == 3
    assert_onnx_matches_predict(model, d / f"ens_{task}.onnx", test_csv, task == "cls")


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
@pytest.mark.parametrize("task", ["cls", "reg64"])
def test_c_averages_an_ensemble_as_predict_does(data, task):
    from test_export_c import c_inputs, compile_and_run
    d, test_csv, _ = data
    model = train(d / "train.csv", d / f"ensc_{task}.npz", *ARGS[task], "--ensemble", "3")
    r = run("export", model, "--format", "c", "-o", d / f"ensc_{task}.h")
    assert r.exit_code == 0, r.output
    rows, schema = c_inputs(model, test_csv)
    ret, out = compile_and_run(d, d / f"ensc_{task}.h", f"ensc_{task}", rows, len(schema.inputs),
                               schema.n_outputs)
    want = reference(model, test_csv)
    if task == "cls":
        assert [schema.classes[i] for i in ret] == want[0].tolist()
        rel = max_relative(out, np.stack(want[1:], axis=1))
    else:
        rel = max_relative(out, np.stack(want, axis=1))
    assert rel <= 1e-5
    r = run("export", model, "--format", "c", "--fixed", "16", "-o", d / "ensq.h")
    assert r.exit_code == 1 and r.stderr.splitlines() == [
        "Error: --fixed does not support ensembles (--ensemble); export them in floating point"]
