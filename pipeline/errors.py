"""Errors the ``mar`` CLI reports as one paragraph (exit code 2, no traceback)."""


class UserError(Exception):
    """Bad input or a failed run the user can act on; the message says what happened and what to do."""
