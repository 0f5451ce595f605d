"""Each kernel against its plain numpy reference, both dtypes, awkward shapes."""
import os

import numpy as np
import pytest

from nncli._kernels import activations as k_act
from nncli._kernels import dense as k_dense
from nncli._kernels import gemm as k_gemm
from nncli._kernels import losses as k_loss
from nncli.functions import ACTIVATIONS, LOSSES

from conftest import TOL
from reference import ACT, loss as ref_loss

# The larger ones reach the packed paths with partial panels, K blocks not a multiple of a cache
# line, and (50, 300, 70), (200, 333, 129) B wide enough to pack several panels per row visit.
SHAPES = [(1, 1, 1), (1, 3, 3), (3, 1, 3), (2, 3, 1), (7, 13, 5), (17, 33, 9), (6, 16, 1),
          (13, 17, 257), (64, 10, 128), (97, 55, 300), (50, 300, 70), (200, 333, 129),
          (0, 4, 3), (4, 0, 3), (4, 3, 0)]
# Shapes that take the blocked paths reading an operand in place (gemm_driver.c): one row tile
# of A with B read unpacked (columns masked off past N, K over several K blocks), a short K
# (neither operand packed, tiles swept along C's rows), K blocks of <= 64 with a packed A, and
# several K and N blocks with edge tiles both ways; op(A) packed once for several N blocks
# (several K and M blocks, an odd last M block).
IN_PLACE_SHAPES = [(1, 33, 5), (12, 31, 400), (7, 100, 1000), (11, 2055, 40), (100, 45, 20),
                   (200, 33, 32), (130, 70, 64), (97, 129, 33), (130, 900, 400),
                   (401, 2100, 500)]
# Rows of full tiles computed in one call (the AVX-512 panels), with a kernel compiled for each
# K <= 16 when A's rows are read in place (6-row groups, two column tiles at a time): K at 1, 16
# and just past it, M and N off the 12 x 32 (f32) / 12 x 16 (f64) tile and the 6-row group
# (8, 11 rows left), odd and even counts of column tiles, a single full tile.
PANEL_SHAPES = [(12, 32, 1), (25, 70, 16), (37, 100, 10), (130, 65, 3), (24, 64, 17),
                (13, 47, 7), (128, 128, 10), (23, 96, 2), (6, 64, 5)]


def gemm_tol(dtype, K):
    # Rounding grows with the length of each dot product.
    return dict(rtol=1e-4 if dtype == np.float32 else 1e-11, atol=(1e-4 if dtype == np.float32 else 1e-11) * max(1, K) ** 0.5)


@pytest.mark.parametrize("M,N,K", SHAPES + IN_PLACE_SHAPES + PANEL_SHAPES)
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_gemm_matches_numpy(M, N, K, ta, tb, dtype, rng):
    A = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    B = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
    expected = (A.T if ta else A).astype(np.float64) @ (B.T if tb else B).astype(np.float64)
    got = k_gemm.matmul(A, B, trans_a=ta, trans_b=tb)
    assert got.dtype == dtype and got.shape == (M, N)
    np.testing.assert_allclose(got, expected, **gemm_tol(dtype, K))
    k_gemm.matmul(A, B, trans_a=ta, trans_b=tb, out=got, accumulate=True)
    np.testing.assert_allclose(got, 2 * expected, **gemm_tol(dtype, K))


@pytest.mark.parametrize("M,N,K", [(5, 7, 3), (33, 65, 129), (1, 1, 1)])
def test_gemm_beta_overwrites_and_accumulates(M, N, K, dtype, rng):
    A = rng.standard_normal((M, K)).astype(dtype)
    B = rng.standard_normal((K, N)).astype(dtype)
    out = np.full((M, N), np.nan, dtype=dtype)  # NaN in C must not leak through β = 0
    k_gemm.matmul(A, B, out=out)
    np.testing.assert_allclose(out, A.astype(float) @ B, **gemm_tol(dtype, K))
    k_gemm.matmul(A, B, out=out, accumulate=True)
    np.testing.assert_allclose(out, 2 * (A.astype(float) @ B), **gemm_tol(dtype, K))


