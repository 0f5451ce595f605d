"""nncli descend: optimiser paths on 2-parameter surfaces, checked against hand arithmetic."""
import csv
import io
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from nncli.cli import cli
from nncli.surfaces import SURFACES, from_expression

PNG = b"\x89PNG\r\n\x1a\n"


def run(*args):
    return CliRunner().invoke(cli, ["descend", *map(str, args)])


def rows(result):
    return list(csv.DictReader(io.StringIO(result.stdout)))


def path(result, optimizer):
    """[φ1, φ2, φ1, φ2, …] of one optimiser's path (flat, for pytest.approx)."""
    return [float(r[k]) for r in rows(result) if r["optimizer"] == optimizer for k in ("phi1", "phi2")]


def test_gd_on_the_bowl_by_hand():
    r = run("bowl", "--optimizer", "gd", "--lr", 0.1, "--steps", 3)
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[0] == "step,optimizer,phi1,phi2,loss,grad1,grad2"
    got = rows(r)
    assert [int(x["step"]) for x in got] == [0, 1, 2, 3]
    # L = (φ1 − 3)² + (φ2 − 2)², ∇L = (2(φ1 − 3), 2(φ2 − 2)); start (0, 0): L = 9 + 4 = 13
    assert got[0] == dict(step="0", optimizer="gd", phi1="0", phi2="0", loss="13", grad1="-6", grad2="-4")
    # φ ← φ − 0.1·∇L: (0, 0) − 0.1·(−6, −4) = (0.6, 0.4); L = 2.4² + 1.6² = 8.32
    # then ∇L = (−4.8, −3.2) → (1.08, 0.72); then ∇L = (−3.84, −2.56) → (1.464, 0.976)
    expected = [(0.6, 0.4, 8.32, -4.8, -3.2), (1.08, 0.72, 5.3248, -3.84, -2.56),
                (1.464, 0.976, 3.407872, -3.072, -2.048)]
    for row, want in zip(got[1:], expected):
        have = [float(row[k]) for k in ("phi1", "phi2", "loss", "grad1", "grad2")]
        assert have == pytest.approx(want, rel=1e-12)
    # each step shrinks the distance to the minimum (3, 2) by the factor 1 − 0.1·2 = 0.8
    assert r.stderr == ""


def test_momentum_and_adam_first_steps_on_the_bowl():
    r = run("bowl", "--optimizer", "momentum,adam", "--lr", 0.1, "--momentum", 0.9, "--beta1", 0.9,
            "--steps", 2)
    assert r.exit_code == 0, r.output
    # momentum: v ← μv + g; φ ← φ − lr·v.  v1 = (−6, −4) → φ1 = (0.6, 0.4);
    # g1 = (−4.8, −3.2), v2 = 0.9·(−6, −4) + g1 = (−10.2, −6.8) → φ2 = (1.62, 1.08)
    assert path(r, "momentum") == pytest.approx([0, 0, 0.6, 0.4, 1.62, 1.08], rel=1e-12)
    # adam, first step: m̂ = g, v̂ = g², so the step is lr·g/|g| = 0.1 per coordinate
    # (ε = 1e-8 changes the 9th digit): (0, 0) → (0.1, 0.1)
    assert path(r, "adam")[2:4] == pytest.approx([0.1, 0.1], rel=1e-8)


def test_gd_diverges_on_the_ravine_while_adam_converges(tmp_path):
    out = tmp_path / "ravine.png"
    r = run("ravine", "--optimizer", "gd,adam", "--lr", 0.1, "--start", "1,2", "--steps", 100,
            "--plot", out)
    assert r.exit_code == 0, r.output          # showing divergence is the lesson: not an error
    # L = 50·φ1² + φ2², ∂L/∂φ1 = 100·φ1: φ1 ← φ1 − 0.1·100·φ1 = −9·φ1, φ2 ← 0.8·φ2
    # (1, 2) → (−9, 1.6) → (81, 1.28) → (−729, 1.024): L = 50·729² + 1.024² ≈ 2.66e7 > 1e6
    gd = path(r, "gd")
    assert gd == pytest.approx([1, 2, -9, 1.6, 81, 1.28, -729, 1.024], rel=1e-12)
    loss3 = [float(x["loss"]) for x in rows(r) if x["optimizer"] == "gd"][-1]
    assert loss3 == pytest.approx(50 * 729 ** 2 + 1.024 ** 2)
    assert "gd diverged at step 3" in r.stderr and "try a smaller --lr" in r.stderr
    adam = [x for x in rows(r) if x["optimizer"] == "adam"]
    assert len(adam) == 101 and float(adam[-1]["loss"]) < 0.05
    assert "adam" not in r.stderr
    assert out.read_bytes()[:8] == PNG and out.stat().st_size > 20_000


def test_gd_with_a_small_lr_converges_on_the_ravine():
    r = run("ravine", "--lr", 0.015, "--steps", 400)
    assert r.exit_code == 0 and r.stderr == ""
    assert float(rows(r)[-1]["loss"]) < 1e-6


