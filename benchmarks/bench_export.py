"""Exported models against nncli itself, in the same run, on the same model and rows.

* onnxruntime running the exported whole-pipeline graph (columns in, label and probabilities
  out) vs nncli's predict path (encode_features → Network.predict → labels), in-process on the
  same in-memory rows; and the --raw graph vs Network.predict on the encoded matrix. One and
  two threads (onnxruntime's intra-op threads, nncli's --threads).
* The compiled C header (cc -O2) on the 3→3→3→1 network of data/three.csv: predictions/s of
  <name>_predict (preprocessing included) called row by row in a C loop, float and Q16, vs
  nncli's Network.predict on the same rows as one batch.

Run alone (`python benchmarks/bench_export.py`) or as the `export` section of run.py.
No targets: the issue asks for the ratios.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import REPO, Result, best_of, import_nncli, optional_import, ratio  # noqa: E402

N_ROWS = 20000

C_BENCH = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <time.h>
#include "model.h"
/* argv: rows file (N lines of 3 floats); prints predictions per second and a checksum */
int main(int argc, char **argv) {
    static float rows[%(n)d][3];
    float out[1];
    double sum = 0.0, best = 1e30;
    int r, i, rep;
    FILE *f = fopen(argv[argc - 1], "r");
    for (r = 0; r < %(n)d; r++)
        for (i = 0; i < 3; i++) if (fscanf(f, "%%f", &rows[r][i]) != 1) return 1;
    fclose(f);
    for (rep = 0; rep < 7; rep++) {
        struct timespec t0, t1;
        double dt;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (r = 0; r < %(n)d; r++) { model_predict(rows[r], out); sum += out[0]; }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        dt = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
        if (dt < best) best = dt;
    }
    printf("%%.6g %%.6g\n", %(n)d / best, sum);
    return 0;
}
"""


def mixed_csv(path, n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8))
    cat = rng.choice(["a", "b", "c", "d", "e"], n)
    y = np.where(X[:, 0] + X[:, 1] * X[:, 2] + (cat == "a") > 0.5, "yes_class", "no_class")
    with open(path, "w") as f:
        f.write(",".join([f"x{i}" for i in range(8)] + ["cat", "y"]) + "\n")
        for i in range(n):
            f.write(",".join([f"{v:.5f}" for v in X[i]] + [cat[i], y[i]]) + "\n")


def cli(*args):
    from click.testing import CliRunner

    from nncli.cli import cli as group
    r = CliRunner().invoke(group, [str(a) for a in args])
    if r.exit_code != 0:
        raise RuntimeError(f"nncli {' '.join(map(str, args))}: {r.output}")


def onnx_rows(threads, quick, log, tmp):
    ort = optional_import("onnxruntime")
    if ort is None or optional_import("onnx") is None:
        return [Result("export", "onnxruntime", note="skipped: pip install 'nncli[onnx]' onnxruntime")]
    from nncli.data import encode_features, labels_from_proba, read_csv
    from nncli.model_io import load_model
    n = N_ROWS // 4 if quick else N_ROWS
    csv = os.path.join(tmp, "mixed.csv")
    mixed_csv(csv, n)
    model = os.path.join(tmp, "mixed.npz")
    log("export: training the 13→64→32→2 model")
    cli("train", csv, "--target", "y", "--layers", "64,32", "--epochs", "2", "-q", "-o", model)
    cli("export", model, "-o", os.path.join(tmp, "m.onnx"))
    cli("export", model, "-o", os.path.join(tmp, "raw.onnx"), "--raw")
    loaded = load_model(model)
    net, schema = loaded.network, loaded.schema
    table = read_csv(csv)
    feeds = {}
    for c in schema.inputs:
        col = table.column(c.name)
        feeds[c.name] = (col.as_numbers()[0].astype(np.float32) if c.kind == "numeric"
                         else np.array([s.strip() for s in col.as_text()], dtype=object))
    X = encode_features(table, schema).astype(np.float32)
    results = []
    for t in threads:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = t, 1
        full = ort.InferenceSession(os.path.join(tmp, "m.onnx"), opts, providers=["CPUExecutionProvider"])
        raw = ort.InferenceSession(os.path.join(tmp, "raw.onnx"), opts, providers=["CPUExecutionProvider"])

        def ours_full():
            return labels_from_proba(net.predict(encode_features(table, schema), n_threads=t), schema)

        checks = (full.run(None, feeds)[0] == ours_full()).mean()
        for name, ours, ref, note in [
                ("whole pipeline (columns → label, proba)", ours_full,
                 lambda: full.run(None, feeds),
                 f"nncli: encode_features + Network.predict + labels; labels agree on {checks:.1%}"),
                ("network only (--raw, encoded X)", lambda: net.predict(X, n_threads=t),
                 lambda: raw.run(None, {"X": X}), "nncli: Network.predict")]:
            log(f"export: {name}, {t} thread(s)")
            a = best_of(ours, repeats=5, min_block=0.2)[0]
            b = best_of(ref, repeats=5, min_block=0.2)[0]
            results.append(Result("export", f"{name}, {n} rows, 13→64→32→2", t, n / a, n / b,
                                  "rows/s", f"onnxruntime {ort.__version__}", ratio(b, a),
                                  "nncli/onnxruntime", note=note).finish())
    return results


