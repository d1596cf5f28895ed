"""The one exception type the CLI turns into a one-line message instead of a traceback."""


class HarnessError(ValueError):
    """Bad input or a missing resource, described in one line that names the field and the fix."""
