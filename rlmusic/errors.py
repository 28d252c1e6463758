"""The one exception type users see.

Anything wrong with what the user gave us (a path, a config key, a run dir) raises `UserError`; the CLI prints it
as a single `error: ...` line and exits with status 2. Everything else is a bug and keeps its traceback.
"""

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Bad input from the user. The message names the file, key or plugin at fault."""
