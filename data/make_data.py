"""Regenerate the example CSVs in data/ (deterministic: fixed seeds).

    python data/make_data.py            # curve, xor, three, large, kan
    python data/make_data.py --iris     # also rebuild iris.csv from scikit-learn's copy

The generated files are CC0 (public domain). iris.csv is Fisher's 1936 data;
see data/README.md.
"""

import argparse
import csv
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20240601


def write(name, header, rows):
    with open(os.path.join(HERE, name), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def fmt(v, digits=6):
    return f"{v:.{digits}f}"


def curve(rng):
    """y = sin(2x)·x/2 + noise, 200 points with x in [-3, 3]."""
    x = np.sort(rng.uniform(-3, 3, 200))
    y = np.sin(2 * x) * x / 2 + rng.normal(0, 0.05, x.shape)
    write("curve.csv", ["x", "y"], [[fmt(a), fmt(b)] for a, b in zip(x, y)])


def xor():
    write("xor.csv", ["x1", "x2", "y"], [[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 0]])


def three(rng):
    """y = tanh(x1 − x2) + 0.5·x3² + small noise, 500 rows: suits a 3→3→3→1 network."""
    x = rng.uniform(-2, 2, (500, 3))
    y = np.tanh(x[:, 0] - x[:, 1]) + 0.5 * x[:, 2] ** 2 + rng.normal(0, 0.02, 500)
    write("three.csv", ["x1", "x2", "x3", "y"], [[fmt(v) for v in r] + [fmt(t)] for r, t in zip(x, y)])


def large(rng):
    """20,000 rows × 10 features, 3 classes from a fixed rule with 2% label noise."""
    n, d = 20000, 10
    x = rng.normal(0, 1, (n, d))
    w = rng.normal(0, 1, (3, d))
    scores = np.tanh(x @ w.T) + 0.5 * np.stack([x[:, 0] * x[:, 1], x[:, 2] ** 2 - 1, -x[:, 3] * x[:, 4]], 1)
    label = np.argmax(scores, 1)
    flip = rng.random(n) < 0.02
    label[flip] = rng.integers(0, 3, flip.sum())
    names = np.array(["alpha", "beta", "gamma"])[label]
    write("large.csv", [f"f{i + 1}" for i in range(d)] + ["label"],
          [[fmt(v, 4) for v in r] + [c] for r, c in zip(x, names)])


def kan(rng):
    """The KAN paper's hello world: y = exp(sin(πx1) + x2²), 2000 rows uniform on [−1, 1]²."""
    x = rng.uniform(-1, 1, (2000, 2))
    y = np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2)
    write("kan.csv", ["x1", "x2", "y"], [[fmt(v) for v in r] + [fmt(t)] for r, t in zip(x, y)])


def iris():
    """Fisher's iris from scikit-learn's bundled copy, species as names."""
    import sklearn

    src = os.path.join(os.path.dirname(sklearn.__file__), "datasets", "data", "iris.csv")
    with open(src, newline="") as f:
        rows = list(csv.reader(f))[1:]
    species = ["setosa", "versicolor", "virginica"]
    write("iris.csv", ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"],
          [r[:4] + [species[int(r[4])]] for r in rows])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iris", action="store_true", help="also rebuild iris.csv (needs scikit-learn)")
    args = ap.parse_args()
    curve(np.random.default_rng(SEED))
    xor()
    three(np.random.default_rng(SEED + 1))
    large(np.random.default_rng(SEED + 2))
    kan(np.random.default_rng(SEED + 3))
    if args.iris:
        iris()


if __name__ == "__main__":
    main()
