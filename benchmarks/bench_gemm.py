"""GEMM: GFLOP/s of nncli's matmul against numpy.matmul (OpenBLAS), same operands, same
layouts (transposes passed as views so both call the transposed kernel), preallocated `out`
for both, 1 and 2 threads (numpy's through threadpoolctl)."""
import time

import numpy as np

from common import Result, import_nncli, optional_import

# (M, N, K) of plain A·B; targets: ≥ 0.9 on the big square-ish ones, ≥ 1.0 on training sizes.
PLAIN = [((32, 64, 64), 1.0), ((128, 784, 256), 1.0), ((128, 256, 128), 1.0),
         ((128, 128, 10), 1.0), ((256, 2048, 2048), 0.9), ((512, 512, 512), 0.9),
         ((1024, 1024, 1024), 0.9), ((2048, 2048, 2048), 0.9)]
BIG = {(1024, 1024, 1024), (2048, 2048, 2048)}

# The training configs' layers: (name, batch, widths).
NETS = [("tabular", 32, [16, 64, 64, 1]), ("mnist", 128, [784, 256, 128, 10]),
        ("wide", 256, [512, 2048, 2048, 10])]


def training_products(quick):
    """The three products of backprop per layer, in the layouts dense.pyx uses:
    forward f = h·Ωᵀ (A·Bᵀ), ∂Ω = δᵀ·h (Aᵀ·B), ∂h = δ·Ω (A·B; not for the first layer)."""
    out = []
    for name, B, widths in NETS:
        if quick and name == "tabular":
            continue
        for k, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
            tag = f"{name} L{k + 1}"
            out.append((f"{tag} fwd h·Ωᵀ", (B, n_out, n_in), False, True))
            out.append((f"{tag} dΩ δᵀ·h", (n_out, n_in, B), True, False))
            if k > 0:
                out.append((f"{tag} dh δ·Ω", (B, n_in, n_out), False, False))
    return out


def operands(M, N, K, ta, tb, dtype, rng):
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
    return a, b


def time_pair(f_ours, f_ref, repeats, min_block, cap):
    """Interleaved blocks of ours and the reference; best seconds per call of each.
    A call slower than `cap` seconds is timed once (its warm-up) and flagged."""
    res = {}
    for key, f in (("ours", f_ours), ("ref", f_ref)):
        t0 = time.perf_counter()
        f()
        res[key] = [time.perf_counter() - t0]
    slow = max(res["ours"][0], res["ref"][0]) > cap
    if slow:
        return min(res["ours"]), min(res["ref"]), True
    n = {k: max(1, int(min_block / max(v[0], 1e-9))) for k, v in res.items()}
    best = {"ours": float("inf"), "ref": float("inf")}
    for _ in range(repeats):
        for key, f in (("ours", f_ours), ("ref", f_ref)):
            # OpenBLAS's workers spin for about 2^28 cycles (~0.1 s) after each call, and on
            # 2 cores a spinning thread takes the core the other library's second thread
            # needs: let them go to sleep before timing.
            time.sleep(0.25)
            f()  # untimed warm-up
            t0 = time.perf_counter()
            for _ in range(n[key]):
                f()
            best[key] = min(best[key], (time.perf_counter() - t0) / n[key])
    return best["ours"], best["ref"], False


def run(threads, quick, log):
    import_nncli()
    from nncli._kernels.gemm import matmul
    tpc = optional_import("threadpoolctl")
    repeats, min_block, cap = (3, 0.02, 2.0) if quick else (7, 0.05, 10.0)
    plain = [(f"{M}×{N}×{K}", (M, N, K), False, False, tgt) for (M, N, K), tgt in PLAIN
             if not (quick and (M, N, K) in BIG)]
    seen = {(shape, ta, tb): i for i, (_, shape, ta, tb, _) in enumerate(plain)}
    train = []
    for name, shape, ta, tb in training_products(quick):
        i = seen.get((shape, ta, tb))
        if i is not None:  # the same product as a listed shape: one measurement, both names
            lab, shp, a_, b_, tgt = plain[i]  # keep the listed shape's own target
            plain[i] = (f"{lab} = {name}", shp, a_, b_, tgt)
        else:
            train.append((name, shape, ta, tb, 1.0))
    # --quick: float64 only on the listed shapes (the placeholder kernel is very slow there)
    cases_by_dtype = {np.float32: plain + train, np.float64: plain if quick else plain + train}
    rng = np.random.default_rng(0)
    results = []
    for dtype, cases in cases_by_dtype.items():
        dname = np.dtype(dtype).name
        for label, (M, N, K), ta, tb, target in cases:
            a, b = operands(M, N, K, ta, tb, dtype, rng)
            c_ours = np.empty((M, N), dtype)
            c_ref = np.empty((M, N), dtype)
            av = a.T if ta else a
            bv = b.T if tb else b
            flops = 2.0 * M * N * K
            for n in threads:
                def ours():
                    matmul(a, b, trans_a=ta, trans_b=tb, out=c_ours, n_threads=n)

                def ref():
                    np.matmul(av, bv, out=c_ref)

                if tpc is not None:
                    with tpc.threadpool_limits(limits=n, user_api="blas"):
                        t_ours, t_ref, slow = time_pair(ours, ref, repeats, min_block, cap)
                else:
                    t_ours, t_ref, slow = time_pair(ours, ref, repeats, min_block, cap)
                # A fast wrong kernel must not pass: compare with numpy (float64 accumulate).
                err = float(np.max(np.abs(c_ours.astype(np.float64) - c_ref))
                            / (np.max(np.abs(c_ref)) + 1e-30))
                tol = 1e-4 if dtype == np.float32 else 1e-12
                tol *= max(1.0, K ** 0.5)
                notes = []
                if err > tol:
                    notes.append(f"WRONG (rel err {err:.1e})")
                if slow:
                    notes.append("one call timed")
                op = ("Aᵀ" if ta else "A") + "·" + ("Bᵀ" if tb else "B")
                r = Result("gemm", f"{dname} {op} {label}" if "×" in label else f"{dname} {op} {label} ({M},{N},{K})", n,
                           ours=flops / t_ours / 1e9, ref=flops / t_ref / 1e9, unit="GFLOP/s",
                           reference="numpy.matmul", ratio=t_ref / t_ours, ratio_kind="ours/ref",
                           target=target, note="; ".join(notes),
                           extra={"M": M, "N": N, "K": K, "trans_a": ta, "trans_b": tb,
                                  "dtype": dname, "rel_err": err, "sec_ours": t_ours,
                                  "sec_ref": t_ref})
                if err > tol:
                    r.met = False
                    results.append(r)
                    continue
                results.append(r.finish())
                log(f"  gemm {r.name} t={n}: {r.ours:.2f} vs {r.ref:.2f} GFLOP/s")
    return results
