"""Errors a user can cause.

Library code raises these; the CLI turns every one of them into a single
``Error: ...`` line on stderr and the exit code below. Messages name the place
(file, line, column) where that makes sense, and say what to do where it helps.
"""


class NncliError(Exception):
    """Base class: something the user gave us is wrong (exit code 1)."""

    exit_code = 1


class DataError(NncliError):
    """A data file (CSV) is malformed or does not fit what is asked of it."""


class ModelFileError(NncliError):
    """A model or checkpoint file is unreadable, corrupt, or not an nncli model."""


class DivergenceError(NncliError):
    """Training produced a non-finite or exploding loss."""

    def __init__(self, message, epoch=None, last_finite_loss=None):
        super().__init__(message)
        self.epoch = epoch
        self.last_finite_loss = last_finite_loss


class ConfigError(NncliError):
    """Options or a config file contradict each other or do not fit the data: a usage
    error (exit code 2), like Click's own option validation."""

    exit_code = 2
