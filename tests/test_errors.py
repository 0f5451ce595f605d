"""Sturdiness: bad data, hostile model files, bad options and unwritable outputs.

One table drives the corpus. Every failing case must end with exactly one line on stderr,
``Error: …`` holding the case's key words, the documented exit code (1 data/model/I/O,
2 usage), no traceback, and no file left behind (neither the output nor a ``.*.tmp``).
Cases that must WORK (quoted fields, BOM, CRLF, a constant feature, 5000 columns...) are
in the same table with exit code 0.
"""
import json
import os
import shutil
import stat
import subprocess
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from nncli.cli import cli

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
IRIS = os.path.abspath(os.path.join(DATA, "iris.csv"))
CURVE = os.path.abspath(os.path.join(DATA, "curve.csv"))
TRAIN = ["--epochs", "2", "--layers", "4", "-q", "--ensemble", "1"]


# --------------------------------------------------------------------------- models
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A small iris classifier and a curve regressor, trained once for the module."""
    d = tmp_path_factory.mktemp("models")
    runner = CliRunner()
    for src, name in ((IRIS, "iris.npz"), (CURVE, "curve.npz")):
        r = runner.invoke(cli, ["train", src, *TRAIN, "-o", str(d / name)])
        assert r.exit_code == 0, r.output
    return d


def _raw(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _meta(path):
    return json.loads(_raw(path)["meta"].tobytes())


def _write_npz(path, meta=None, **arrays):
    if meta is not None:
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **arrays)


def _with_meta(models, dst, **changes):
    raw = _raw(models / "iris.npz")
    meta = json.loads(raw["meta"].tobytes())
    meta.update(changes)
    _write_npz(dst, meta, phi=raw["phi"])


class Marker:
    """Unpickling this creates a folder: proof that a file was (or was not) unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


# --------------------------------------------------------------------------- the corpus
def w(name, text, mode="w"):
    """A file in the current folder (the test's tmp_path): text, or bytes with mode='wb'."""
    with open(name, mode, **({} if "b" in mode else {"newline": ""})) as f:
        f.write(text)
    return name


def rows(header, body):
    return header + "\n" + "\n".join(body) + "\n"


def _wide():
    rng = np.random.default_rng(0)
    header = ",".join(f"c{i}" for i in range(5000)) + ",y"
    body = [",".join(f"{v:.3f}" for v in rng.normal(size=5000)) + f",{k % 2}" for k in range(6)]
    return w("wide.csv", rows(header, body))


SMALL = rows("a,b,y", ["1,2,0", "2,3,1", "3,5,0", "4,4,1", "5,1,0", "6,2,1"])


def _no_read(models):
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their permissions")
    shutil.copy(models / "iris.npz", "locked.npz")
    os.chmod("locked.npz", 0)
    return ["info", "locked.npz"]


def _pickled(models):
    raw = _raw(models / "iris.npz")
    obj = np.empty(1, dtype=object)
    obj[0] = Marker(os.path.abspath("PWNED"))
    np.savez("pickled.npz", meta=raw["meta"], phi=obj)
    return ["predict", "pickled.npz", IRIS]


def _half(path):
    data = path.read_bytes()
    return data[: len(data) // 2]


def _zip(path, entries):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return "info"


def _full_device():
    """A /dev/full of our own (so a bug can never replace the real one), else skip."""
    try:
        os.mknod("full", 0o20666, os.makedev(1, 7))
    except (OSError, AttributeError):
        pytest.skip("cannot create a device node here")
    return "full"


def _null_device():
    """A /dev/null of our own, else skip."""
    try:
        os.mknod("null", 0o20666, os.makedev(1, 3))
    except (OSError, AttributeError):
        pytest.skip("cannot create a device node here")
    return "null"


def test_a_model_can_be_written_to_a_null_device(tmp_path, monkeypatch):
    """`-o /dev/null` (a dry run) writes through the device: the zip writer cannot seek on it,
    so the archive is built in memory; the device stays a device."""
    monkeypatch.chdir(tmp_path)
    dev = _null_device()
    r = CliRunner().invoke(cli, ["train", w("s.csv", SMALL), *TRAIN, "-o", dev])
    assert r.exit_code == 0, r.output
    assert stat.S_ISCHR(os.stat(dev).st_mode)


def _tmpfs():
    os.mkdir("small")
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", "small"],
                           capture_output=True)
    except OSError:
        r = None
    if r is None or r.returncode != 0:
        pytest.skip("cannot mount a small tmpfs")
    try:   # fill it up
        with open("small/filler", "wb") as f:
            while True:
                f.write(b"x" * 4096)
                f.flush()
    except OSError:
        pass
    return "small"


