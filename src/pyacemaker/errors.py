"""Exception hierarchy: each class says when it happens."""


class PyacemakerError(Exception):
    """Base class of every error pyacemaker raises on purpose."""


class ConfigError(PyacemakerError):
    """The user's configuration or input files are invalid (raised at start-up)."""


class EngineSetupError(PyacemakerError):
    """An engine (LAMMPS, pyace, an oracle) cannot be set up on this machine."""


class CalculationFailed(PyacemakerError):
    """An engine ran but did not produce a usable result."""


class ParseError(PyacemakerError):
    """An engine's output or a structure file could not be read."""
