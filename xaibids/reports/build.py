"""Build the HTML reports (``sub-<label>.html`` and ``group.html``) from an output folder.

The layout follows fMRIPrep/nireports: a navigation bar, a *Summary*, one section per kind of
result made of *reportlets* (a figure or table with a caption), the *Methods* boilerplate,
*About* (software versions and the configuration) and *Errors*. Every section is built from
files on disk; a section whose files are absent is left out, and a section that fails to render
is reported under *Errors* instead of breaking the page (``strict=True`` raises instead).

Pages are self-contained: figures are ``data:`` URIs, the CSS is inline, there is no JavaScript.

The pages are built by :mod:`~xaibids.reports.subject` and :mod:`~xaibids.reports.group`
from the parts of :mod:`~xaibids.reports.page`; this module writes all of them.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path


from xaibids.reports import collect
from xaibids.reports.group import build_group_report
from xaibids.reports.subject import build_subject_report


LOGGER = logging.getLogger("xaibids.reports")


def build_reports(output_dir: str | Path, subjects=None, strict: bool = False,
                  n_procs: int = 1) -> list[Path]:
    """Render ``sub-<label>.html`` for every subject with attribution maps (or only
    ``subjects``, labels with or without ``sub-``) and ``group.html``, from the files in
    ``output_dir`` alone. Returns the paths written.

    ``n_procs`` > 1 renders the subject pages in that many processes (each page draws its own
    figures; nothing is shared).
    """
    output_dir = Path(output_dir)
    found = collect.find_subject_maps(output_dir, subjects)
    render = functools.partial(build_subject_report, output_dir, strict=strict)
    if n_procs > 1 and len(found) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(n_procs, len(found)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            written = list(pool.map(render, found))
    else:
        written = [render(subject) for subject in found]
    all_subjects = found if subjects is None else collect.find_subject_maps(output_dir)
    written.append(build_group_report(output_dir, all_subjects, strict=strict))
    LOGGER.info("Wrote %d report(s) in %s.", len(written), output_dir)
    return written
