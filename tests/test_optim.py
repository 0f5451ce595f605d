"""One hand-worked update per optimiser: φ = [1, −2], g = [0.5, 1], the arithmetic in comments."""
import math

import numpy as np
import pytest

from nncli.optim import OPTIMIZERS, STEP_RULES, Optimizer
from nncli.schedules import SCHEDULES


def one_step(name, dtype=np.float64, steps=1, **kw):
    opt = Optimizer(name, **kw)
    phi = np.array([1.0, -2.0], dtype=dtype)
    for _ in range(steps):
        opt.step(phi, np.array([0.5, 1.0], dtype=dtype))
    return phi, opt


def test_sgd():
    phi, _ = one_step("sgd", lr=0.1)
    # φ − α·g = [1 − 0.05, −2 − 0.1]
    np.testing.assert_allclose(phi, [0.95, -2.1])


def test_gd_is_sgd():
    assert OPTIMIZERS["gd"].code == OPTIMIZERS["sgd"].code


def test_momentum_two_steps():
    phi, opt = one_step("momentum", lr=0.1, momentum=0.9, steps=2)
    # v1 = g = [0.5, 1]; φ1 = [0.95, −2.1]
    # v2 = 0.9·v1 + g = [0.95, 1.9]; φ2 = φ1 − 0.1·v2 = [0.855, −2.29]
    np.testing.assert_allclose(phi, [0.855, -2.29])
    np.testing.assert_allclose(opt.s1, [0.95, 1.9])


def test_nesterov():
    phi, _ = one_step("nesterov", lr=0.1, momentum=0.9)
    # v = g; φ −= α(g + μv) = 0.1·1.9·g = [0.095, 0.19]
    np.testing.assert_allclose(phi, [0.905, -2.19])


def test_rmsprop():
    phi, _ = one_step("rmsprop", lr=0.01, beta2=0.9, eps=0.0)
    # s = 0.1·g² = [0.025, 0.1]; φ −= 0.01·g/√s = 0.01·[0.5/0.158114, 1/0.316228] = 0.01·√10·[1, 1]
    np.testing.assert_allclose(phi, [1 - 0.01 * math.sqrt(10), -2 - 0.01 * math.sqrt(10)])


def test_adagrad():
    phi, _ = one_step("adagrad", lr=0.1, eps=0.0)
    # s = g²; φ −= 0.1·g/|g| = [0.1, 0.1]
    np.testing.assert_allclose(phi, [0.9, -2.1])


def test_adam_first_step_moves_by_lr():
    phi, opt = one_step("adam", lr=0.01, eps=0.0)
    # m = 0.1g, v = 0.001g²; m̂ = g, v̂ = g² → φ −= 0.01·sign(g)
    np.testing.assert_allclose(phi, [0.99, -2.01])
    assert opt.step_count == 1


def test_adam_second_step():
    phi, _ = one_step("adam", lr=0.01, eps=0.0, steps=2)
    # Same g twice: m̂ = g and v̂ = g² again, so another 0.01·sign(g).
    np.testing.assert_allclose(phi, [0.98, -2.02])


def test_adamw_decays_weights_directly():
    phi, _ = one_step("adamw", lr=0.01, eps=0.0, weight_decay=0.1)
    # φ ← φ − α·λ·φ = [0.999, −1.998], then the Adam step −0.01·sign(g)
    np.testing.assert_allclose(phi, [0.989, -2.008])


def test_l2_weight_decay_adds_to_the_gradient():
    phi, _ = one_step("sgd", lr=0.1, weight_decay=0.5)
    # g + λφ = [0.5 + 0.5, 1 − 1] = [1, 0]
    np.testing.assert_allclose(phi, [0.9, -2.0])


def test_clip_by_global_norm():
    phi, _ = one_step("sgd", lr=1.0, clip_norm=0.5)
    # ‖g‖ = √1.25; g·0.5/‖g‖ = [0.2236, 0.4472]
    np.testing.assert_allclose(phi, [1 - 0.5 * 0.5 / math.sqrt(1.25), -2 - 0.5 / math.sqrt(1.25)])