# Each case: id → (setup(models) returning the arguments, exit code, key words in stderr).
# setup runs in the test's own folder; paths in key words are as the user typed them.
CASES = {
    # -- data files -------------------------------------------------------------------
    "empty-file": (lambda m: ["train", w("e.csv", ""), *TRAIN], 1, ["e.csv", "empty"]),
    "header-only": (lambda m: ["train", w("h.csv", "a,b,y\n"), *TRAIN], 1,
                    ["h.csv", "header", "no data rows"]),
    "ragged-row": (lambda m: ["train", w("r.csv", "a,b,y\n1,2,3\n4,5\n6,7,8\n"), *TRAIN], 1,
                   ["r.csv:3", "expected 3 fields", "found 2"]),
    "not-a-number": (lambda m: ["train", w("n.csv", rows("a,b,y", ["1,2,0", "4,x5,1", "6,7,0"])), *TRAIN],
                     1, ["n.csv:3", "column 'b'", "'x5'"]),
    "empty-cell": (lambda m: ["train", w("m.csv", rows("a,b,y", ["1,,0", "4,5,1", "6,7,0", "1,2,1"])), *TRAIN,
                                  "--impute", "none"], 1, ["m.csv:2", "column 'b'", "missing", "--impute"]),
    "nan-cell": (lambda m: ["train", w("m.csv", rows("a,b,y", ["1,2,0", "4,NaN,1", "6,7,0"])), *TRAIN,
                                "--impute", "none"], 1, ["m.csv:3", "column 'b'", "missing"]),
    "inf-cell": (lambda m: ["train", w("m.csv", rows("a,b,y", ["1,2,0", "4,5,1", "6,-inf,0"])), *TRAIN,
                                "--impute", "none"], 1, ["m.csv:4", "column 'b'", "missing"]),
    "missing-target": (lambda m: ["train", w("m.csv", rows("a,b,y", ["1,2,0", "4,5,", "6,7,0", "1,1,1"])),
                                  *TRAIN, "--impute", "none"], 1,
                       ["m.csv:3", "column 'y'", "missing target", "without --impute none"]),
    "impute-mean-works": (lambda m: ["train", w("m.csv", rows("a,b,y", ["1,,0", "4,nan,1", "6,inf,0", "1,2,1",
                                                                         "2,3,0", "3,3,1"])),
                                     *TRAIN, "--impute", "mean", "-o", "out.npz"], 0, []),
    "impute-drop-works": (lambda m: ["train", w("m.csv", rows("a,b,y", ["1,,0", "4,5,1", "6,7,0", "1,2,1",
                                                                         "2,3,0", "3,3,1"])),
                                     *TRAIN, "--impute", "drop", "-o", "out.npz"], 0, []),
    "float32-overflow": (lambda m: ["train", w("o.csv", rows("a,b,y", ["1,2,0", "4,5e39,1", "6,7,0"])), *TRAIN],
                         1, ["o.csv:3", "column 'b'", "too large"]),
    "quoted-fields-work": (lambda m: ["train", w("q.csv", 'a,"note, with comma",y\n1,"x, y\nz",0\n'
                                                  '2,"say ""hi""",1\n3,plain,0\n4,"a;b",1\n5,"c\nd",0\n6,e,1\n'),
                                      *TRAIN, "-o", "out.npz"], 0, []),
    "bom-works": (lambda m: ["train", w("b.csv", b"\xef\xbb\xbf" + SMALL.encode(), "wb"), *TRAIN,
                             "--target", "y", "--features", "a,b", "-o", "out.npz"], 0, []),
    "crlf-works": (lambda m: ["train", w("c.csv", SMALL.replace("\n", "\r\n").encode(), "wb"), *TRAIN,
                              "-o", "out.npz"], 0, []),
    "not-utf8": (lambda m: ["train", w("l.csv", b"a,b,y\n1,2,0\n2,caf\xe9,1\n", "wb"), *TRAIN], 1,
                 ["l.csv:3", "byte 0xE9 at position 6 of the line (offset 17 in the file)", "not valid UTF-8",
                  "--encoding latin-1"]),
    "binary-file": (lambda m: ["train", w("bin.csv", bytes(range(256)) * 8, "wb"), *TRAIN], 1,
                    ["bin.csv", "binary"]),
    "duplicate-columns": (lambda m: ["train", w("d.csv", rows("a,a,y", ["1,2,0", "2,3,1"])), *TRAIN], 1,
                          ["d.csv:1", "duplicate column name 'a'"]),
    "no-such-target": (lambda m: ["train", w("s.csv", SMALL), *TRAIN, "--target", "label"], 1,
                       ["s.csv", "no column named 'label'", "'a', 'b', 'y'"]),
    "one-class": (lambda m: ["train", w("s.csv", rows("a,b,y", ["1,2,k", "2,3,k", "3,4,k"])), *TRAIN], 1,
                  ["s.csv", "only one class", "'k'"]),
    "constant-feature-works": (lambda m: ["train", w("k.csv", rows("a,b,y", ["1,2,0", "1,3,1", "1,4,0", "1,5,1"])),
                                          *TRAIN, "--val-split", "0", "-o", "out.npz"], 0, []),
    "single-row-needs-no-val": (lambda m: ["train", w("one.csv", "a,b,y\n1,2,0.5\n"), *TRAIN], 1,
                                ["too few rows", "--val-split 0"]),
    "single-row-works": (lambda m: ["train", w("one.csv", "a,b,y\n1,2,0.5\n"), *TRAIN, "--val-split", "0",
                                    "-o", "out.npz"], 0, []),
    "wide-5000-columns-works": (lambda m: ["train", _wide(), *TRAIN, "--val-split", "0", "-o", "out.npz"], 0, []),
    "data-does-not-exist": (lambda m: ["train", "nowhere.csv", *TRAIN], 1, ["nowhere.csv", "No such file"]),
    "data-is-a-directory": (lambda m: ["predict", str(m / "iris.npz"), "."], 2, ["'.'", "directory"]),
    # -- model files ------------------------------------------------------------------
    "model-truncated": (lambda m: ["predict", w("t.npz", _half(m / "iris.npz"), "wb"), IRIS],
                        1, ["t.npz", "corrupt or truncated"]),
    "model-not-a-zip": (lambda m: ["predict", w("t.npz", "phi,meta\n1,2\n"), IRIS], 1,
                        ["t.npz", "not an nncli model file", "not an .npz"]),
    "model-zip-without-entries": (lambda m: [_zip("t.npz", {"weights.npy": b"\x93NUMPY"}), "t.npz"], 1,
                                  ["t.npz", "no meta, phi entry"]),
    "model-extra-entries": (lambda m: [_write_npz("t.npz", _meta(m / "iris.npz"), phi=_raw(m / "iris.npz")["phi"],
                                                  code=np.zeros(3)) or "info", "t.npz"], 1,
                            ["t.npz", "unexpected entries: code"]),
    "meta-not-json": (lambda m: [np.savez("t.npz", phi=_raw(m / "iris.npz")["phi"],
                                          meta=np.frombuffer(b"{layers: oops", np.uint8)) or "info", "t.npz"],
                      1, ["t.npz", "not valid JSON"]),
    "meta-wrong-version": (lambda m: [_with_meta(m, "t.npz", format_version=99) or "info", "t.npz"], 1,
                           ["t.npz", "format version 99", "not supported"]),
    "meta-field-wrong-type": (lambda m: [_with_meta(m, "t.npz", layers="4,4,3") or "info", "t.npz"], 1,
                              ["t.npz", "'layers'", "not a list"]),
    "meta-config-wrong-type": (lambda m: [_with_meta(m, "t.npz", config=[1, 2]) or "info", "t.npz"], 1,
                               ["t.npz", "'config'", "an object"]),
    "meta-schema-damaged": (lambda m: [_with_meta(m, "t.npz", schema={"version": 1}) or "predict", "t.npz", IRIS],
                            1, ["model schema", "lacks"]),
    "phi-length-mismatch": (lambda m: [_write_npz("t.npz", _meta(m / "iris.npz"),
                                                  phi=_raw(m / "iris.npz")["phi"][:-1]) or "info", "t.npz"], 1,
                            ["t.npz", "'phi' holds", "but the layers need"]),
    "phi-not-finite": (lambda m: [_write_npz("t.npz", _meta(m / "iris.npz"),
                                             phi=_raw(m / "iris.npz")["phi"] * np.inf) or "info", "t.npz"], 1,
                       ["t.npz", "NaN or infinite"]),
    "pickled-object-array": (_pickled, 1, ["pickled.npz", "pickled object array", "never loads"]),
    "model-is-a-directory": (lambda m: [os.mkdir("dir.npz") or "info", "dir.npz"], 1,
                             ["dir.npz", "is a directory"]),
    "model-does-not-exist": (lambda m: ["info", "nothing.npz"], 1, ["nothing.npz", "No such file"]),
    "model-no-read-permission": (_no_read, 1, ["locked.npz", "Permission denied"]),
    "checkpoint-is-a-plain-model": (lambda m: ["train", IRIS, "--resume", str(m / "iris.npz"), "-q"], 1,
                                    ["is a model, not a checkpoint", "--checkpoint"]),
    "predict-columns-do-not-match": (lambda m: ["predict", str(m / "iris.npz"), CURVE], 1,
                                     ["curve.csv", "missing column(s)", "'petal_length'", "'x', 'y'"]),
    "predict-headerless-wrong-width": (lambda m: ["predict", str(m / "iris.npz"), w("nh.csv", "1,2\n3,4\n"),
                                                  "--no-header"], 1, ["nh.csv", "without a header", "it has 2"]),
    "evaluate-unknown-class": (lambda m: ["evaluate", str(m / "iris.npz"),
                                          w("u.csv", rows("sepal_length,sepal_width,petal_length,petal_width,species",
                                                          ["5,3,1,0.2,setosa", "5,3,1,0.2,daisy"]))], 1,
                               ["u.csv:3", "unknown class 'daisy'"]),
    "predict-text-in-numeric-column": (lambda m: ["predict", str(m / "curve.npz"), w("p.csv", "x\n0.5\nabc\n")],
                                       1, ["p.csv:3", "column 'x'", "'abc'"]),
    # -- options ----------------------------------------------------------------------
    "negative-lr": (lambda m: ["train", w("s.csv", SMALL), "--lr", "-0.1"], 2, ["--lr", "-0.1"]),
    "zero-layers": (lambda m: ["train", w("s.csv", SMALL), "--layers", "0"], 2, ["--layers", "at least 1"]),
    "unknown-activation": (lambda m: ["train", w("s.csv", SMALL), "--activation", "swish"], 2,
                           ["--activation", "'swish'"]),
    "zero-epochs": (lambda m: ["train", w("s.csv", SMALL), "--epochs", "0"], 2, ["--epochs"]),
    "unknown-option": (lambda m: ["train", w("s.csv", SMALL), "--learning-rate", "1"], 2,
                       ["--learning-rate", "train --help"]),
    "unknown-command": (lambda m: ["fit", "x.csv"], 2, ["No such command 'fit'"]),
    "missing-argument": (lambda m: ["predict"], 2, ["Missing argument 'MODEL'"]),
    "columns-without-no-header": (lambda m: ["train", w("s.csv", SMALL), "--columns", "a,b,c"], 2,
                                  ["--columns", "--no-header"]),
    "proba-on-regression": (lambda m: ["predict", str(m / "curve.npz"), CURVE, "--proba"], 2,
                            ["--proba", "classification models only"]),
    "loss-does-not-fit-task": (lambda m: ["train", w("s.csv", SMALL), *TRAIN, "--loss", "mse", "--task",
                                          "classification"], 2, ["mse loss does not fit", "--loss cross_entropy"]),
    "activations-do-not-fit-layers": (lambda m: ["train", w("s.csv", SMALL), *TRAIN, "--activation", "tanh,relu"],
                                      2, ["--activation gives 2 names for 1 hidden layers"]),
    "config-file-bad-toml": (lambda m: ["train", w("s.csv", SMALL), "--config", w("c.toml", "epochs = = 3\n")], 2,
                             ["--config", "c.toml is not valid TOML"]),
    # -- outputs ----------------------------------------------------------------------
    "output-folder-does-not-exist": (lambda m: ["train", w("s.csv", SMALL), *TRAIN, "-o", "nodir/x.npz"], 1,
                                     ["cannot write nodir/x.npz", "does not exist"]),
    "output-under-a-regular-file": (lambda m: ["train", w("s.csv", SMALL), *TRAIN, "-o", "s.csv/x.npz"], 1,
                                    ["cannot write s.csv/x.npz", "is not a folder"]),
    "loss-log-folder-does-not-exist": (lambda m: ["train", w("s.csv", SMALL), *TRAIN, "--loss-log", "no/l.csv"],
                                       1, ["cannot write no/l.csv", "does not exist"]),
    "predict-output-under-a-file": (lambda m: ["predict", str(m / "iris.npz"), IRIS, "-o", w("f", "") + "/p.csv"],
                                    1, ["cannot write f/p.csv", "is not a folder"]),
    "predict-output-is-a-directory": (lambda m: ["predict", str(m / "iris.npz"), IRIS, "-o", "."], 2,
                                      ["--output", "directory"]),
    "predict-to-a-full-disk": (lambda m: ["predict", str(m / "iris.npz"), IRIS, "-o", _full_device()], 1,
                               ["cannot write full", "No space left on device"]),
    "model-to-a-full-disk": (lambda m: ["train", w("s.csv", SMALL), *TRAIN, "-o", _full_device()], 1,
                             ["cannot write full", "No space left on device"]),
    "model-to-a-full-tmpfs": (lambda m: ["train", IRIS, *TRAIN, "-o", _tmpfs() + "/big.npz",
                                         "--loss-log", "big.loss.csv"], 1,
                              ["cannot write small/big.npz", "No space left on device"]),
    "predict-to-a-full-tmpfs": (lambda m: ["predict", str(m / "iris.npz"), IRIS,
                                           "-o", _tmpfs() + "/p.csv", "--chunk-rows", "10"], 1,
                                ["cannot write small/p.csv", "No space left on device"]),
}


