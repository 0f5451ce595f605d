"""Claims about the kernels that hold across thread counts and instruction sets.

- gemm.h: results are identical for any n_threads (K is never split, each C element is summed
  in one fixed order) — checked bit for bit, 1 against 2 threads, on shapes large enough to
  run threaded on every path (blocked, transposed, the dot path).
- README: same seed and same thread count give the same parameters φ, bit for bit.
- The portable (non-AVX2) GEMM, which NNCLI_GEMM_ISA=generic forces, and the AVX2 path, which
  NNCLI_GEMM_ISA=avx2 forces on an AVX-512 CPU, pass the kernel and network tests on this
  machine too (the variable is read once per process: a subprocess).
- n_threads decides the GEMM's threads even when another library lowered OpenMP's own count
  (torch.set_num_threads(1) does omp_set_num_threads(1)).
- The kernels' thread pool (pool.h) runs every chunk of a job exactly once, with jobs coming
  from several threads at once, and in a child made by fork().
"""
import os
import time
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nncli
from nncli import Network
from nncli._kernels import gemm as k_gemm
from nncli.training import train

ROOT = Path(__file__).resolve().parent.parent

# Each above the threading threshold (1 MFLOP; 2 on the AVX-512 path); (M, N, K, ta, tb).
THREADED_SHAPES = [(300, 500, 700, False, False), (256, 300, 128, True, False),
                   (128, 256, 64, False, True), (300, 10, 400, False, True),
                   (10, 300, 400, False, True), (128, 10, 1024, False, False),
                   # B read in place: one row tile of A; a short K; M split into row tiles
                   # that each read B in place where one thread packs it
                   (10, 3000, 500, True, False), (2000, 300, 20, False, False),
                   (30, 30, 1200, False, False),
                   # op(A) packed once for both chunks of a split along N: several K and M
                   # blocks, straight and transposing packs, an odd last M block
                   (401, 256, 900, True, False), (401, 256, 900, False, True),
                   # op(A) above 4 MB: each chunk of a split along N packs it, K block by K
                   # block, for its two column blocks
                   (600, 1800, 1800, False, False),
                   # a short K: rows of tiles in one call, the kernel compiled for K = 10
                   (600, 300, 10, False, False),
                   # split along M (B packed per chunk) where an N split would pack more
                   (600, 160, 100, True, False), (600, 160, 100, False, False),
                   # many rows (predict's chunks): guided chunks of rows, an odd last one
                   (4099, 70, 300, False, True)]


@pytest.mark.parametrize("M,N,K,ta,tb", THREADED_SHAPES)
def test_gemm_is_bit_identical_for_one_and_two_threads(M, N, K, ta, tb, dtype, rng):
    A = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    B = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
    one = k_gemm.matmul(A, B, trans_a=ta, trans_b=tb, n_threads=1)
    two = k_gemm.matmul(A, B, trans_a=ta, trans_b=tb, n_threads=2)
    assert one.tobytes() == two.tobytes()


def test_small_products_stay_single_threaded(rng):
    # 2·64·64·64 ≈ 0.5 MFLOP: a team would cost more than it saves, whatever n_threads says.
    a = rng.standard_normal((64, 64)).astype(np.float32)
    k_gemm.matmul(a, a, n_threads=2)
    assert k_gemm.last_threads() == 1


@pytest.mark.parametrize("n_threads", [1, 2])
def test_same_seed_and_thread_count_train_the_same_phi(n_threads, rng):
    # Products of 2·128·256·64 ≈ 4 MFLOP: the GEMM runs threaded when allowed two threads.
    X = rng.standard_normal((512, 64)).astype(np.float32)
    Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 512)]
    phis = []
    for _ in range(2):
        net = Network([64, 256, 10], "relu", "cross_entropy", seed=5)
        train(net, X, Y, optimizer="adam", batch_size=128, epochs=2, seed=3, n_threads=n_threads)
        phis.append(net.phi.tobytes())
    assert phis[0] == phis[1]


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "momentum", "rmsprop"])
def test_one_and_two_threads_train_the_same_phi(optimizer, rng):
    # P ≈ 307k: the optimiser step, too, runs on two threads (each a part of φ); every kernel
    # splits outputs, never a sum, so the thread count must not change a bit.
    X = rng.standard_normal((256, 64)).astype(np.float32)
    Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 256)]
    phis = []
    for n_threads in (1, 2):
        net = Network([64, 4100, 10], "tanh", "cross_entropy", seed=5)
        assert net.n_params > 1 << 18
        train(net, X, Y, optimizer=optimizer, batch_size=64, epochs=2, seed=3,
              weight_decay=1e-3, n_threads=n_threads)
        phis.append(net.phi.tobytes())
    assert phis[0] == phis[1]


