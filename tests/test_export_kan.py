"""KAN layers exported: the splines in standard ONNX operators, and in C as nncli's kernel
computes them; both give what nncli predict gives."""
import os
import shutil

import numpy as np
import pytest

from export_util import max_relative, reference, run, train, write_mixed_csv

from nncli.functions import LAYER_KINDS
from nncli.model_io import load_model

# Written and checked against the KAN layer kind of issue 11 (branch w-kan); active once it is
# in the build.
pytestmark = pytest.mark.skipif("kan" not in LAYER_KINDS, reason="no KAN layer kind in this build")

KAN = {
    "kan_f32_cls": ["--target", "y", "--drop", "k,r", "--impute", "mean", "--arch", "kan",
                    "--layers", "4", "--grid", "5", "--spline-order", "3"],
    "kan_f64_reg": ["--target", "r", "--drop", "y,k", "--impute", "median", "--arch", "kan",
                    "--layers", "3,3", "--grid", "4,7", "--grid-every", "1", "--spline-order", "2",
                    "--dtype", "float64", "--activation", "tanh"],
    # an ensemble of KAN networks: each member with its own knots
    "kan_ens_reg": ["--target", "r", "--drop", "y,k", "--impute", "median", "--arch", "kan",
                    "--layers", "3", "--grid", "3,6", "--ensemble", "3", "--threads", "2"],
}
# Beyond the training range on purpose: the spline term is clamped to the grid there.
EXTRA = ["400.5,-0.9,purple,yes,hi,1,3.1", "-300,9.25,red,no,lo,0,0.2"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("kan")
    train_csv = write_mixed_csv(d / "train.csv")
    test_csv = write_mixed_csv(d / "test.csv", n=40, seed=1, extra_rows=EXTRA)
    models = {name: train(train_csv, d / f"{name}.npz", *args) for name, args in KAN.items()}
    return d, test_csv, models


@pytest.mark.parametrize("name", list(KAN))
def test_onnxruntime_runs_kan_layers_as_predict_does(data, name):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from test_export_onnx import feeds
    d, test_csv, models = data
    model = models[name]
    assert "kan" in load_model(model).network.kinds
    r = run("export", model, "-o", d / f"{name}.onnx")
    assert r.exit_code == 0, r.output
    sess = ort.InferenceSession(str(d / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, feeds(sess, test_csv))
    want = reference(model, test_csv)
    if name.endswith("cls"):
        assert got[0].tolist() == want[0].tolist()
        rel = max_relative(got[1], np.stack(want[1:], axis=1))
    else:
        rel = max_relative(got[0], np.stack(want, axis=1))
    print(f"ONNX {name}: max relative difference {rel:.2e}")
    assert rel <= 1e-5


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
@pytest.mark.parametrize("name", list(KAN))
def test_the_c_header_runs_kan_layers_as_predict_does(data, name):
    from test_export_c import c_inputs, compile_and_run
    d, test_csv, models = data
    model = models[name]
    r = run("export", model, "--format", "c", "-o", d / f"{name}.h")
    assert r.exit_code == 0, r.output
    rows, schema = c_inputs(model, test_csv)
    ret, out = compile_and_run(d, d / f"{name}.h", name, rows, len(schema.inputs), schema.n_outputs)
    want = reference(model, test_csv)
    if name.endswith("cls"):
        assert [schema.classes[i] for i in ret] == want[0].tolist()
        rel = max_relative(out, np.stack(want[1:], axis=1))
    else:
        rel = max_relative(out, np.stack(want, axis=1))
    print(f"C {name}: max relative difference {rel:.2e}")
    assert rel <= 1e-5


def test_fixed_point_refuses_kan_layers(data):
    d, _, models = data
    r = run("export", models["kan_f32_cls"], "--format", "c", "--fixed", "16", "-o", d / "q.h")
    assert r.exit_code == 1 and not os.path.exists(d / "q.h")
    assert r.stderr.splitlines() == ["Error: --fixed does not support KAN layers (their splines "
                                     "are not piecewise linear); export them in floating point"]