def test_gemm_large_threaded_is_deterministic(dtype, rng):
    A = rng.standard_normal((300, 700)).astype(dtype)
    B = rng.standard_normal((700, 500)).astype(dtype)
    one = k_gemm.matmul(A, B, n_threads=2)
    two = k_gemm.matmul(A, B, n_threads=2)
    assert one.tobytes() == two.tobytes()
    np.testing.assert_allclose(one, A.astype(float) @ B, **gemm_tol(dtype, 700))


def test_gemm_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="inner dimensions"):
        k_gemm.matmul(np.ones((2, 3)), np.ones((4, 2)))


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            return set(next(l for l in f if l.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        return None


def test_gemm_reports_isa_the_cpu_has():
    # AVX-512 only where the CPU has it (a wrong choice would die with SIGILL elsewhere).
    isa = k_gemm.isa()
    assert isa in ("avx512", "avx2", "generic")
    flags = cpu_flags()
    if flags is not None and os.environ.get("NNCLI_GEMM_ISA") is None:
        has512 = {"avx512f", "avx512dq", "avx512vl"} <= flags
        has2 = {"avx2", "fma"} <= flags
        assert isa == ("avx512" if has512 and has2 else "avx2" if has2 else "generic")


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@pytest.mark.parametrize("n", [0, 1, 7, 100])
def test_activation_forward_backward(name, n, dtype, rng):
    f = (rng.standard_normal(n) * 3).astype(dtype)
    f[::3] = -f[::3]
    code = ACTIVATIONS[name].code
    h = k_act.forward(f, code)
    fwd, der = ACT[name]
    np.testing.assert_allclose(h, fwd(f.astype(np.float64)), **TOL[dtype])
    dh = rng.standard_normal(n).astype(dtype)
    df = k_act.backward(dh, f, h, code)
    np.testing.assert_allclose(df, dh * der(f.astype(np.float64)), rtol=TOL[dtype]["rtol"] * 10,
                               atol=TOL[dtype]["atol"] * 10)


@pytest.mark.parametrize("name", ["sigmoid", "softplus", "tanh", "elu"])
def test_activations_are_stable_for_large_inputs(name):
    f = np.array([-1e4, -800.0, 800.0, 1e4])
    h = k_act.forward(f, ACTIVATIONS[name].code)
    assert np.all(np.isfinite(h))


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("B,m", [(1, 1), (1, 3), (5, 2), (13, 4), (3, 300)])
def test_loss_and_gradient(name, B, m, dtype, rng):
    z = (rng.standard_normal((B, m)) * 2).astype(dtype)
    if name == "cross_entropy":
        y = np.eye(m, dtype=dtype)[rng.integers(0, m, B)]
    elif name == "bce":
        y = rng.integers(0, 2, (B, m)).astype(dtype)
    else:
        y = rng.standard_normal((B, m)).astype(dtype)
    value, grad = k_loss.loss_and_grad(z, y, LOSSES[name].code)
    ref_value, ref_grad = ref_loss(name, z, y)
    np.testing.assert_allclose(value, ref_value, **TOL[dtype])
    np.testing.assert_allclose(grad, ref_grad, **TOL[dtype])


@pytest.mark.parametrize("m", [10, 300])
def test_cross_entropy_without_a_gradient_is_the_same_loss(m, dtype, rng):
    # Evaluation takes each row's exponentials in blocks of 256 on the stack (no ∂ℓ/∂z row
    # to hold them): 300 classes cross a block.
    from nncli.network import Network
    net = Network([5, m], activations="identity", loss="cross_entropy", dtype=dtype, seed=3)
    X = rng.standard_normal((9, 5)).astype(dtype) * 4
    Y = np.eye(m, dtype=dtype)[rng.integers(0, m, 9)]
    z = net.forward(X)
    ref_value, _ = ref_loss("cross_entropy", z, Y)
    np.testing.assert_allclose(net.loss_value(X, Y), ref_value, **TOL[dtype])
    np.testing.assert_allclose(k_loss.loss_and_grad(z, Y, LOSSES["cross_entropy"].code)[0],
                               ref_value, **TOL[dtype])
    np.testing.assert_allclose(net.predict(X).sum(1), 1.0, **TOL[dtype])


@pytest.mark.parametrize("name", ["cross_entropy", "bce"])
def test_fused_losses_are_stable_for_huge_logits(name):
    z = np.array([[1000.0, -1000.0], [-1000.0, 1000.0]])
    y = np.array([[1.0, 0.0], [1.0, 0.0]])
    value, grad = k_loss.loss_and_grad(z, y, LOSSES[name].code)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert value > 100  # the second row is confidently wrong


def test_output_transform_softmax_and_sigmoid():
    z = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]])
    p = k_loss.output_transform(z.copy(), LOSSES["cross_entropy"].code)
    np.testing.assert_allclose(p.sum(1), 1.0)
    np.testing.assert_allclose(p[0], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())
    s = k_loss.output_transform(np.array([[-800.0, 0.0, 800.0]]), LOSSES["bce"].code)
    np.testing.assert_allclose(s, [[0.0, 0.5, 1.0]])


