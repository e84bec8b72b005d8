"""``xaibids-simulate KIND OUT_DIR [--n-subjects N] [--seed S] [kind options]``.

Writes a BIDS raw dataset with a two-class ``group`` column, the derivatives xaibids reads,
and the ground truth (see :mod:`xaibids.simulate`). Run ``xaibids-simulate KIND --help`` for
the options of a kind.
"""

from __future__ import annotations

import argparse
import sys
import time

from xaibids import __version__

_SEED_REFS = {
    "boxes": "seed 000 §2.5: Gaussian noise, 200 steps × 30 features; in a random 10-step "
             "window the first (class0) or last (class1) 15 features get added Gaussian noise.",
    "var": "seed 000 §2.5: VAR(1) background from matrix A; a random 15-step window of new "
           "dynamics from B (class0) or C (class1), blended with α.",
    "rnn-ei": "seed 001 Methods: small-world RNN (Watts–Strogatz, 100 nodes, k = 10, p = 0.1) "
              "with raised excitability on a fraction of nodes in group 'hyperexcitable', "
              "canonical HRF and measurement noise at a given SNR.",
    "bold": "rnn-ei dynamics of each atlas region painted into voxels on the MNI152 template, "
            "with smooth noise, motion and a brain mask, written as fMRIPrep-style "
            "derivatives.",
}


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", metavar="OUT_DIR",
                        help="folder to create (the BIDS raw dataset; derivatives go under "
                             "OUT_DIR/derivatives/)")
    parser.add_argument("--n-subjects", type=int, default=None, metavar="N",
                        help="number of participants, split evenly between the two groups "
                             "(default: 1000 for boxes/var, 400 for rnn-ei, 40 for bold)")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="random seed; the same seed gives byte-identical files (default 0)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUT_DIR if it exists and is not empty")
    parser.add_argument("--validate", action="store_true",
                        help="run bids-validator-deno on the result and fail on errors")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xaibids-simulate",
        description="Simulate a two-class BIDS dataset with known ground truth.")
    parser.add_argument("--version", action="version", version=f"xaibids {__version__}")
    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True)

    p = sub.add_parser("boxes", help=_SEED_REFS["boxes"], description=_SEED_REFS["boxes"])
    _common(p)
    p.add_argument("--n-timepoints", type=int, help="steps per sample (default 200)")
    p.add_argument("--n-features", type=int, help="features per sample (default 30)")
    p.add_argument("--window", type=int, help="length of the perturbed window (default 10)")
    p.add_argument("--n-target", type=int, help="features perturbed per class (default 15)")
    p.add_argument("--box-mean", type=float, help="mean of the added noise (default 0)")
    p.add_argument("--box-std", type=float, help="SD of the added noise (default 1)")

    p = sub.add_parser("var", help=_SEED_REFS["var"], description=_SEED_REFS["var"])
    _common(p)
    p.add_argument("--n-timepoints", type=int, help="steps per sample (default 200)")
    p.add_argument("--n-features", type=int, help="features per sample (default 30)")
    p.add_argument("--window", type=int, help="length of the new-dynamics window (default 15)")
    p.add_argument("--alpha", type=float, help="blend weight α of the new dynamics (default 0.5)")
    p.add_argument("--radius", type=float,
                   help="spectral radius of the VAR matrices A, B, C (default 0.9)")
    p.add_argument("--burn-in", type=int, help="discarded initial VAR steps (default 50)")

    p = sub.add_parser("rnn-ei", help=_SEED_REFS["rnn-ei"], description=_SEED_REFS["rnn-ei"])
    _common(p)
    _rnn_options(p, n_timepoints=200, tr=1.0)
    p.add_argument("--n-nodes", type=int, help="number of nodes/regions (default 100)")

    p = sub.add_parser("bold", help=_SEED_REFS["bold"], description=_SEED_REFS["bold"])
    _common(p)
    _rnn_options(p, n_timepoints=100, tr=2.0)
    p.add_argument("--atlas", help="atlas: a bundled name (default harvard-oxford), a NIfTI "
                                   "with a labels TSV, or a BIDS-Atlas dataset")
    p.add_argument("--voxel-size", type=int, help="voxel size in mm of the grid (default 5)")
    p.add_argument("--smoothness", type=float, help="FWHM in mm of the noise (default 8)")
    p.add_argument("--signal-change", type=float,
                   help="percent signal change per unit of the normalized signal (default 2)")
    p.add_argument("--motion-scale", type=float,
                   help="scale of the simulated head motion, 0 for none (default 1)")
    p.add_argument("--affected", help="comma-separated atlas region names to make the "
                                      "ground truth (default: drawn at random by --prevalence)")
    return parser


def _rnn_options(p: argparse.ArgumentParser, n_timepoints: int, tr: float) -> None:
    p.add_argument("--snr-db", type=float, help="signal-to-noise ratio in dB (default 0)")
    p.add_argument("--prevalence", type=float,
                   help="fraction of nodes with raised excitability (default 0.05)")
    p.add_argument("--severity", type=float, help="excitability increase δ (default 0.3)")
    p.add_argument("--k", type=int, help="ring neighbours of the small-world graph (default 10)")
    p.add_argument("--rewire-p", type=float, help="rewiring probability (default 0.1)")
    p.add_argument("--neural-noise", type=float, help="SD of the intrinsic noise (default 0.2)")
    p.add_argument("--burn-in", type=int, help="discarded initial RNN steps (default 100)")
    p.add_argument("--n-timepoints", type=int, help=f"volumes per subject (default {n_timepoints})")
    p.add_argument("--tr", type=float, help=f"repetition time in s (default {tr:g})")


def main(argv: list[str] | None = None) -> int:
    from xaibids.simulate import KIND_OPTIONS, simulate
    from xaibids.simulate.bidsio import OutputExistsError, print_validation

    args = build_parser().parse_args(argv)
    options = {key: getattr(args, key) for key in KIND_OPTIONS[args.kind]}
    start = time.monotonic()
    try:
        out = simulate(args.kind, args.out_dir, n_subjects=args.n_subjects, seed=args.seed,
                       overwrite=args.overwrite, **options)
    except (ValueError, OutputExistsError, FileNotFoundError) as err:
        print(f"xaibids-simulate: error: {err}", file=sys.stderr)
        return 1
    print(f"xaibids-simulate: wrote the {args.kind} dataset to {out} "
          f"({time.monotonic() - start:.1f} s); ground truth is described in its README.")
    if args.validate:
        return print_validation(out, "xaibids-simulate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
