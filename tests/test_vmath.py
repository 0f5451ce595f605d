"""The vectorised transcendentals (vmath.c) against libm, over the whole range.

Bounds in ulps, as vmath.c states them: float32 against the correctly rounded result (libm in
double precision, rounded to float32); float64 against libm's double result itself (glibc's
are within 1 ulp of exact). The sample: every special value (±0, the smallest subnormals, the
largest floats, ±inf, NaN, the switch points of each method) and random bit patterns (so every
exponent, subnormals and huge values alike), plus dense ranges where the activations live.
NaN in gives NaN out; ±inf and ±0 give what libm gives.
"""
import math

import numpy as np
import pytest

from nncli._kernels import activations as k_act

pytestmark = pytest.mark.skipif(not k_act.vmath_enabled(),
                                reason="vector code off (no AVX2+FMA, or NNCLI_GEMM_ISA=generic)")

ULPS = {"exp": 1, "expm1": 3, "tanh": 2, "sigmoid": 2, "log1p": 2, "erf": 5, "sin": 5, "cos": 5}
ULPS64 = {"exp": 1, "expm1": 4, "tanh": 4, "sigmoid": 2, "log1p": 3, "sin": 2, "cos": 2}


def _sigmoid(x):
    if x >= 0:
        return 1 / (1 + math.exp(-x))
    e = math.exp(x)
    return e / (1 + e)


def _libm(fn):
    def f(x):
        try:
            return fn(x)
        except OverflowError:
            return math.inf
        except ValueError:   # log1p(x < −1) and the like
            return math.nan if x != -1 else -math.inf
    return f


LIBM = {"exp": _libm(math.exp), "expm1": _libm(math.expm1), "tanh": math.tanh,
        "sigmoid": _libm(_sigmoid), "log1p": _libm(math.log1p), "erf": math.erf,
        "sin": _libm(math.sin), "cos": _libm(math.cos)}


def sample():
    rng = np.random.default_rng(12)
    bits = rng.integers(0, 2 ** 32, 40000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1e-40, -1e-40,
                         1.1754944e-38, -1.1754944e-38, 3.4028235e38, -3.4028235e38, 88.72, 88.73,
                         -87.33, -103.97, -104.0, 1e-4, 2.44e-4, 0.35, -0.35, 0.625, -0.625,
                         -1.0, -0.99999994, 3.99, 4.0, -4.0, 8192.0, -8192.0, 8193.0, 1e30],
                        np.float32)
    dense = [rng.uniform(-r, r, 15000).astype(np.float32) for r in (1, 8, 100, 8192)]
    return np.concatenate([specials, bits, *dense])


def sample64():
    rng = np.random.default_rng(13)
    bits = rng.integers(-2 ** 63, 2 ** 63 - 1, 40000, dtype=np.int64, endpoint=True).view(np.float64)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 1e-310, -1e-310,
                         2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308,
                         709.78, 709.79, -745.13, -745.14, -708.4, 1e-9, 0.35, -0.35, -1.0,
                         -0.9999999999999999, 20.0, 65536.0, -65536.0, 65537.0, 1e300])
    dense = [rng.uniform(-r, r, 15000) for r in (1, 8, 100, 65536)]
    return np.concatenate([specials, bits, *dense])


def ordered(a):
    """float → integers in the same order, one apart per ulp (−0 and +0 both 0)."""
    if a.dtype == np.float64:
        i = a.view(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFFFFFFFFFF), i).astype(object)   # no overflow
    i = a.view(np.int32).astype(np.int64)
    return np.where(i < 0, -(i & 0x7FFFFFFF), i)


X = sample()
X64 = sample64()


@pytest.mark.parametrize("name", sorted(ULPS))
def test_vector_function_within_its_ulp_bound_of_libm(name):
    got = k_act.vmath(name, X)
    with np.errstate(over="ignore", invalid="ignore"):
        want = np.array([LIBM[name](float(x)) for x in X], dtype=np.float64).astype(np.float32)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan), X[np.isnan(got) != nan][:5]
    ulps = np.abs(ordered(got[~nan]) - ordered(want[~nan]))
    worst = int(np.argmax(ulps))
    assert ulps.max() <= ULPS[name], (X[~nan][worst], got[~nan][worst], want[~nan][worst])
    # signed zeros and infinities exactly as libm (ulp distance 0 would accept +0 for −0)
    for x in (0.0, -0.0, np.inf, -np.inf):
        g = k_act.vmath(name, np.array([x], np.float32))[0]
        w = np.float32(LIBM[name](x))
        if np.isnan(w):
            assert np.isnan(g)
        else:
            assert g == w and math.copysign(1, g) == math.copysign(1, w), (x, g, w)


@pytest.mark.parametrize("name", sorted(ULPS64))
def test_float64_vector_function_within_its_ulp_bound_of_libm(name):
    got = k_act.vmath(name, X64)
    with np.errstate(over="ignore", invalid="ignore"):
        want = np.array([LIBM[name](float(x)) for x in X64], dtype=np.float64)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan), X64[np.isnan(got) != nan][:5]
    ulps = np.abs(ordered(got[~nan]) - ordered(want[~nan]))
    worst = int(np.argmax(ulps))
    assert ulps[worst] <= ULPS64[name], (X64[~nan][worst], got[~nan][worst], want[~nan][worst])
    for x in (0.0, -0.0, np.inf, -np.inf):
        g = k_act.vmath(name, np.array([x]))[0]
        w = LIBM[name](x)
        if np.isnan(w):
            assert np.isnan(g)
        else:
            assert g == w and math.copysign(1, g) == math.copysign(1, w), (x, g, w)


def test_float64_erf_has_no_vector_version():
    assert k_act.vmath("erf", np.zeros(3)) is None


@pytest.mark.parametrize("n", [1, 7, 8, 9, 100])
def test_any_length(n):
    x = np.linspace(-3, 3, n)
    np.testing.assert_allclose(k_act.vmath("tanh", x.astype(np.float32)), np.tanh(x), rtol=3e-7)
    np.testing.assert_allclose(k_act.vmath("tanh", x), np.tanh(x), rtol=1e-15)
