"""KAN training: nncli against pykan (PyPI `pykan`, on PyTorch CPU), and against an MLP.

For each of the KAN paper's toy functions, the same data (1000 training and 1000 test points
uniform on [−1, 1]^n, as pykan's `create_dataset`), the same network (width, grid G, order
k), the same optimiser (Adam, same learning rate), the same batch size and the same number
of steps (updates), in float32 on one thread:

- nncli: `Network(kinds=["kan", ...])` + `train` (one kernel call per epoch);
- pykan fit(): `KAN(width, grid, k).fit(dataset, opt="Adam", steps=…, batch=…,
  update_grid=False)`, the way pykan's tutorials train (it also evaluates the test set each
  step, as its loop always does);
- pykan bare: the same pykan model in `speed()` mode (no symbolic branch, no saved
  activations) trained by a plain torch Adam loop over the same shuffled batches as nncli —
  pykan's fastest path, for the honest ratio;
- nncli MLP: tanh, two hidden layers of equal width, chosen so that P is closest to the
  KAN's, same steps and optimiser.

Both use pykan's grid (G intervals on [−1, 1], nncli's default knots) and neither updates it
during training. Each run is repeated for seeds 0, 1, 2 (init and batch order; the data stay
the same) and medians are reported: one seed's RMSE varies by ±30%. Reported: wall time of training, the ratio
pykan / nncli (higher is better for nncli; target ≥ 20× against pykan bare), and test RMSE in
the function's units.

    python benchmarks/bench_kan.py            # all four functions
    python benchmarks/bench_kan.py --quick    # fewer steps
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import import_nncli, optional_import  # noqa: E402

TARGET = 20.0


def _j0(x):
    from scipy.special import j0
    return j0(x)


# name: (n_var, f(X) on numpy, width, grid, order, lr)
FUNCTIONS = {
    "exp(sin(πx)+y²)": (2, lambda X: np.exp(np.sin(np.pi * X[:, 0]) + X[:, 1] ** 2), [2, 5, 1], 5, 3, 0.01),
    "x·y": (2, lambda X: X[:, 0] * X[:, 1], [2, 2, 1], 5, 3, 0.01),
    "exp(½(sin(π(x1²+x2²))+sin(π(x3²+x4²))))": (
        4, lambda X: np.exp(0.5 * (np.sin(np.pi * (X[:, 0] ** 2 + X[:, 1] ** 2))
                                   + np.sin(np.pi * (X[:, 2] ** 2 + X[:, 3] ** 2)))), [4, 4, 2, 1], 5, 3, 0.01),
    "J0(20x) (Bessel)": (1, lambda X: _j0(20 * X[:, 0]), [1, 1], 20, 3, 0.01),
}


def dataset(n_var, f, seed=0, n=1000):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, n_var)).astype(np.float32)
    Xt = rng.uniform(-1, 1, (n, n_var)).astype(np.float32)
    return X, f(X).reshape(-1, 1).astype(np.float32), Xt, f(Xt).reshape(-1, 1).astype(np.float32)


def rmse(pred, Y):
    return float(np.sqrt(np.mean((np.asarray(pred, dtype=np.float64) - Y) ** 2)))


def batches(n, batch, epochs, seed):
    """The shuffled batches of every epoch (nncli's order is its own; pykan bare uses these)."""
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        idx = rng.permutation(n)
        for s in range(0, n, batch):
            yield idx[s:s + batch]


def run_nncli(X, Y, Xt, Yt, width, grid, order, lr, batch, epochs, seed):
    from nncli.network import Network
    from nncli.training import train
    t0 = time.perf_counter()
    # Network's default knots are pykan's: G intervals on [−1, 1] per input, k more each side.
    net = Network(width, "identity", kinds=["kan"] * (len(width) - 1), seed=seed,
                  options={"grid": grid, "order": order})
    train(net, X, Y, lr=lr, batch_size=batch, epochs=epochs, seed=seed, n_threads=1)
    return time.perf_counter() - t0, rmse(net.predict(Xt, n_threads=1), Yt), net.n_params


def mlp_width(n_in, P):
    """Hidden width h of [n_in, h, h, 1] whose parameter count is closest to P."""
    count = lambda h: n_in * h + h + h * h + h + h + 1
    return min(range(1, 200), key=lambda h: abs(count(h) - P)), count


def run_mlp(X, Y, Xt, Yt, P, lr, batch, epochs, seed):
    from nncli.network import Network
    from nncli.training import train
    h, count = mlp_width(X.shape[1], P)
    t0 = time.perf_counter()
    net = Network([X.shape[1], h, h, 1], "tanh", seed=seed)
    train(net, X, Y, lr=lr, batch_size=batch, epochs=epochs, seed=seed, n_threads=1)
    return time.perf_counter() - t0, rmse(net.predict(Xt, n_threads=1), Yt), count(h), h


def pykan_model(width, grid, order, seed):
    import contextlib
    import io
    from kan import KAN
    with contextlib.redirect_stdout(io.StringIO()):
        return KAN(width=list(width), grid=grid, k=order, seed=seed, auto_save=False)  # it edits width


def run_pykan_fit(X, Y, Xt, Yt, width, grid, order, lr, batch, steps, seed):
    import contextlib
    import io
    import torch
    data = {"train_input": torch.from_numpy(X), "train_label": torch.from_numpy(Y),
            "test_input": torch.from_numpy(Xt), "test_label": torch.from_numpy(Yt)}
    model = pykan_model(width, grid, order, seed)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        model.fit(data, opt="Adam", steps=steps, lr=lr, batch=batch, update_grid=False, log=steps + 1)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        return seconds, rmse(model(data["test_input"]).numpy(), Yt)


def run_pykan_bare(X, Y, Xt, Yt, width, grid, order, lr, batch, epochs, seed):
    import torch
    model = pykan_model(width, grid, order, seed).speed()
    Xa, Ya = torch.from_numpy(X), torch.from_numpy(Y)
    t0 = time.perf_counter()
    opt = torch.optim.Adam(model.get_params(), lr=lr)
    for idx in batches(len(X), batch, epochs, seed=seed):
        i = torch.from_numpy(idx)
        opt.zero_grad()
        loss = torch.mean((model(Xa[i]) - Ya[i]) ** 2)
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        return seconds, rmse(model(torch.from_numpy(Xt)).numpy(), Yt)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="30 epochs instead of 200")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--only", default=None, help="comma-separated indices of FUNCTIONS (0-based)")
    ap.add_argument("--seeds", type=int, default=3,
                    help="runs per framework (init and batch order seeds 0..n−1); medians reported")
    ap.add_argument("--json", default=None, help="write the results here too")
    args = ap.parse_args(argv)
    epochs = args.epochs or (30 if args.quick else 200)
    nncli = import_nncli()
    missing = [m for m in ("torch", "kan", "scipy") if optional_import(m) is None]
    if missing:
        sys.exit(f"bench_kan.py compares with pykan: pip install pykan torch scipy (missing: {', '.join(missing)})")
    import torch
    torch.set_num_threads(1)
    from importlib.metadata import version
    from nncli._kernels.gemm import isa
    steps = epochs * math.ceil(1000 / args.batch)
    print(f"nncli {nncli.__version__} ({os.path.dirname(nncli.__file__)}, gemm {isa()}), "
          f"pykan {version('pykan')}, torch {torch.__version__}; float32, 1 thread; "
          f"Adam, batch {args.batch}, {steps} steps ({epochs} epochs of 1000 rows); test RMSE on 1000 points; "
          f"medians over seeds 0..{args.seeds - 1}")
    print()
    head = ("| function | KAN | P | nncli s | pykan fit() s | pykan bare s | × vs fit | × vs bare "
            "| RMSE nncli | RMSE pykan fit | RMSE pykan bare | MLP (P) | MLP s | RMSE MLP |")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    rows = []
    chosen = list(FUNCTIONS.items())
    if args.only:
        chosen = [chosen[int(i)] for i in args.only.split(",")]
    for name, (n_var, f, width, grid, order, lr) in chosen:
        X, Y, Xt, Yt = dataset(n_var, f)
        med = lambda runs: [statistics.median(v) for v in zip(*runs)]
        seeds = range(args.seeds)
        t_n, r_n, P = med(run_nncli(X, Y, Xt, Yt, width, grid, order, lr, args.batch, epochs, s) for s in seeds)
        t_f, r_f = med(run_pykan_fit(X, Y, Xt, Yt, width, grid, order, lr, args.batch, steps, s) for s in seeds)
        t_b, r_b = med(run_pykan_bare(X, Y, Xt, Yt, width, grid, order, lr, args.batch, epochs, s) for s in seeds)
        t_m, r_m, P_m, h = med(run_mlp(X, Y, Xt, Yt, P, lr, args.batch, epochs, s) for s in seeds)
        P, P_m, h = int(P), int(P_m), int(h)
        row = dict(function=name, width=width, grid=grid, order=order, P=P, steps=steps,
                   nncli_s=t_n, pykan_fit_s=t_f, pykan_bare_s=t_b, ratio_fit=t_f / t_n,
                   ratio_bare=t_b / t_n, rmse_nncli=r_n, rmse_pykan_fit=r_f, rmse_pykan_bare=r_b,
                   mlp=[n_var, h, h, 1], mlp_P=P_m, mlp_s=t_m, rmse_mlp=r_m,
                   met=t_b / t_n >= TARGET and r_n <= 1.05 * min(r_f, r_b))
        rows.append(row)
        print(f"| {name} | {width} G={grid} k={order} | {P} | {t_n:.3f} | {t_f:.2f} | {t_b:.2f} | "
              f"{t_f / t_n:.0f}× | {t_b / t_n:.0f}× | {r_n:.2e} | {r_f:.2e} | {r_b:.2e} | "
              f"{[n_var, h, h, 1]} ({P_m}) | {t_m:.3f} | {r_m:.2e} |", flush=True)
    met = all(r["met"] for r in rows)
    print()
    print(f"target: ≥ {TARGET:.0f}× faster than pykan bare at equal or better test RMSE "
          f"(within 5% of pykan's better median): {'met' if met else 'NOT met'} "
          f"(met on {sum(r['met'] for r in rows)} of {len(rows)} functions)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return rows


if __name__ == "__main__":
    main()