def _files(folder):
    return {os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs}


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    if os.path.ismount(tmp_path / "small"):
        subprocess.run(["umount", str(tmp_path / "small")], check=False)


@pytest.mark.parametrize("case", list(CASES))
def test_corpus(case, models, here):
    setup, code, words = CASES[case]
    args = setup(models)
    before = _files(here)
    r = CliRunner().invoke(cli, args)
    after = _files(here)
    # Never an uncaught exception (CliRunner reports those as result.exception).
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output and "Traceback" not in r.stderr
    assert r.exit_code == code, r.output
    if code == 0:
        assert "out.npz" in after
        return
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert r.stdout == ""
    new = after - before
    # A failed command leaves nothing; a training run stopped after it began keeps its
    # loss log (complete rows, flushed as they were written).
    assert all(f.endswith(".loss.csv") for f in new), new
    assert not any(f.endswith(".tmp") for f in after), after


def test_pickled_model_is_never_unpickled(models, here):
    args = _pickled(models)
    for command in (args, ["info", "pickled.npz"], ["evaluate", "pickled.npz", IRIS]):
        r = CliRunner().invoke(cli, command)
        assert r.exit_code == 1 and "pickled object array" in r.stderr
    from nncli.errors import ModelFileError
    from nncli.model_io import load_model
    with pytest.raises(ModelFileError):
        load_model("pickled.npz")
    assert not os.path.exists("PWNED")
    # The marker does work when unpickled: the test would notice a regression.
    with np.load("pickled.npz", allow_pickle=True) as z:
        z["phi"]
    assert os.path.isdir("PWNED")