def test_noise_is_seeded_and_changes_the_path():
    base = run("sincos", "--lr", 0.5, "--steps", 20)
    noisy = run("sincos", "--lr", 0.5, "--steps", 20, "--noise", 0.1, "--seed", 3)
    again = run("sincos", "--lr", 0.5, "--steps", 20, "--noise", 0.1, "--seed", 3)
    other = run("sincos", "--lr", 0.5, "--steps", 20, "--noise", 0.1, "--seed", 4)
    assert noisy.stdout == again.stdout != base.stdout and noisy.stdout != other.stdout
    # the start and the exact gradient there do not depend on the noise
    assert rows(noisy)[0] == rows(base)[0]
    # sincos L = (sin(φ1 + φ2) + 2)/4: both partials are cos(φ1 + φ2)/4
    first = rows(base)[0]
    assert float(first["grad1"]) == pytest.approx(np.cos(1.5) / 4) == float(first["grad2"])


def test_noise_of_one_optimiser_does_not_depend_on_the_others():
    alone = run("bowl", "--optimizer", "gd", "--noise", 0.3, "--steps", 5)
    both = run("bowl", "--optimizer", "gd,adam", "--noise", 0.3, "--steps", 5)
    assert path(alone, "gd") == path(both, "gd")


def test_per_optimizer_learning_rates_and_repeated_names():
    r = run("bowl", "--optimizer", "gd,gd", "--lr", "0.1,0.01", "--steps", 1)
    assert r.exit_code == 0, r.output
    assert path(r, "gd lr=0.1")[2:] == pytest.approx([0.6, 0.4])
    assert path(r, "gd lr=0.01")[2:] == pytest.approx([0.06, 0.04])
    r = run("bowl", "--optimizer", "gd,adam,sgd", "--lr", "0.1,0.01")
    assert r.exit_code == 2 and "one per optimiser" in r.output


@pytest.mark.parametrize("args, message", [
    ([], "give a SURFACE or --expr"),
    (["bowl", "--expr", "x**2"], "give a SURFACE or --expr"),
    (["bowl", "--optimizer", "lbfgs"], "'lbfgs' is not one of gd, sgd"),
    (["bowl", "--optimizer", ""], "name at least one optimiser"),
    (["bowl", "--start", "1"], "give 2 numbers"),
    (["bowl", "--start", "1,a"], "'a': not a number"),
    (["bowl", "--lr", "-1"], "'-1': must be > 0"),
    (["bowl", "--lr", "0.1,x"], "'x': not a number"),
    (["bowl", "--momentum", "1"], "1.0 is not in the range 0<=x<1"),
    (["saddle"], "'saddle' is not one of"),
])
def test_usage_errors(args, message):
    r = run(*args)
    assert r.exit_code == 2 and message in r.output


def test_a_hyperparameter_goes_to_the_optimisers_that_take_it():
    # --momentum sets μ of momentum and leaves adam alone; --beta1 sets adam's β1 only.
    both = run("bowl", "--optimizer", "momentum,adam", "--lr", 0.1, "--momentum", 0.5,
               "--beta1", 0.8, "--steps", 3)
    mom = run("bowl", "--optimizer", "momentum", "--lr", 0.1, "--momentum", 0.5, "--steps", 3)
    adam = run("bowl", "--optimizer", "adam", "--lr", 0.1, "--beta1", 0.8, "--steps", 3)
    assert both.exit_code == mom.exit_code == adam.exit_code == 0
    assert path(both, "momentum") == path(mom, "momentum")
    assert path(both, "adam") == path(adam, "adam")
    assert path(adam, "adam") != path(run("bowl", "--optimizer", "adam", "--lr", 0.1, "--steps", 3), "adam")


@pytest.mark.parametrize("args, message", [
    (["--optimizer", "gd,adam", "--momentum", "0.5"],
     "Error: --momentum does not apply to the gd, adam optimizers (it applies to momentum, nesterov)"),
    (["--optimizer", "momentum", "--beta1", "0.5"],
     "Error: --beta1 does not apply to the momentum optimizer (it applies to adam, adamw)"),
    (["--beta2", "0.5"], "Error: --beta2 does not apply to the gd optimizer (it applies to rmsprop, adam, adamw)"),
])
def test_a_hyperparameter_no_chosen_optimiser_takes_is_a_usage_error(args, message):
    r = run("bowl", *args)
    assert r.exit_code == 2 and message in r.output


def test_expr_gradient_is_exact():
    r = run("--expr", "phi1**2 + 3*phi2 + sin(phi1*phi2)", "--start", "1,2", "--steps", 1, "--lr", 0.1)
    assert r.exit_code == 0, r.output
    first = rows(r)[0]
    # ∂/∂φ1 = 2φ1 + φ2·cos(φ1φ2) = 2 + 2cos 2; ∂/∂φ2 = 3 + φ1·cos(φ1φ2) = 3 + cos 2
    assert float(first["loss"]) == pytest.approx(1 + 6 + np.sin(2))
    assert float(first["grad1"]) == pytest.approx(2 + 2 * np.cos(2), rel=1e-9)
    assert float(first["grad2"]) == pytest.approx(3 + np.cos(2), rel=1e-9)