@pytest.mark.parametrize("isa", ["generic", "avx2"])
def test_forced_isa_passes_the_kernel_tests(isa, tmp_path):
    # generic: the portable path; avx2: the Zen path, on a CPU that would pick AVX-512.
    # The subprocesses import the nncli this process imports (installed, or built in place),
    # and start outside the source tree, which would otherwise shadow an installed package.
    if isa == "avx2" and k_gemm.isa() == "generic":
        pytest.skip("this CPU has no AVX2+FMA")
    env = dict(os.environ, NNCLI_GEMM_ISA=isa, PYTHONPATH=str(Path(nncli.__file__).parent.parent))
    check = subprocess.run([sys.executable, "-c", "from nncli._kernels import gemm; print(gemm.isa())"],
                           cwd=tmp_path, env=env, capture_output=True, text=True)
    assert check.stdout.strip() == isa, check.stderr
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(ROOT / "tests" / "test_kernels.py"), str(ROOT / "tests" / "test_network.py"),
                          str(ROOT / "tests" / "test_threads_and_isa.py"),
                          "-k", "(gemm or dense or layer or gradient or forward or same_seed)"
                                " and not forced_isa"],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:]
    assert " passed" in run.stdout


OMP_ONE_THEN_GEMM = """
import ctypes, ctypes.util, sys
import numpy as np
from nncli._kernels import gemm
# What torch.set_num_threads(1) does to OpenMP: nthreads-var = 1 for this thread.
gomp = ctypes.CDLL(ctypes.util.find_library("gomp") or "libgomp.so.1")
gomp.omp_set_num_threads(1)
assert gomp.omp_get_max_threads() == 1
a = np.ones((300, 700), np.float32); b = np.ones((700, 500), np.float32)
gemm.matmul(a, b, n_threads=2)
two = gemm.last_threads()
gemm.matmul(a, b, n_threads=1)
print(two, gemm.last_threads())
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 if hasattr(os, "sched_getaffinity") else True,
                    reason="needs two processors")
def test_n_threads_decides_even_when_openmp_was_set_to_one_elsewhere(tmp_path):
    import ctypes.util
    if not ctypes.util.find_library("gomp"):
        pytest.skip("no libgomp here, so nothing can lower OpenMP's count")
    # In a subprocess: lowering OpenMP's thread count would leak into the other tests.
    env = dict(os.environ, PYTHONPATH=str(Path(nncli.__file__).parent.parent))
    env.pop("OMP_NUM_THREADS", None)
    out = subprocess.run([sys.executable, "-c", OMP_ONE_THEN_GEMM], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["2", "1"]


# The pool (pool.h): a chunk is claimed by exactly one thread, whoever is late.
PROCS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
TWO_PROCS = PROCS >= 2


@pytest.mark.parametrize("n_chunks", [0, 1, 2, 3, 17, 1000])
def test_the_pool_runs_every_chunk_once(n_chunks):
    counts, offered = k_gemm.pool_check(2, n_chunks, repeats=300)
    assert (counts == 300).all()
    assert offered == (min(2, n_chunks, PROCS) if n_chunks > 1 else 1)


def test_jobs_from_several_threads_at_once_each_run_every_chunk_once():
    # One job at a time goes to the pool; a job submitted meanwhile runs on its own thread.
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda n: k_gemm.pool_check(2, n, repeats=500, spin=50),
                              [5, 8, 13, 64, 5, 8, 13, 64]))
    for (counts, _), n in zip(results, [5, 8, 13, 64, 5, 8, 13, 64]):
        assert len(counts) == n and (counts == 500).all()


@pytest.mark.skipif(not TWO_PROCS, reason="needs two processors")
def test_workers_stop_spinning_while_the_machine_is_contended_and_spin_again_after():
    # Spinning again comes at the first job after the stretch (at most 0.32 s) ends; a tiny job
    # is hardly ever counted as contended, so this holds on a busy machine too.
    def spinning_after_a_pause():
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.35)
            k_gemm.pool_check(2, 2, repeats=1, spin=0)
            if k_gemm.pool_spinning():
                return True
        return False

    assert spinning_after_a_pause()
    # A worker finishing its chunks 2 ms late (as a preempted one does) is contention: the
    # workers stop spinning after 3 such jobs. Every chunk still runs exactly once. Until the
    # worker wakes from the pause above, the caller runs every chunk and nothing is counted;
    # on this KVM guest that took up to 51 jobs of ~75 µs (4 ms), hence room for 2000.
    counts, offered = k_gemm.pool_check(2, 2, repeats=2000, spin=20000, late_us=2000,
                                        until_contended=True)
    assert not k_gemm.pool_spinning()
    assert offered == 2 and counts.sum() < 2 * 2000 and (counts == counts[0]).all()
    assert spinning_after_a_pause()


FORK_THEN_GEMM = """
import os, sys
import numpy as np
from nncli._kernels import gemm
a = np.ones((300, 700), np.float32); b = np.ones((700, 500), np.float32)
gemm.matmul(a, b, n_threads=2)          # the pool's worker exists now
pid = os.fork()
if pid == 0:                             # the child has no worker: it starts its own
    c = gemm.matmul(a, b, n_threads=2)
    os._exit(0 if (c == 700).all() and gemm.last_threads() == 2 else 3)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not TWO_PROCS, reason="needs two processors")
def test_a_forked_child_runs_threaded_products(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(nncli.__file__).parent.parent))
    out = subprocess.run([sys.executable, "-c", FORK_THEN_GEMM], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["0"]
