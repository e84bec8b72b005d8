"""Validation of the input dataset with the official BIDS schema validator.

The validator is the ``bids-validator-deno`` package (the Deno build of the reference
validator, distributed on PyPI). Its errors are condensed into one readable message; warnings are
logged at debug level only.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

from xaibids.errors import XaibidsError

LOGGER = logging.getLogger("xaibids")


def validator_executable() -> str:
    """Path of ``bids-validator-deno``: beside this Python first, then on ``PATH``."""
    beside = Path(sys.executable).parent / "bids-validator-deno"
    if beside.exists():
        return str(beside)
    found = shutil.which("bids-validator-deno")
    if not found:
        raise XaibidsError(
            "The BIDS validator (bids-validator-deno) is not installed; install it with "
            "'pip install bids-validator-deno' or pass --skip-bids-validation."
        )
    return found


def run_validator(bids_dir: str | Path, ignore_nifti_headers: bool = True) -> dict:
    """Run the validator on ``bids_dir`` and return its JSON report.

    NIfTI headers are not read unless ``ignore_nifti_headers`` is false (the generators in
    :mod:`xaibids.simulate` check their images' headers too).
    """
    cmd = [validator_executable(), "--json", *(["--ignoreNiftiHeaders"] * ignore_nifti_headers),
           str(bids_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise XaibidsError(
            f"The BIDS validator could not check {bids_dir}: {proc.stderr.strip()[:500]}"
        ) from None


def summarize_errors(report: dict, max_codes: int = 8) -> list[str]:
    """One line per error code: code, count, first files, and the validator's explanation."""
    issues = [i for i in report.get("issues", {}).get("issues", []) if i.get("severity") == "error"]
    codes = report.get("issues", {}).get("codeMessages", {})
    by_code: dict[str, list[dict]] = {}
    for issue in issues:
        by_code.setdefault(issue["code"], []).append(issue)
    lines = []
    for code, items in list(by_code.items())[:max_codes]:
        where = ", ".join(sorted({str(i.get("location", "")) for i in items})[:3])
        more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
        reason = " ".join(str(codes.get(code, "")).split())[:200]
        lines.append(f"{code} in {where}{more}" + (f": {reason}" if reason else ""))
    return lines


def validate_bids(bids_dir: str | Path) -> None:
    """Raise :class:`XaibidsError` with a readable summary if ``bids_dir`` has BIDS errors."""
    report = run_validator(bids_dir)
    errors = summarize_errors(report)
    n_warn = sum(
        1 for i in report.get("issues", {}).get("issues", []) if i.get("severity") == "warning"
    )
    if n_warn:
        LOGGER.debug("BIDS validator: %d warning(s) in %s.", n_warn, bids_dir)
    if errors:
        raise XaibidsError(
            f"The input dataset {bids_dir} is not valid BIDS: " + "; ".join(errors) + ". Fix these "
            "files (see https://bids-specification.readthedocs.io) or, if you are sure the data "
            "are usable, rerun with --skip-bids-validation."
        )
