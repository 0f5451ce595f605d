"""nncli: train multi-layer perceptrons on CSV data, on our own Cython kernels.

Python API::

    from nncli import Network, train
    net = Network([2, 4, 1], activations="tanh", loss="mse", seed=0)
    history = train(net, X, Y, optimizer="adam", lr=0.05, epochs=500)
    net.predict(X)

Names are imported on first use (PEP 562), so `nncli --help` does not pay for numpy.
"""
from nncli._version import __version__

_EXPORTS = {
    "Network": "nncli.network", "train": "nncli.training", "Trainer": "nncli.training",
    "History": "nncli.training", "TrainingRun": "nncli.run", "Optimizer": "nncli.optim", "OPTIMIZERS": "nncli.optim",
    "ACTIVATIONS": "nncli.functions", "LOSSES": "nncli.functions", "SCHEDULES": "nncli.schedules",
    "load_model": "nncli.model_io", "save_model": "nncli.model_io",
    "NncliError": "nncli.errors", "DataError": "nncli.errors", "ModelFileError": "nncli.errors",
    "DivergenceError": "nncli.errors",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nncli' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
