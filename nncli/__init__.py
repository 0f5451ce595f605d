"""nncli: train multi-layer perceptrons on CSV data, on our own Cython kernels.

Python API::

    from nncli import Network, train
    net = Network([2, 4, 1], activations="tanh", loss="mse", seed=0)
    history = train(net, X, Y, optimizer="adam", lr=0.05, epochs=500)
    net.predict(X)
"""
from nncli._version import __version__
from nncli.errors import DataError, DivergenceError, ModelFileError, NncliError
from nncli.functions import ACTIVATIONS, LOSSES
from nncli.network import Network
from nncli.optim import OPTIMIZERS, Optimizer
from nncli.schedules import SCHEDULES
from nncli.train import History, Trainer, train

__all__ = ["Network", "train", "Trainer", "History", "Optimizer", "ACTIVATIONS", "LOSSES",
           "OPTIMIZERS", "SCHEDULES", "NncliError", "DataError", "ModelFileError",
           "DivergenceError", "__version__"]
