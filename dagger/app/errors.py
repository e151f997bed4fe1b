"""The one error the program's commands raise for a user's mistake."""


class UserError(Exception):
    """A mistake in what the user asked for: one line, exit code 2, no traceback."""
