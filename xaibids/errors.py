"""Errors that reach the user as one readable paragraph (no traceback unless ``-v``)."""

import logging
import os
import re
from pathlib import Path


class XaibidsError(Exception):
    """A problem with the input or the options; the message names the file and the fix."""


#: The last line of a Python traceback: ``package.module.SomeError: message``.
_EXCEPTION_LINE = re.compile(r"^\s*(?:[A-Za-z_][\w.]*\.)?([A-Za-z_]\w*(?:Error|Exception)): (.+)$")


def crash_message(crash_file: str | os.PathLike) -> str:
    """The error message a Nipype crash file ends with (its innermost exception's text).

    Nipype writes the node's inputs and the traceback into the crash file; the user reads the
    one-paragraph message in the terminal and opens the file when they need the traceback, as
    fMRIPrep users do. Returns "" when no exception line is found.
    """
    message = ""
    for line in Path(crash_file).read_text(errors="replace").splitlines():
        match = _EXCEPTION_LINE.match(line)
        if match and match.group(1) != "NodeExecutionError":
            message = match.group(2).strip()
    return message


class CrashTracebackFilter(logging.Filter):
    """Shortens Nipype's "Saving crash info to FILE\\n<traceback>" log record to its first
    line: the traceback stays in the crash file, and xaibids prints the message itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("Saving crash info to"):
            record.msg, record.args = "Saving crash info to %s", record.args[:1]
        return True
