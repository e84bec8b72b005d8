"""``xaibids-ingest FORMAT …``: convert third-party data into BIDS for xaibids.

``xaibids-ingest abide-pcp ROIS_DIR PHENOTYPIC_CSV OUT_DIR --atlas cc200`` turns ABIDE
Preprocessed Connectomes Project ROI files and the phenotypic CSV into a BIDS raw dataset
(``participants.tsv`` with ``diagnosis``, ``sex``, ``site``, ``age``) plus a timeseries
derivatives dataset at ``OUT_DIR/derivatives/abide-pcp-<atlas>/`` (see
:mod:`xaibids.ingest.abide`).
"""

from __future__ import annotations

import argparse
import logging
import sys

from xaibids import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xaibids-ingest",
                                     description="Convert third-party data into BIDS.")
    parser.add_argument("--version", action="version", version=f"xaibids {__version__}")
    sub = parser.add_subparsers(dest="format", metavar="FORMAT", required=True)
    p = sub.add_parser(
        "abide-pcp",
        help="ABIDE Preprocessed Connectomes Project ROI files + phenotypic CSV",
        description="ABIDE PCP '*_rois_<atlas>.1D' files and the ABIDE phenotypic CSV → BIDS "
                    "raw (participants.tsv: diagnosis ASD/control, sex M/F, site, age) plus "
                    "timeseries derivatives in OUT_DIR/derivatives/abide-pcp-<atlas>/.")
    p.add_argument("rois_dir", metavar="ROIS_DIR", help="folder with the *_rois_<atlas>.1D files")
    p.add_argument("phenotypic_csv", metavar="PHENOTYPIC_CSV",
                   help="ABIDE phenotypic CSV (columns SUB_ID, DX_GROUP, SEX, SITE_ID, "
                        "AGE_AT_SCAN)")
    p.add_argument("out_dir", metavar="OUT_DIR", help="BIDS dataset folder to create")
    p.add_argument("--atlas", default="cc200",
                   help="atlas of the ROI files, as in their names (default cc200)")
    p.add_argument("--atlas-image", metavar="PATH",
                   help="atlas NIfTI the files were extracted with (e.g. "
                        "CPAC200_space-MNI152NLin6_res-2x2x2.nii.gz), or a folder holding it; "
                        "copied with a labels table into OUT_DIR/derivatives/abide-pcp-<atlas>/"
                        "atlases/, which 'xaibids … --atlas' accepts for painting region maps")
    p.add_argument("--repetition-time", type=float, metavar="SECONDS",
                   help="repetition time for every subject (default: ABIDE I value per site)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUT_DIR if it exists and is not empty")
    p.add_argument("--validate", action="store_true",
                   help="run bids-validator-deno on the result and fail on errors")
    return parser


def main(argv: list[str] | None = None) -> int:
    from xaibids.ingest import IngestError
    from xaibids.ingest.abide import ingest_abide_pcp
    from xaibids.simulate.bidsio import OutputExistsError, print_validation

    args = build_parser().parse_args(argv)
    logging.basicConfig(format="xaibids-ingest: warning: %(message)s", level=logging.WARNING)
    try:
        report = ingest_abide_pcp(args.rois_dir, args.phenotypic_csv, args.out_dir,
                                  atlas=args.atlas, atlas_image=args.atlas_image,
                                  repetition_time=args.repetition_time,
                                  overwrite=args.overwrite)
    except (IngestError, OutputExistsError) as err:
        print(f"xaibids-ingest: error: {err}", file=sys.stderr)
        return 1
    print(f"xaibids-ingest: wrote {report.n_subjects} participants to {report.out_dir} "
          f"({len(report.unmatched_files)} file(s) without phenotypic row skipped, "
          f"{report.n_flat} flat region timecourse(s) written as n/a, "
          f"{len(report.duplicates)} participant(s) with data identical to another's).")
    if args.validate:
        return print_validation(report.out_dir, "xaibids-ingest")
    return 0


if __name__ == "__main__":
    sys.exit(main())