@pytest.mark.parametrize("name", list(STEP_RULES))
def test_float32_matches_float64(name):
    a, _ = one_step(name, dtype=np.float32, steps=3)
    b, _ = one_step(name, dtype=np.float64, steps=3)
    np.testing.assert_allclose(a, b, rtol=1e-5)


@pytest.mark.parametrize("kw,match", [
    (dict(lr=-1), r"lr must be > 0, got -1"), (dict(lr=0), r"lr must be > 0"),
    (dict(beta1=1.5), r"beta1 must be in \[0, 1\), got 1.5"), (dict(beta2=1.0), r"beta2 must be in \[0, 1\)"),
    (dict(eps=-1), r"eps must be ≥ 0"), (dict(weight_decay=-0.1), "weight_decay must be ≥ 0"),
    (dict(clip_norm=float("nan")), "clip_norm must be ≥ 0"), (dict(lr="0.1"), "lr must be > 0")])
def test_bad_hyperparameters(kw, match):
    with pytest.raises(ValueError, match=match):
        Optimizer("adam", **kw)


@pytest.mark.parametrize("name,kw,message", [
    ("sgd", dict(momentum=0.9), "momentum does not apply to the sgd optimizer (it applies to momentum, nesterov)"),
    ("adam", dict(momentum=0.9), "momentum does not apply to the adam optimizer (it applies to momentum, nesterov)"),
    ("momentum", dict(beta1=0.9), "beta1 does not apply to the momentum optimizer (it applies to adam, adamw)"),
    ("adagrad", dict(beta2=0.9), "beta2 does not apply to the adagrad optimizer (it applies to rmsprop, adam, adamw)"),
    ("gd", dict(eps=1e-8, momentum=0.5), "momentum does not apply to the gd optimizer (it applies to momentum, "
                                         "nesterov); eps does not apply to the gd optimizer (it applies to "
                                         "rmsprop, adagrad, adam, adamw)"),
])
def test_hyperparameters_that_do_not_apply_are_refused(name, kw, message):
    with pytest.raises(ValueError) as e:
        Optimizer(name, **kw)
    assert message in str(e.value)


def test_beta1_is_adams_first_moment_decay():
    # β1 = 0.5: m = 0.5·g, m̂ = m / (1 − 0.5) = g; v̂ = g² → the first step is still α·sign(g),
    phi, opt = one_step("adam", lr=0.01, eps=0.0, beta1=0.5)
    np.testing.assert_allclose(phi, [0.99, -2.01])
    assert opt.beta1 == 0.5 and opt.momentum is None
    # but the second differs from β1 = 0.9's once the gradient changes.
    a, b = Optimizer("adam", lr=0.1, beta1=0.5), Optimizer("adam", lr=0.1)
    pa, pb = np.array([1.0, -2.0]), np.array([1.0, -2.0])
    for g in ([0.5, 1.0], [-1.0, 0.25]):
        a.step(pa, np.array(g))
        b.step(pb, np.array(g))
    # β1 = 0.5: m2 = 0.5·0.5g1 + 0.5g2 = [−0.375, 0.375], m̂ = m2/0.75 = [−0.5, 0.5];
    # v2 = 0.999·0.001·g1² + 0.001·g2², v̂ = v2 / (1 − 0.999²)
    v = (0.999 * 0.001 * np.array([0.25, 1.0]) + 0.001 * np.array([1.0, 0.0625])) / (1 - 0.999 ** 2)
    np.testing.assert_allclose(pa, [1 - 0.1 - 0.1 * -0.5 / np.sqrt(v[0]), -2 - 0.1 - 0.1 * 0.5 / np.sqrt(v[1])],
                               rtol=1e-6)
    assert not np.allclose(pa, pb)


