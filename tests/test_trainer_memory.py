"""Trainer.run allocates nothing that grows with the network per call or per epoch.

A caller that runs one epoch per call (a progress loop, the benchmarks) used to pay for a
fresh copy of φ on every call (21 MB for the 512-2048-2048-10 network) and a fresh shuffle
order every epoch. tracemalloc sees numpy's buffers, so a second call's peak shows it.
"""
import tracemalloc

import numpy as np

from nncli import Network, Trainer


def test_repeated_runs_reuse_their_buffers_and_allocate_less_than_phi():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 64)).astype(np.float32)
    Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 2000)]
    net = Network([64, 2048, 10], "relu", "cross_entropy", seed=0)   # φ ≈ 0.55 MB
    trainer = Trainer(net, X, Y, optimizer="adam", batch_size=256, epochs=1, seed=0,
                      n_threads=1)
    trainer.run()                                   # first call: buffers made here
    backup, order = trainer.phi_before_epoch, trainer._order
    tracemalloc.start()
    try:
        trainer.epochs += 2
        trainer.run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert trainer.phi_before_epoch is backup and trainer._order is order
    assert peak < net.phi.nbytes / 4, peak          # neither φ's size nor X's order (16 KB)


def test_the_reused_order_is_the_permutation_the_seed_gives():
    # Shuffling into a kept array draws the same order as rng.permutation did (docs:
    # shuffling uses child 1 of the seed's SeedSequence): same seed, same φ as before.
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    net = Network([2, 3, 1], "tanh", "mse", seed=0)
    trainer = Trainer(net, X, X[:, :1], optimizer="sgd", batch_size=10, epochs=1, seed=7)
    trainer.run()
    rng = np.random.default_rng(np.random.SeedSequence(7).spawn(2)[1])
    np.testing.assert_array_equal(trainer._order, rng.permutation(10))
