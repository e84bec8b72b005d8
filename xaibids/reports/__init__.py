"""HTML reports of an xaibids output folder (``sub-<label>.html`` and ``group.html``).

``build_reports(output_dir)`` renders every report from the files on disk alone, so
``--reports-only`` can re-render any finished output folder.
"""

from xaibids.reports.build import build_reports
from xaibids.reports.group import build_group_report
from xaibids.reports.subject import build_subject_report

__all__ = ["build_reports", "build_subject_report", "build_group_report"]