def test_state_dict_names_every_hyperparameter():
    assert Optimizer("momentum", lr=0.1).state_dict() == {
        "name": "momentum", "lr": 0.1, "momentum": 0.9, "beta1": None, "beta2": None, "eps": None,
        "weight_decay": 0.0, "clip_norm": 0.0, "step_count": 0}


def test_hyperparameters_after_lr_are_keyword_only():
    # β1 now sits beside μ: a positional third argument would silently mean another one.
    with pytest.raises(TypeError):
        Optimizer("adam", 0.001, 0.9)


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="unknown optimizer 'bfgs'"):
        Optimizer("bfgs")


def test_schedules():
    assert SCHEDULES["constant"](0.1, 10).lr(9) == 0.1
    step = SCHEDULES["step"](1.0, 9)
    assert [step.lr(e) for e in (0, 2, 3, 6, 8)] == [1.0, 1.0, 0.1, pytest.approx(0.01), pytest.approx(0.01)]
    exp = SCHEDULES["exponential"](1.0, 11)
    assert exp.lr(10) == pytest.approx(0.01)
    cos = SCHEDULES["cosine"](1.0, 11)
    assert cos.lr(0) == 1.0 and cos.lr(5) == pytest.approx(0.5) and cos.lr(10) == pytest.approx(0.0)
    plateau = SCHEDULES["plateau"](1.0, 100, patience=2)
    for loss in [1.0, 1.0, 1.0, 1.0]:
        plateau.observe(loss)
    assert plateau.lr(4) == 0.5


@pytest.mark.parametrize("name,kw,message", [
    ("cosine", dict(gamma=0.5), "gamma does not apply to the cosine schedule (it applies to step, exponential, plateau)"),
    ("constant", dict(min_lr=0.1), "min_lr does not apply to the constant schedule (it applies to cosine, plateau)"),
    ("exponential", dict(step_size=2), "step_size does not apply to the exponential schedule (it applies to step)"),
    ("step", dict(patience=3), "patience does not apply to the step schedule (it applies to plateau)"),
    ("step", dict(gamma=0), r"gamma must be in (0, 1], got 0"),
    ("step", dict(step_size=0), "step_size must be a whole number ≥ 1, got 0"),
    ("step", dict(step_size=2.5), "step_size must be a whole number ≥ 1, got 2.5"),
    ("plateau", dict(min_lr=-1.0), "min_lr must be ≥ 0, got -1.0"),
])
def test_schedule_options_are_checked(name, kw, message):
    with pytest.raises(ValueError) as e:
        SCHEDULES[name](0.1, 10, **kw)
    assert message in str(e.value)


def test_schedule_options_shape_the_rate():
    step = SCHEDULES["step"](1.0, 9, gamma=0.5, step_size=2)
    assert [step.lr(e) for e in (0, 1, 2, 4)] == [1.0, 1.0, 0.5, 0.25]
    assert SCHEDULES["exponential"](1.0, 9, gamma=0.5).lr(3) == 0.125
    assert SCHEDULES["cosine"](1.0, 11, min_lr=0.2).lr(10) == pytest.approx(0.2)
    # patience 0 cuts after the first epoch without improvement (it used to mean the default 10)
    plateau = SCHEDULES["plateau"](1.0, 100, gamma=0.1, patience=0, min_lr=0.05)
    for loss in [1.0, 1.0, 1.0]:
        plateau.observe(loss)
    assert plateau.lr(3) == 0.05


def test_the_constraint_table_reads_as_written():
    from numbers import Integral, Real

    from nncli.params import CONSTRAINTS, Interval
    assert str(CONSTRAINTS["lr"]) == "> 0" and str(CONSTRAINTS["momentum"]) == "in [0, 1)"
    assert str(CONSTRAINTS["gamma"]) == "in (0, 1]" and str(CONSTRAINTS["seed"]) == "a whole number ≥ 0"
    left = Interval(Real, 0, 1, closed="left")
    assert 0 in left and 0.5 in left and 1 not in left and float("nan") not in left and True not in left
    assert np.float32(0.5) in left and np.int64(3) in Interval(Integral, 1)
    assert 1.0 not in Interval(Integral, 1) and -1 not in Interval(Integral, 0)