@pytest.mark.parametrize("expr", ["x**2 + 10*sin(y)**2", "φ1**2 + 10*sin(φ2)**2",
                                  "phi1^2 + 10*sin(phi2)^2", "x*x + 10*sin(y)*sin(y)"])
def test_expr_accepts_the_variable_spellings(expr):
    ref = run("--expr", "phi1**2 + 10*sin(phi2)**2", "--steps", 5, "--lr", 0.05, "--start", "2,1")
    r = run("--expr", expr, "--steps", 5, "--lr", 0.05, "--start", "2,1")
    assert r.exit_code == 0, r.output
    assert path(r, "gd") == pytest.approx(path(ref, "gd"), rel=1e-12)


@pytest.mark.parametrize("expr, message", [
    ("__import__('os')", "'__import__' is not allowed"),
    ("__import__('os').system('echo hacked')", "'__import__' is not allowed"),
    ("phi1.real", "'.' is not allowed"),
    ("(lambda: 1)()", "'lambda' is not allowed"),
    ("[phi1][0]", "'[' is not allowed"),
    ("eval('1')", "'eval' is not allowed"),
    ("phi1 + phi3", "'phi3' is not allowed"),
    ("sin phi1", "needs its argument in parentheses"),
    ("phi1(2)", "phi1 is not a function"),
    ("phi1 +", "cannot parse --expr"),
    ("0x10 * phi1", "not a plain decimal number"),
    ("   ", "--expr is empty"),
    ("9**9**9 * x", "too large for float64"),       # refused at once, not computed exactly
    ("x * log(0)", "too large for float64 or undefined"),
    ("1/(x - x)", "infinite or undefined"),
])
def test_expr_rejects_anything_but_arithmetic(expr, message):
    r = run("--expr", expr)
    # A refused expression is a usage error, like any bad option value.
    assert r.exit_code == 2 and message in r.output, r.output
    assert "Traceback" not in r.output and "hacked" not in r.output


def test_expr_without_sympy(monkeypatch):
    monkeypatch.setitem(sys.modules, "sympy", None)
    r = run("--expr", "x**2 + y**2")
    assert r.exit_code == 1 and "needs sympy" in r.output and "nncli[symbolic]" in r.output


def test_an_unusable_start_is_an_error_and_a_nan_path_stops():
    r = run("--expr", "log(x) + y**2", "--start", "-1,1")
    assert r.exit_code == 1 and "cannot start at (-1, 1)" in r.output
    # sqrt(x) pulls gd through 0 into the negative numbers, where the loss is not real
    r = run("--expr", "sqrt(x) + y**2", "--start", "0.5,1", "--lr", 1)
    assert r.exit_code == 0
    assert "gd diverged at step 1" in r.stderr and "not finite" in r.stderr
    assert len(rows(r)) == 1


def test_plot_formats_and_bad_extension(tmp_path):
    r = run("rosenbrock", "--optimizer", "momentum,adam", "--lr", "0.001,0.05", "--steps", 50,
            "--plot", tmp_path / "r.svg", "--title", "banana")
    assert r.exit_code == 0, r.output
    assert "banana" in (tmp_path / "r.svg").read_text()
    r = run("bowl", "--plot", tmp_path / "r.gif")
    assert r.exit_code == 2 and ".png, .svg or .pdf" in r.output and r.stdout == ""


@pytest.mark.parametrize("name", list(SURFACES))
def test_surface_gradients_match_central_differences(name):
    s = SURFACES[name]
    rng = np.random.default_rng(0)
    p = np.column_stack([rng.uniform(*s.xrange, 20), rng.uniform(*s.yrange, 20)])
    h = 1e-6
    g1, g2 = s.grad(p[:, 0], p[:, 1])
    n1 = (s.loss(p[:, 0] + h, p[:, 1]) - s.loss(p[:, 0] - h, p[:, 1])) / (2 * h)
    n2 = (s.loss(p[:, 0], p[:, 1] + h) - s.loss(p[:, 0], p[:, 1] - h)) / (2 * h)
    assert np.allclose(g1, n1, rtol=1e-5, atol=1e-5) and np.allclose(g2, n2, rtol=1e-5, atol=1e-5)
    assert s.loss(*s.minimum) == pytest.approx(min(s.loss(p[:, 0], p[:, 1]).min(), s.loss(*s.minimum)))


def test_expression_surface_is_vectorised_and_constant_parts_broadcast():
    s = from_expression("3 + 2*x")           # ∂/∂φ2 = 0, a constant
    g1, g2 = s.grad(np.zeros((4, 4)), np.zeros((4, 4)))
    assert g1.shape == g2.shape == (4, 4) and np.all(g1 == 2) and np.all(g2 == 0)
    assert s.loss(np.ones(3), np.ones(3)).tolist() == [5, 5, 5]


def test_an_unusable_start_prints_no_csv():
    from click.testing import CliRunner
    from nncli.cli import cli
    r = CliRunner().invoke(cli, ["descend", "--expr", "1/(x-1)", "--start", "1,0"])
    assert r.exit_code == 1 and r.stdout == "" and "cannot start at (1, 0)" in r.stderr