def test_working_cases_give_sane_models(models, here):
    runner = CliRunner()
    # BOM: the first column is 'a', not '\ufeffa'; CRLF: the same model as LF.
    w("lf.csv", SMALL)
    w("crlf.csv", SMALL.replace("\n", "\r\n").encode(), "wb")
    w("bom.csv", b"\xef\xbb\xbf" + SMALL.encode(), "wb")
    for name in ("lf", "crlf", "bom"):
        r = runner.invoke(cli, ["train", f"{name}.csv", *TRAIN, "-o", f"{name}.npz"])
        assert r.exit_code == 0, r.output
    assert _meta("bom.npz")["feature_names"] == ["a", "b"]
    phi = [_raw(f"{n}.npz")["phi"].tobytes() for n in ("lf", "crlf", "bom")]
    assert phi[0] == phi[1] == phi[2]
    # Quoted fields with separators and newlines: a text feature with those categories.
    w("q.csv", 'a,note,y\n1,"x, y\nz",0\n2,"say ""hi""",1\n3,plain,0\n4,"x, y\nz",1\n')
    r = runner.invoke(cli, ["train", "q.csv", *TRAIN, "--val-split", "0", "-o", "q.npz"])
    assert r.exit_code == 0, r.output
    assert "note=x, y\nz" in _meta("q.npz")["feature_names"]
    p = runner.invoke(cli, ["predict", "q.npz", "q.csv"])
    assert p.exit_code == 0 and len(p.stdout.splitlines()) == 5
    # A constant feature: std 0 is not divided by, and the model is finite.
    w("k.csv", rows("a,b,y", ["1,2,0", "1,3,1", "1,4,0", "1,5,1"]))
    r = runner.invoke(cli, ["train", "k.csv", *TRAIN, "--val-split", "0", "-o", "k.npz"])
    assert r.exit_code == 0 and np.all(np.isfinite(_raw("k.npz")["phi"]))
    assert _meta("k.npz")["schema"]["inputs"][0]["std"] == 1.0


