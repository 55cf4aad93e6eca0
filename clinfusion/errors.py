"""User-facing errors.

Every problem caused by the user's data or config is raised as a
:class:`ClinfusionError` whose message is one line naming the file, column, row or
key and what to do. The CLI prints ``error: <message>`` and exits with status 2,
never a traceback. Programming errors stay ordinary exceptions.
"""


class ClinfusionError(Exception):
    """A problem with the user's input, reported as one actionable line."""


class ConfigError(ClinfusionError):
    """The YAML config or an override is invalid (names the key path)."""


class DataError(ClinfusionError):
    """The cohort table, an image or an omics file is unusable (names file/column/row)."""


class RunDirError(ClinfusionError):
    """A run directory is missing, incomplete, or exists without ``--overwrite``."""


class TrainingError(ClinfusionError):
    """Training cannot go on (e.g. NaN loss); names the step and the last good checkpoint."""
