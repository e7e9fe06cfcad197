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
    """An engine's output, a structure file or a stored file of the run could not be read."""


class StorageError(PyacemakerError):
    """A file of the run could not be written (a full disk, no permission); what was stored
    before is intact."""