# The last three go through the GEMM's blocked loops (several row and K blocks), its swapped
# orientation (few outputs, many rows) and its dot path: β and a(f) are applied per block there.
@pytest.mark.parametrize("B,n_in,n_out", [(1, 1, 1), (1, 3, 3), (5, 7, 2), (32, 17, 33), (3, 64, 1),
                                          (400, 300, 50), (130, 40, 10), (256, 200, 10)])
@pytest.mark.parametrize("act", ["relu", "tanh", "identity"])
def test_dense_forward_backward(B, n_in, n_out, act, dtype, rng):
    h_in = rng.standard_normal((B, n_in)).astype(dtype)
    W = rng.standard_normal((n_out, n_in)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    f, h = k_dense.forward(h_in, W, b, ACTIVATIONS[act].code)
    f_ref = h_in.astype(float) @ W.T + b
    np.testing.assert_allclose(f, f_ref, **gemm_tol(dtype, n_in))
    np.testing.assert_allclose(h, ACT[act][0](f.astype(float)), **gemm_tol(dtype, n_in))
    df = rng.standard_normal((B, n_out)).astype(dtype)
    dh, dW, db = k_dense.backward(df, h_in, W)
    np.testing.assert_allclose(dW, df.T.astype(float) @ h_in, **gemm_tol(dtype, B))
    np.testing.assert_allclose(db, df.astype(float).sum(0), **gemm_tol(dtype, B))
    np.testing.assert_allclose(dh, df.astype(float) @ W, **gemm_tol(dtype, n_out))


# (130, 400, 900): on the AVX-512 path op(A) packed once first (two K blocks, several column
# blocks): each block's epilogue must still come once, after its last K block
@pytest.mark.parametrize("B,n_in,n_out", [(400, 300, 50), (20, 64, 4200), (97, 5, 1000), (300, 0, 40),
                                          (130, 400, 900)])
@pytest.mark.parametrize("act", ["relu", "tanh", "identity"])
def test_dense_forward_applies_bias_and_activation_to_every_block_once(B, n_in, n_out, act,
                                                                       dtype, rng):
    # β and a(f) are applied to each block of f as the GEMM finishes it (rows, columns and, with
    # two threads, each thread's share): a block missed or visited twice shows against numpy,
    # and the threads must not change a bit.
    h_in = rng.standard_normal((B, n_in)).astype(dtype)
    W = rng.standard_normal((n_out, n_in)).astype(dtype)
    b = (10 * rng.standard_normal(n_out)).astype(dtype)
    f1, h1 = k_dense.forward(h_in, W, b, ACTIVATIONS[act].code, n_threads=1)
    f2, h2 = k_dense.forward(h_in, W, b, ACTIVATIONS[act].code, n_threads=2)
    np.testing.assert_allclose(f1, h_in.astype(float) @ W.T + b, **gemm_tol(dtype, n_in))
    np.testing.assert_allclose(h1, ACT[act][0](f1.astype(float)), **gemm_tol(dtype, n_in))
    assert f1.tobytes() == f2.tobytes() and h1.tobytes() == h2.tobytes()