# -- float32 rules against the exact rule in float64 -------------------------------------------
# The per-step constants 1−β1, 1−β2 and 1−ρ must be 1−β rounded once, not 1 − float32(β): the
# latter made every float32 Adam step 6.5e-6 too long (and RMSProp's 4.8e-7). That error is
# systematic, the same sign for every element, while rounding errors average out: the mean
# signed relative error of the step tells one from the other.
from nncli._kernels import optim as k_optim
from nncli._kernels.optim import OptimizerCode


def mean_step_error(code, exact_rule, steps, **hyper):
    """Mean signed relative error of the float32 kernel step against `exact_rule` in float64,
    from random states and φ = 0 (so that φ + step rounds only the step)."""
    rng = np.random.default_rng(7)
    P = 4096
    grad = rng.standard_normal(P).astype(np.float32)
    s1 = rng.standard_normal(P) * 0.1
    s1 = (np.abs(s1) if code == OptimizerCode.RMSPROP else s1).astype(np.float32)
    s1 = s1 if steps else np.zeros(P, np.float32)
    s2 = (rng.random(P) * 0.1).astype(np.float32) if steps else np.zeros(P, np.float32)
    phi = np.zeros(P, np.float32)
    expected = exact_rule(grad.astype(np.float64), s1.astype(np.float64), s2.astype(np.float64),
                          t=steps + 1, **hyper)
    k_optim.step(phi, grad, s1, s2, code, step=steps, **hyper)
    return float(np.mean((phi.astype(np.float64) - expected) / expected))


