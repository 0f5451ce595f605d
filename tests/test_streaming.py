"""Streaming training from the binary cache: statistics, reuse, invalidation, damage,
determinism, and equality with in-memory training for one block."""
import csv
import gzip
import io
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from nncli.cache import cache_path, get_cache
from nncli.cli import cli
from nncli.data import validation_split
from nncli.streaming import parse_memory

TRAIN = ["--epochs", "3", "--layers", "6", "--seed", "5", "--batch-size", "16", "--ensemble", "1"]


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
    # A streamed run keeps its validated network: in memory that is --no-refit.
    r = run("train", "d.csv", *TRAIN, *extra, "--no-cache", "--no-refit", "-o", "mem.npz", "-q")
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
    r = run("train", "d.csv", *TRAIN, "--memory", "64K", "--shuffle-block", "400", "-o", "m.npz", "-q")
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


def _write_kinds(path, n=700, seed=3):
    """Every column kind a table can hold: dates with times (some missing), an id, names,
    text with gaps and more values than the cap, numbers with '$' and thousands separators,
    a code declared categorical, day-first dates that fit month-first too, a numeric target."""
    rng = np.random.default_rng(seed)
    rows = ["when,id,name,city,price,code,since,y"]
    for i in range(n):
        day = np.datetime64("2021-01-01T00:00") + np.timedelta64(int(rng.integers(0, 900 * 24)), "h")
        when = "" if rng.random() < 0.04 else str(day).replace("T", " ")
        city = "" if rng.random() < 0.08 else f"town{int(rng.zipf(1.6)) % 40}"
        price = float(rng.integers(100, 400000)) / 100
        code = int(rng.integers(1, 5))
        y = (price / 1000 + (0 if not when else int(when[11:13])) / 8 + code + rng.normal() / 10
             + (len(city) % 3))
        name = "".join(rng.choice(list("aeioubdklmnrst"), 7)).title()
        rows.append(f'{when},C{i:05d},{name},{city},"${price:,.2f}",'
                    f"{code},{rng.integers(1, 13):02d}/{rng.integers(1, 13):02d}/2020,{y!r}")
    path.write_text("\n".join(rows) + "\n")


def _same_schema(ours, theirs):
    """Two schema dicts equal: every name, kind, vocabulary, format and choice exactly,
    every statistic to rounding (the streamed ones are merged over windows)."""
    if isinstance(theirs, dict):
        assert sorted(ours) == sorted(theirs)
        for k in theirs:
            _same_schema(ours[k], theirs[k])
    elif isinstance(theirs, list):
        assert len(ours) == len(theirs)
        for o, t in zip(ours, theirs):
            _same_schema(o, t)
    elif isinstance(theirs, float):
        assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12)
    else:
        assert ours == theirs


@pytest.mark.parametrize("impute", ["median", "mean", "drop"])
def test_a_streamed_run_decides_the_column_kinds_memory_decides(here, impute):
    from nncli import pipeline
    from nncli.data import read_csv
    _write_kinds(here / "kinds.csv")
    config = {"impute": impute, "val_split": 0.2, "seed": 1, "dtype": "float64",
              "max_categories": 8, "categorical": ["code"], "target": "y"}
    memory = pipeline.prepare_data(read_csv("kinds.csv"), config)
    cache, _ = get_cache("kinds.csv", config, cache_dir="c", budget=8 << 10)   # many chunks
    theirs = memory.schema.to_dict()
    kinds = {c["name"]: c["kind"] for c in theirs["inputs"]}
    assert kinds == {"when": "date", "city": "categorical", "price": "numeric", "code": "categorical",
                     "since": "date"}
    assert [c["name"] for c in theirs["ignored"]] == ["id", "name"]
    assert theirs["inputs"][1]["other"] and "number_format" in theirs["inputs"][2]
    _same_schema(cache.meta["schema"], theirs)
    assert np.array_equal(cache.val_rows, memory.val_rows)
    X, _ = cache.window(0, cache.n_rows)
    assert X.shape == memory.X.shape and np.allclose(X, memory.X, rtol=0, atol=1e-9)
    if impute == "median":   # a target written with '$' and separators: read the same way
        config.update(target="price", categorical=None)
        memory = pipeline.prepare_data(read_csv("kinds.csv"), config)
        cache, _ = get_cache("kinds.csv", config, cache_dir="c", budget=8 << 10)
        assert memory.schema.target_format == [{"decimal": ".", "units": ["$"]}]
        _same_schema(cache.meta["schema"], memory.schema.to_dict())
        assert np.allclose(cache.window(0, cache.n_rows)[1], memory.Y, rtol=0, atol=1e-12)


def test_a_tiny_memory_budget_gives_the_in_memory_schema_and_close_predictions(here):
    _write_kinds(here / "kinds.csv", n=1200)
    opts = ["--target", "y", "--epochs", "15", "--layers", "16", "--seed", "2"]
    r = run("train", "kinds.csv", *opts, "--no-cache", "--no-refit", "-o", "mem.npz")
    assert r.exit_code == 0, r.output
    s = run("train", "kinds.csv", *opts, "--memory", "64K", "-o", "st.npz")
    assert s.exit_code == 0, s.output
    assert s.output.startswith("Streaming")
    # the same decisions, said the same way
    said = [ln for ln in r.output.splitlines() if ln.startswith(("Columns", "  "))]
    assert said and said == [ln for ln in s.output.splitlines() if ln.startswith(("Columns", "  "))]
    assert "since: read day-first" in s.output
    from nncli.model_io import load_model
    a, b = (load_model(m).schema.to_dict() for m in ("mem.npz", "st.npz"))
    _same_schema(b, a)
    pm, ps = (np.loadtxt(io.StringIO(run("predict", m, "kinds.csv").output), delimiter=",",
                         skiprows=1) for m in ("mem.npz", "st.npz"))
    with open("kinds.csv", newline="") as f:
        y = np.array([float(row["y"]) for row in csv.DictReader(f)])
    r2 = [1 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2) for p in (pm, ps)]
    # the blocks shuffle the rows differently, and no refit: close, not equal
    assert min(r2) > 0.7 and abs(r2[0] - r2[1]) < 0.03 and np.corrcoef(pm, ps)[0, 1] > 0.98


def test_decimal_commas_and_month_first_dates_stream_as_in_memory(here):
    from nncli import pipeline
    from nncli.data import read_csv
    rng = np.random.default_rng(4)
    rows = ["day;weight;flag;y"]
    for _ in range(600):
        w = f"{rng.integers(0, 5000) / 100:.2f}".replace(".", ",") + " kg"
        day = f"{rng.integers(1, 13):02d}/{rng.integers(1, 29):02d}/2024"
        rows.append(f"{day};{w};{rng.choice(['yes', 'no', ''])};{rng.normal()!r}")
    (here / "eu.csv").write_text("\n".join(rows) + "\n")
    config = {"impute": "median", "val_split": 0.2, "seed": 3, "dtype": "float64",
              "dates": "monthfirst", "target": "y"}
    memory = pipeline.prepare_data(read_csv("eu.csv"), config)
    cache, _ = get_cache("eu.csv", config, cache_dir="c", budget=8 << 10)
    theirs = memory.schema.to_dict()
    assert [(c["kind"], c.get("format"), c.get("number_format")) for c in theirs["inputs"]] == [
        ("date", "%m/%d/%Y", None), ("numeric", None, {"decimal": ",", "units": ["kg"]}),
        ("boolean", None, None)]
    _same_schema(cache.meta["schema"], theirs)
    assert np.allclose(cache.window(0, cache.n_rows)[0], memory.X, rtol=0, atol=1e-9)
