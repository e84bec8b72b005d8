"""Errors that reach the user as one readable paragraph (no traceback unless ``-v``)."""


class XaibidsError(Exception):
    """A problem with the input or the options; the message names the file and the fix."""