def exact_adam(g, m, v, t, lr, momentum, beta2, eps):
    m = momentum * m + (1 - momentum) * g
    v = beta2 * v + (1 - beta2) * g * g
    return -lr * (m / (1 - momentum ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps)


def exact_rmsprop(g, s, _unused, t, lr, beta2, eps):
    s = beta2 * s + (1 - beta2) * g * g
    return -lr * g / (np.sqrt(s) + eps)


@pytest.mark.parametrize("steps", [0, 9])
def test_float32_adam_step_is_the_exact_rule_rounded(steps):
    err = mean_step_error(OptimizerCode.ADAM, exact_adam, steps, lr=1e-3, momentum=0.9,
                          beta2=0.999, eps=1e-8)
    assert abs(err) < 1e-7     # was 6.5e-6 with 1 − float32(β2)


@pytest.mark.parametrize("steps", [0, 9])
def test_float32_rmsprop_step_is_the_exact_rule_rounded(steps):
    err = mean_step_error(OptimizerCode.RMSPROP, exact_rmsprop, steps, lr=2.0 ** -10, beta2=0.99,
                          eps=1e-8)
    assert abs(err) < 1e-7     # was 4.8e-7 with 1 − float32(ρ)


def test_the_gradient_is_not_modified():
    # Decay and clipping are applied on the fly: ∂L/∂φ stays what backward wrote.
    grad = np.array([3.0, -4.0])
    phi, s1, s2 = np.array([1.0, 2.0]), np.zeros(2), np.zeros(2)
    k_optim.step(phi, grad, s1, s2, OptimizerCode.ADAM, lr=0.1, momentum=0.9, beta2=0.999,
                 weight_decay=0.5, clip_norm=1.0)
    assert grad.tolist() == [3.0, -4.0]


def test_irprop_steps_by_the_sign_and_adapts_the_step_size():
    opt = Optimizer("irprop", lr=0.1)
    phi = np.array([1.0, -2.0, 3.0])
    # step 1: Δ = α = 0.1 each; no last gradient, so φ −= sign(g)·0.1
    opt.step(phi, np.array([0.5, 1.0, -2.0]))
    np.testing.assert_allclose(phi, [0.9, -2.1, 3.1])
    # step 2, g = [0.3, −1, −7]: same sign → Δ = 1.2·0.1 = 0.12, step; sign flip → Δ = 0.5·0.1 =
    # 0.05, no step and g is forgotten (iRprop−); same sign → 0.12
    opt.step(phi, np.array([0.3, -1.0, -7.0]))
    np.testing.assert_allclose(phi, [0.78, -2.1, 3.22])
    np.testing.assert_allclose(opt.s2, [0.12, 0.05, 0.12])
    np.testing.assert_allclose(opt.s1, [0.3, 0.0, -7.0])
    # step 3, g = [1, 1, 1]: the forgotten g (0) keeps Δ = 0.05 and steps; the flip in the
    # third halves 0.12 → 0.06 without a step
    opt.step(phi, np.array([1.0, 1.0, 1.0]))
    np.testing.assert_allclose(phi, [0.78 - 0.144, -2.15, 3.22])
    np.testing.assert_allclose(opt.s2, [0.144, 0.05, 0.06])


def test_irprop_fits_xor_in_full_batches():
    from nncli.network import Network
    from nncli.training import Trainer
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
    Y = np.array([[0], [1], [1], [0]], float)
    net = Network([2, 4, 1], ["tanh"], "mse", dtype="float64", seed=3)
    t = Trainer(net, X, Y, optimizer="irprop", batch_size="full", epochs=300, seed=0)
    t.run()
    assert net.loss_value(X, Y) < 1e-3


def test_lbfgs_two_loop_by_hand():
    from nncli.lbfgs import two_loop
    # No pairs: steepest descent.
    np.testing.assert_allclose(two_loop(np.array([1.0, -2.0]), []), [-1.0, 2.0])
    # One pair s = (1, 0), y = (2, 0), g = (1, 1): ρ = 1/sᵀy = 1/2, α = ρ·sᵀg = 1/2,
    # q = g − α·y = (0, 1), γ = sᵀy/yᵀy = 1/2 → r = (0, 1/2), β = ρ·yᵀr = 0,
    # r += (α − β)·s = (1/2, 1/2): the curvature 2 along x gives 1/2, γ the rest; d = −r.
    d = two_loop(np.array([1.0, 1.0]), [(np.array([1.0, 0.0]), np.array([2.0, 0.0]))])
    np.testing.assert_allclose(d, [-0.5, -0.5])


def test_lbfgs_solves_least_squares_in_a_few_iterations():
    from nncli.network import Network
    from nncli.training import Trainer
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    Y = X @ np.array([[1.5], [-2.0], [0.5]]) + 0.25
    net = Network([3, 1], [], "mse", dtype="float64", seed=1)
    history = Trainer(net, X, Y, optimizer="lbfgs", batch_size="full", epochs=25, seed=0).run()
    losses = [r.train_loss for r in history.records]
    assert all(b <= a for a, b in zip(losses, losses[1:]))   # the line search never goes up
    assert net.loss_value(X, Y) < 1e-12
    np.testing.assert_allclose(net.phi, [1.5, -2.0, 0.5, 0.25], atol=1e-6)


def test_lbfgs_takes_full_batches_and_has_no_single_step():
    from nncli.network import Network
    from nncli.training import Trainer
    net = Network([2, 1], [], "mse", dtype="float64")
    X, Y = np.zeros((4, 2)), np.zeros((4, 1))
    with pytest.raises(ValueError, match="full batches"):
        Trainer(net, X, Y, optimizer="lbfgs", batch_size=2, epochs=1).run()
    with pytest.raises(ValueError, match="no single update"):
        Optimizer("lbfgs").step(np.zeros(2), np.ones(2))
    with pytest.raises(ValueError, match="clip_norm does not apply to the lbfgs"):
        Optimizer("lbfgs", clip_norm=1.0)
