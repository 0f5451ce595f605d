"""Streaming training from the binary cache: statistics, reuse, invalidation, damage,
determinism, and equality with in-memory training for one block."""
import gzip
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from nncli.cache import cache_path, get_cache
from nncli.cli import cli
from nncli.data import validation_split
from nncli.streaming import parse_memory

TRAIN = ["--epochs", "3", "--layers", "6", "--seed", "5", "--batch-size", "16"]


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def _phi(path):
    with np.load(path) as z:
        return z["phi"].copy()


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write(path, n=1500, seed=0):
    """Numbers with a large offset (hard for naive variance), a category, a class label."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)) * [1.0, 1e-3, 50.0] + [1e6, -3.0, 0.0]
    colour = rng.choice(["red", "green", "blue"], n).tolist()
    rows = [f"{a!r},{b!r},{c!r},{k},{'up' if (a - 1e6) + c / 50 > 0 else 'down'}"
            for (a, b, c), k in zip(x.tolist(), colour)]
    path.write_text("a,b,c,colour,label\n" + "\n".join(rows) + "\n")
    return x


def test_statistics_equal_numpy_over_the_training_rows(here):
    x = _write(here / "d.csv")
    config = {"val_split": 0.25, "seed": 3, "dtype": "float64"}
    # a tiny budget: the pass reads 256-row chunks and the fit merges 64-row windows
    cache, note = get_cache("d.csv", config, cache_dir="c", budget=16 << 10)
    assert note.startswith("built")
    labels = (((x[:, 0] - 1e6) + x[:, 2] / 50) > 0).astype(np.int64)
    train, val = validation_split(len(x), 0.25, 3, labels)   # classes sort: down (0), up (1)
    assert np.array_equal(cache.train_rows, train) and np.array_equal(cache.val_rows, val)
    stats = {c["name"]: c for c in cache.meta["stats"]["columns"]}
    for j, name in enumerate("abc"):
        v = x[train, j]
        assert stats[name]["count"] == len(v)
        assert stats[name]["mean"] == pytest.approx(np.mean(v), rel=1e-12, abs=0)
        assert stats[name]["std"] == pytest.approx(np.std(v), rel=1e-12, abs=0)
    schema = cache.meta["schema"]
    assert schema["inputs"][3]["vocabulary"] == ["blue", "green", "red"]
    assert cache.meta["stats"]["class_counts"] == {"down": int((labels == 0).sum()),
                                                    "up": int(labels.sum())}
    # the encoded rows are the standardised numbers
    X, _ = cache.window(0, cache.n_rows)
    a = stats["a"]
    assert np.allclose(X[:, 0], (x[:, 0] - a["mean"]) / a["std"], rtol=0, atol=1e-9)


@pytest.mark.parametrize("extra", [[], ["--task", "regression", "--target", "c",
                                        "--drop", "label", "--val-split", "0.3"]])
def test_one_block_equals_in_memory_training_bit_for_bit(here, extra):
    _write(here / "d.csv")
    # Both refit on every row after validation picked the epochs (a streamed refit reads the
    # held-out rows from the cache's blocks).
    r = run("train", "d.csv", *TRAIN, *extra, "--no-cache", "-o", "mem.npz", "-q")
    assert r.exit_code == 0, r.output
    r = run("train", "d.csv", *TRAIN, *extra, "--cache", "c", "--shuffle-block", "100000",
            "-o", "st.npz")
    assert r.exit_code == 0, r.output
    assert r.output.startswith("Streaming (--cache)")
    assert "1 block" in r.output.splitlines()[1]
    assert np.array_equal(_phi("mem.npz"), _phi("st.npz"))
    assert run("predict", "st.npz", "d.csv").output == run("predict", "mem.npz", "d.csv").output
    # the same final metrics (a regression's in the target's units too)
    same = ("train_loss", "val_loss", "val_accuracy", "val_rmse", "val_mae", "val_r2")
    a = json.loads(run("train", "d.csv", *TRAIN, *extra, "--no-cache", "-o", "m1.npz", "-q",
                       "--json").output)
    b = json.loads(run("train", "d.csv", *TRAIN, *extra, "--cache", "c", "-o", "m2.npz", "-q",
                       "--json").output)
    for k in same:   # the target-unit metrics: predictions batched differently, float32 rounding
        assert b.get(k) == (a.get(k) if a.get(k) is None or k in same[:3]
                            else pytest.approx(a[k], rel=1e-6))
    assert extra == [] or a["val_rmse"] is not None


def test_same_seed_and_block_give_the_same_model(here):
    _write(here / "d.csv")
    for out in ("one.npz", "two.npz"):
        r = run("train", "d.csv", *TRAIN, "--memory", "64K", "--shuffle-block", "200", "-o", out, "-q")
        assert r.exit_code == 0, r.output
    assert np.array_equal(_phi("one.npz"), _phi("two.npz"))
    r = run("train", "d.csv", *TRAIN, "--memory", "64K", "--shuffle-block", "300", "-o", "three.npz", "-q")
    assert not np.array_equal(_phi("one.npz"), _phi("three.npz"))   # the blocks do matter
    e = run("evaluate", "one.npz", "d.csv", "--json")
    assert e.exit_code == 0 and json.loads(e.output)["accuracy"] > 0.8


def test_the_cache_is_reused_and_a_changed_source_or_option_rebuilds_it(here):
    _write(here / "d.csv")
    first = run("train", "d.csv", *TRAIN, "--cache", "c", "-o", "m1.npz").output
    assert "built (none yet)" in first
    assert "reused" in run("train", "d.csv", *TRAIN, "--cache", "c", "-o", "m2.npz").output
    assert np.array_equal(_phi("m1.npz"), _phi("m2.npz"))
    # another option the rows depend on: another cache file
    assert "built (none yet)" in run("train", "d.csv", *TRAIN, "--seed", "9", "--cache", "c",
                                     "-o", "m3.npz").output
    assert len(os.listdir("c")) == 2
    _write(here / "d.csv", seed=1)   # the data changed
    out = run("train", "d.csv", *TRAIN, "--cache", "c", "-o", "m4.npz").output
    assert "built (the data changed)" in out
    assert not np.array_equal(_phi("m1.npz"), _phi("m4.npz"))


@pytest.mark.parametrize("damage", ["truncate", "flip", "header"])
def test_a_damaged_cache_is_rebuilt_never_trusted(here, damage):
    _write(here / "d.csv")
    assert run("train", "d.csv", *TRAIN, "--cache", "c", "-o", "good.npz").exit_code == 0
    path = cache_path("d.csv", {"seed": 5, "val_split": 0.2, "dtype": "float32",
                                "standardize": True, "encoding": "utf-8"}, "c")
    [name] = os.listdir("c")
    path = os.path.join("c", name)
    data = bytearray(open(path, "rb").read())
    if damage == "truncate":
        data = data[:len(data) - 100]
    elif damage == "flip":
        data[-50] ^= 0xFF
    else:
        data[20:30] = b"!" * 10
    open(path, "wb").write(bytes(data))
    r = run("train", "d.csv", *TRAIN, "--cache", "c", "-o", "again.npz")
    assert r.exit_code == 0, r.output
    assert "built (" in r.output and "reused" not in r.output
    assert np.array_equal(_phi("good.npz"), _phi("again.npz"))
    assert os.listdir("c") == [name]   # no temporary files left behind


def test_a_compressed_source_streams_to_the_same_model(here):
    _write(here / "d.csv")
    (here / "d.csv.gz").write_bytes(gzip.compress((here / "d.csv").read_bytes()))
    for src, out in (("d.csv", "a.npz"), ("d.csv.gz", "b.npz")):
        r = run("train", src, *TRAIN, "--memory", "64K", "--shuffle-block", "250", "-o", out)
        assert r.exit_code == 0, r.output
        assert r.output.startswith("Streaming") and "6 blocks" in r.output
    assert np.array_equal(_phi("a.npz"), _phi("b.npz"))


def test_parquet_streams_to_the_same_model_as_the_csv(here):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    from nncli.csvio import read_csv
    _write(here / "d.csv")
    t = read_csv("d.csv")
    pq.write_table(pa.table({n: (c.values if not c.is_text else c.text)
                             for n, c in zip(t.names, t.columns)}), "d.parquet", row_group_size=200)
    for src, out in (("d.csv", "a.npz"), ("d.parquet", "b.npz")):
        r = run("train", src, *TRAIN, "--memory", "64K", "--shuffle-block", "250", "-o", out)
        assert r.exit_code == 0 and r.output.startswith("Streaming"), r.output
    assert np.array_equal(_phi("a.npz"), _phi("b.npz"))


def test_two_files_of_one_name_share_a_cache_folder(here):
    os.mkdir("x")
    os.mkdir("y")
    _write(here / "x" / "d.csv", seed=1)
    _write(here / "y" / "d.csv", seed=2)
    for d in ("x", "y", "x", "y"):
        out = run("train", f"{d}/d.csv", *TRAIN, "--cache", "c", "-o", f"{d}.npz").output
    assert "reused" in out and len(os.listdir("c")) == 2


def test_the_first_line_says_what_was_decided(here):
    _write(here / "d.csv")
    small = run("train", "d.csv", *TRAIN, "--memory", "64K", "-o", "s.npz").output.splitlines()[0]
    assert small.startswith("Streaming: the data") and "more than --memory 64K" in small
    big = run("train", "d.csv", *TRAIN, "--memory", "2G", "-o", "b.npz").output.splitlines()[0]
    assert big.startswith("Training")   # in memory: no cache, as before


def test_memory_sizes_and_refusals():
    assert parse_memory("2G") == 2 << 30 and parse_memory("512m") == 512 << 20
    assert parse_memory("1.5K") == 1536 and parse_memory("100") == 100
    r = run("train", "x.csv", "--memory", "lots")
    assert r.exit_code != 0
    r = run("train", "-", "--memory", "1M", input="a,b\n1,2\n3,4\n")
    assert r.exit_code == 2 and "save it to a file" in r.output


def test_a_streamed_model_knows_its_held_out_rows(here):
    _write(here / "d.csv")
    # (--no-refit: a refit model has learned from the held-out rows too)
    r = run("train", "d.csv", *TRAIN, "--memory", "64K", "--shuffle-block", "400", "--no-refit",
            "-o", "m.npz", "-q")
    assert r.exit_code == 0, r.output
    e = run("evaluate", "m.npz", "d.csv", "--held-out", "--json")
    assert e.exit_code == 0, e.output
    assert json.loads(e.output)["rows"] == 300   # 20% of 1500, the rows the cache held out


def test_the_pass_reports_bytes_rows_per_second_and_time_left(capsys):
    from nncli.commands.train import _ReadProgress
    p = _ReadProgress(every=1.0)
    p(1000, 0.5, 100, 1000)      # too early: nothing
    p(4000, 2.0, 250 << 20, 1 << 30)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["Reading: 4,000 rows, 2,000 rows/s, 250.0 MiB of 1.0 GiB (24%), ETA 6 s"]


@pytest.mark.parametrize("impute", ["drop", "mean", "median"])
def test_the_cache_fits_what_memory_fits_with_missing_cells_booleans_and_categories(here, impute):
    from nncli import pipeline
    from nncli.data import read_csv
    rng = np.random.default_rng(5)
    rows = ["a,b,flag,colour,t"]
    for _ in range(700):
        a = "" if rng.random() < 0.05 else repr(float(rng.normal()))
        flag = ["yes", "no", "", "YES"][rng.integers(0, 4)]
        colour = ["red", "green", "", "blue ", "7"][rng.integers(0, 5)]
        rows.append(f"{a},{float(rng.normal() * 3 + 7)!r},{flag},{colour},{float(rng.normal())!r}")
    (here / "mix.csv").write_text("\n".join(rows) + "\n")
    config = {"impute": impute, "val_split": 0.2, "seed": 1, "dtype": "float64"}
    memory = pipeline.prepare_data(read_csv("mix.csv"), config)
    cache, _ = get_cache("mix.csv", config, cache_dir="c", budget=8 << 10)   # many windows
    ours, theirs = cache.meta["schema"], memory.schema.to_dict()
    assert [(c["name"], c["kind"], c.get("vocabulary")) for c in ours["inputs"]] == \
        [(c["name"], c["kind"], c.get("vocabulary")) for c in theirs["inputs"]]
    for o, t in zip(ours["inputs"], theirs["inputs"]):
        for k in ("mean", "std", "impute"):
            if isinstance(t.get(k), float):
                assert o[k] == pytest.approx(t[k], rel=1e-12, abs=1e-15)
            else:
                assert o.get(k) == t.get(k)
    assert np.array_equal(cache.val_rows, memory.val_rows)
    X, _ = cache.window(0, cache.n_rows)
    assert X.shape == memory.X.shape and np.allclose(X, memory.X, rtol=0, atol=1e-12)


def test_a_streamed_run_resumes_bit_for_bit(here):
    from nncli.model_io import load_model
    from nncli.run import TrainingRun
    _write(here / "d.csv")
    config = {"layers": [6], "epochs": 6, "seed": 5, "threads": 1, "val_split": 0.2,
              "memory": "64K", "shuffle_block": 300, "dtype": "float32"}
    TrainingRun("d.csv", config, output="whole.npz").execute()

    def stop_at_4(record, trainer):
        if record.epoch == 4:
            raise KeyboardInterrupt

    run = TrainingRun("d.csv", config, output="part.npz", checkpoint="ck.npz", checkpoint_every=3)
    with pytest.raises(KeyboardInterrupt):
        run.execute([stop_at_4])
    assert len(run.trainer.blocks) == 5   # it streamed
    meta = load_model("ck.npz").meta
    assert meta["checkpoint"]["epoch"] == 3 and meta["config"]["streamed"] is True
    TrainingRun("d.csv", {}, output="resumed.npz", resume="ck.npz").execute()
    assert np.array_equal(_phi("resumed.npz"), _phi("whole.npz"))


def test_streaming_with_a_validation_file(here):
    _write(here / "d.csv")
    _write(here / "v.csv", n=300, seed=4)
    r = run("train", "d.csv", *TRAIN, "--memory", "64K", "--val-data", "v.csv", "-o", "m.npz", "--json", "-q")
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["val_loss"] is not None and s["val_accuracy"] > 0.5
    r2 = run("train", "d.csv", *TRAIN, "--no-cache", "--val-data", "v.csv", "-o", "m2.npz", "--json", "-q")
    s2 = json.loads(r2.output)
    # every row of d.csv trains in both (no split): the same number of training rows
    assert run("info", "m.npz").output.count("1500 training rows") == 1
    assert s2["val_loss"] is not None


def test_a_real_process_streams_a_gzipped_file_within_its_budget(here):
    """`python -m nncli` end to end: a compressed file, a budget, the first line, the model."""
    import subprocess
    import sys

    import nncli
    _write(here / "d.csv", n=3000)
    (here / "d.csv.gz").write_bytes(gzip.compress((here / "d.csv").read_bytes()))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (os.path.dirname(os.path.dirname(nncli.__file__)), env.get("PYTHONPATH")) if p)
    p = subprocess.run([sys.executable, "-m", "nncli", "train", "d.csv.gz", "--memory", "256K",
                        "--epochs", "2", "-o", "m.npz"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    assert lines[0].startswith("Streaming: the data") and lines[1].startswith("Cache ")
    assert os.path.exists("m.npz") and os.listdir(".nncli-cache")