def test_divergence_stops_with_epoch_loss_and_hint(here):
    w("d.csv", rows("x,y", [f"{i},{i * 1000.0}" for i in range(50)]))
    args = ["train", "d.csv", "--optimizer", "sgd", "--lr", "100", "--no-standardize", "--layers", "8",
            "--epochs", "50", "-q", "--val-split", "0", "-o", "d.npz"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 1 and len(r.stderr.splitlines()) == 1, r.output
    assert "diverged at epoch" in r.stderr and "--lr" in r.stderr
    assert "last finite loss" in r.stderr or "no finite loss" in r.stderr
    assert not os.path.exists("d.npz")
    r = CliRunner().invoke(cli, [*args, "--save-diverged"])
    assert r.exit_code == 1 and os.path.exists("d.npz")
    # What is saved is the last finite state, readable like any model, marked as diverged.
    info = CliRunner().invoke(cli, ["info", "d.npz", "--json"])
    assert info.exit_code == 0, info.output
    assert np.all(np.isfinite(_raw("d.npz")["phi"])) and _meta("d.npz")["diverged"] is True


def test_predict_to_devices_writes_through(models, here):
    """-o naming a device writes to it; it is never replaced by a regular file."""
    r = CliRunner().invoke(cli, ["predict", str(models / "iris.npz"), IRIS, "-o", os.devnull])
    assert r.exit_code == 0 and r.stdout == ""
    assert not os.path.isfile(os.devnull)
    assert not [f for f in os.listdir(os.path.dirname(os.devnull)) if f.endswith(".tmp")]


def test_outputs_get_ordinary_permissions(models, here):
    old = os.umask(0o022)
    try:
        r = CliRunner().invoke(cli, ["predict", str(models / "iris.npz"), IRIS, "-o", "p.csv"])
    finally:
        os.umask(old)
    assert r.exit_code == 0 and os.stat("p.csv").st_mode & 0o777 == 0o644


def test_unreadable_model_simulated(models, here, monkeypatch):
    """No read permission, also when running as root (where chmod 000 does not stop reads)."""
    import nncli.model_io as model_io

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(model_io, "open", refuse, raising=False)
    r = CliRunner().invoke(cli, ["info", str(models / "iris.npz")])
    assert r.exit_code == 1 and r.stderr.count("\n") == 1
    assert "cannot read model file" in r.stderr and "Permission denied" in r.stderr
