"""``xaibids-validate OUTPUT_DIR GROUND_TRUTH_DIR``: score attribution maps against ground truth.

Reads the per-subject maps an xaibids group run wrote to ``OUTPUT_DIR``
(``sub-<l>/…_desc-<method>_attribution.tsv``, or the ``.nii.gz`` voxel maps of
``--features t1``, and ``group/desc-<method>_importance.tsv``) and the
ground truth of the simulated dataset they were computed from (``xaibids-simulate``; the raw
dataset or the derivatives folder holding ``groundtruth.tsv``), and writes
``OUTPUT_DIR/group/desc-validation_metrics.tsv`` (columns ``metric``, ``method``, ``subject``,
``value``, ``sd``, ``n``; see :mod:`xaibids.validation.score`) with a JSON sidecar. The
dataset-level rows (means over subjects and group-level metrics) are also printed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from xaibids import __version__


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xaibids-validate",
        description=(
            "Score xaibids attribution maps against the ground truth of a simulated dataset: "
            "overlap, weighted Jaccard and Euclidean distance per subject (Lewis et al. 2023 §2.6, "
            "Table 1), ROI precision/recall/F1 at the 0.5 threshold (Strock et al. 2025), feature "
            "accuracy/FDR/FOR (Gotsopoulos et al. 2018; voxel maps of --features t1 against the voxel truth). "
            "Writes OUTPUT_DIR/group/desc-validation_metrics.tsv."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("output_dir", type=Path, help="an xaibids OUTPUT_DIR after the group level")
    parser.add_argument("ground_truth_dir", type=Path,
                        help="the simulated dataset (xaibids-simulate OUT_DIR) or its derivatives "
                             "folder holding groundtruth.tsv")
    parser.add_argument("--attribution", nargs="+", default=None, metavar="METHOD",
                        help="score only these attribution methods (default: all found)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="threshold on max-normalized ROI scores (Strock et al. 2025: 0.5)")
    parser.add_argument("--version", action="version", version=f"xaibids-validate v{__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    return parser


def format_summary(table) -> str:
    """The dataset-level rows as aligned text (mean ± SD over subjects where per-subject)."""
    rows = table[table["subject"].isna()]
    width = max([22, *(len(m) for m in rows["metric"])])
    lines = []
    for row in rows.itertuples():
        sd = "" if row.sd != row.sd else f" ± {row.sd:.3f}"  # NaN check
        lines.append(f"  {row.method:<8} {row.metric:<{width}} {row.value:8.3f}{sd}  (n = {row.n})")
    return "\n".join(lines)


def write_validation(table, output_dir, ground_truth_root) -> Path:
    """Write ``group/desc-validation_metrics.tsv`` and show it in ``group.html``: the group
    report, when there is one, is rendered again (its completion record follows)."""
    from xaibids.outputs.completion import refresh_outputs
    from xaibids.reports import build_group_report
    from xaibids.validation import write_metrics

    path = write_metrics(table, output_dir, ground_truth_root)
    if (Path(output_dir) / "group.html").exists():
        refresh_outputs(output_dir, [build_group_report(output_dir)])
    return path


def main(argv: list[str] | None = None) -> int:
    from xaibids.errors import XaibidsError
    from xaibids.validation import GroundTruth, score_output

    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s: %(message)s")
    if not 0 <= args.threshold < 1:
        print("xaibids-validate: error: --threshold must lie in [0, 1).", file=sys.stderr)
        return 2
    try:
        truth = GroundTruth.load(args.ground_truth_dir)
        table = score_output(args.output_dir, truth, methods=args.attribution,
                             threshold=args.threshold)
        path = write_validation(table, args.output_dir, truth.root)
    except (XaibidsError, ValueError, OSError) as err:
        print(f"xaibids-validate: error: {err}", file=sys.stderr)
        return 1
    print(f"xaibids-validate: wrote {path}\n{format_summary(table)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
