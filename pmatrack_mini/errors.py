"""The one exception type the package raises for bad input (files, arguments, checkpoints)."""


class PMATrackError(ValueError):
    """Bad input: the message names the file, line or argument that is wrong."""