def c_rows(quick, log, tmp):
    cc = shutil.which("cc")
    if cc is None:
        return [Result("export", "C header", note="skipped: no C compiler")]
    from nncli.data import encode_features, read_csv
    from nncli.model_io import load_model
    three = os.path.join(REPO, "data", "three.csv")
    model = os.path.join(tmp, "three.npz")
    cli("train", three, "--layers", "3,3", "--activation", "relu,relu", "--epochs", "5", "-q", "-o", model)
    table = read_csv(three)
    loaded = load_model(model)
    rows = np.stack([table.column(c).as_numbers()[0] for c in ("x1", "x2", "x3")], axis=1)
    reps = max(1, (2000 if quick else 20000) // len(rows))
    rows = np.tile(rows, (reps, 1))
    X = encode_features(read_csv(three), loaded.schema)
    X = np.tile(X, (reps, 1))
    rows_file = os.path.join(tmp, "rows.txt")
    np.savetxt(rows_file, rows, fmt="%.6f")
    ours = len(X) / best_of(lambda: loaded.network.predict(X, n_threads=1), repeats=5, min_block=0.2)[0]
    results = []
    for label, extra in [("float", []), ("Q16 fixed point", ["--fixed", "16"])]:
        cli("export", model, "--format", "c", "--name", "model", "-o", os.path.join(tmp, "model.h"), *extra)
        src = os.path.join(tmp, "bench.c")
        with open(src, "w") as f:
            f.write(C_BENCH % {"n": len(rows)})
        exe = os.path.join(tmp, "bench")
        subprocess.run([cc, "-std=c99", "-O2", "-o", exe, src, "-lm"], check=True, cwd=tmp)
        log(f"export: C {label}")
        out = subprocess.run([exe, rows_file], capture_output=True, text=True, check=True)
        per_s = float(out.stdout.split()[0])
        results.append(Result("export", f"C {label} <name>_predict, 3→3→3→1, one row per call", 1,
                              per_s, ours, "predictions/s", "nncli Network.predict, one batch",
                              ratio(per_s, ours), "C/nncli",
                              note=f"cc -O2, {len(rows)} rows, best of 7 passes").finish())
    return results


def run(threads, quick, log):
    import_nncli()
    with tempfile.TemporaryDirectory() as tmp:
        return onnx_rows(threads, quick, log, tmp) + c_rows(quick, log, tmp)


if __name__ == "__main__":
    import platform
    quick = "--quick" in sys.argv
    results = run([1, 2], quick, lambda m: print(m, file=sys.stderr))
    from run import print_table
    with open("/proc/cpuinfo") as f:
        cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), platform.processor())
    print(f"CPU {cpu}; {time.strftime('%Y-%m-%d %H:%M')}")
    print_table(results)
