"""nncli: train multi-layer perceptrons on CSV data, on our own Cython kernels.

Python API::

    from nncli import Network, train
    net = Network([2, 4, 1], activations="tanh", loss="mse", seed=0)
    history = train(net, X, Y, optimizer="adam", lr=0.05, epochs=500)
    net.predict(X)

Names are imported on first use (PEP 562), so `nncli --help` does not pay for numpy.
"""
import os as _os
import sys as _sys
from importlib.machinery import EXTENSION_SUFFIXES as _EXT

from nncli._version import __version__


def _kernels_missing():
    """One sentence when the Cython kernels are not compiled here, else None. The usual cause
    is Python started in the source folder, whose nncli/ shadows the installed package."""
    folder = _os.path.join(_os.path.dirname(__file__), "_kernels")
    try:
        files = _os.listdir(folder)
    except OSError:
        files = []
    # every .pyx beside its compiled module (a wheel may ship no .pyx: engine at least)
    kernels = sorted({f[:-4] for f in files if f.endswith(".pyx")} | {"engine"})
    missing = [m for m in kernels if not any(f"{m}{ext}" in files for ext in _EXT)]
    if not missing:
        return None
    return (f"nncli's compiled kernels are not built in this source tree ({folder} has no "
            f"{missing[0]} extension module); run pip install . and start "
            "Python outside the source folder, or build in place with "
            "python setup.py build_ext --inplace")


# `python -m nncli` imports this package while sys.argv[0] is still "-m": let __main__ say
# it in one line instead of a traceback. Anywhere else, an ImportError that says what to do.
KERNELS_MISSING = _kernels_missing()
if KERNELS_MISSING and _sys.argv[:1] != ["-m"]:
    raise ImportError(KERNELS_MISSING)

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
