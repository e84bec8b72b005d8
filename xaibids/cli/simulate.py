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
    "boxes": "Lewis et al. 2023 §2.5: Gaussian noise, 200 steps × 30 features; in a random 10-step "
             "window the first (class0) or last (class1) 15 features get added Gaussian noise.",
    "var": "Lewis et al. 2023 §2.5: VAR(1) background from matrix A; a random 15-step window of new "
           "dynamics from B (class0) or C (class1), blended with α.",
    "rnn-ei": "Strock et al. 2025 Methods and its published code: small-world RNN (Watts–Strogatz, 100 "
              "nodes, k = 10, p = 0.1, x_t = tanh(W x_(t-1) + eps)); in group "
              "'hyperexcitable' a fraction of nodes get an extra input δ/ρ from every node; "
              "canonical HRF (TR 1 s, 100 volumes) and measurement noise at a given SNR.",
    "bold": "rnn-ei dynamics of each atlas region painted into voxels on the MNI152 template, "
            "with smooth noise, motion and a brain mask, written as fMRIPrep-style "
            "derivatives; by default a stable network (coupling 0.8) whose affected regions "
            "have a raised self-excitation (a larger, slower BOLD fluctuation that survives "
            "fMRIPrep's confound regression).",
    "t1-atrophy": "Kan et al. 2020's setting with a known answer: nilearn's MNI152 template as every "
                  "subject's T1w, with a smooth-edged intensity loss (--severity) in chosen "
                  "atlas regions (--regions) for group 'atrophy', a per-subject smooth intensity "
                  "field, head-position jitter (≤ 2°, ≤ 2 mm) in the raw T1w and Rician noise; "
                  "raw sub-XX/anat/sub-XX_T1w.nii.gz and/or fMRIPrep-style "
                  "space-MNI152NLin2009cAsym_desc-preproc_T1w + brain mask; ground truth: "
                  "affected-region masks and tables (see the dataset README).",
    "voxel-patterns": "Gotsopoulos et al. 2018 §2.5 scenarios 1-3: unit Gaussian noise with Gaussian "
                      "N(0.05, 1) added to the voxels of each category's pattern (scenario 3: "
                      "0.07 on the right half); overlapping patterns of N/10 (1), N/100, N/5, "
                      "N/10 (2, 3); each subject has --n-trials volumes of its category, "
                      "written as sub-XX/func/sub-XX_task-patterns_bold.nii.gz (one volume per "
                      "trial) + events; ground truth: per-class pattern masks and a voxel "
                      "truth table (voxel accuracy, FDR, FOR) under derivatives/patterns.",
}


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", metavar="OUT_DIR",
                        help="folder to create (the BIDS raw dataset; derivatives go under "
                             "OUT_DIR/derivatives/)")
    parser.add_argument("--n-subjects", type=int, default=None, metavar="N",
                        help="number of participants, split evenly between the groups "
                             "(default: 1000 for boxes/var, 400 for rnn-ei, 40 for bold, "
                             "t1-atrophy and voxel-patterns)")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="random seed; the same seed gives byte-identical files (default 0)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUT_DIR if it exists and is not empty")
    parser.add_argument("--validate", action="store_true",
                        help="run bids-validator-deno on the result and fail on errors")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xaibids-simulate",
        description="Simulate a BIDS dataset with known ground truth (two classes; 'voxel-patterns' up to five).")
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
    _rnn_options(p, "rnn-ei")
    p.add_argument("--n-nodes", type=int, help="number of nodes/regions (default 100)")

    p = sub.add_parser("bold", help=_SEED_REFS["bold"], description=_SEED_REFS["bold"])
    _common(p)
    _rnn_options(p, "bold")
    p.add_argument("--atlas", help="atlas: a bundled name (default harvard-oxford), a NIfTI "
                                   "with a labels TSV, or a BIDS-Atlas dataset")
    p.add_argument("--voxel-size", type=int, help="voxel size in mm of the grid (default 5)")
    p.add_argument("--smoothness", type=float, help="FWHM in mm of the noise (default 8)")
    p.add_argument("--signal-change", type=float,
                   help="percent signal change per unit of the normalized signal (default 2)")
    p.add_argument("--motion-scale", type=float,
                   help="scale of the simulated head motion, 0 for none (default 1)")
    p.add_argument("--motion-artifact", type=float, help="percent signal change per mm of "
                   "movement that realignment leaves, 0 for none (default 5)")
    p.add_argument("--affected", help="comma-separated atlas region names to make the "
                                      "ground truth (default: drawn at random by --prevalence)")

    p = sub.add_parser("t1-atrophy", help=_SEED_REFS["t1-atrophy"],
                       description=_SEED_REFS["t1-atrophy"])
    _common(p)
    p.add_argument("--atlas", help="atlas of the regions: a bundled name (default "
                                   "harvard-oxford: cortical and subcortical labels), a NIfTI "
                                   "with a labels TSV, or a BIDS-Atlas dataset")
    p.add_argument("--regions", nargs="+", metavar="NAME",
                   help="atlas region names to atrophy (default: Left_Hippocampus "
                        "Right_Hippocampus Left_Precuneous_Cortex)")
    p.add_argument("--severity", type=float,
                   help="fractional intensity loss inside the regions, 0-1 (default 0.2)")
    p.add_argument("--voxel-size", type=int,
                   help="voxel size in mm of the MNI152 grid (default 2: 99x117x95)")
    p.add_argument("--space", choices=["raw", "template", "both"],
                   help="write the raw T1w (with jitter), the fMRIPrep-style template-space "
                        "T1w, or both (default both)")
    p.add_argument("--edge-fwhm", type=float,
                   help="FWHM in mm of the smoothing of the region edges (default 4)")
    p.add_argument("--bias", type=float,
                   help="SD of the per-subject smooth intensity field (default 0.05)")
    p.add_argument("--noise", type=float, help="Rician noise SD relative to the brain's 99th "
                                               "percentile intensity (default 0.02)")
    p.add_argument("--jitter", type=float, help="scale of the raw head-position jitter (1: "
                                                "rotations ≤ 2°, translations ≤ 2 mm; 0: none; "
                                                "default 1)")

    p = sub.add_parser("voxel-patterns", help=_SEED_REFS["voxel-patterns"],
                       description=_SEED_REFS["voxel-patterns"])
    _common(p)
    p.add_argument("--scenario", type=int, choices=[1, 2, 3],
                   help="Gotsopoulos et al. 2018 scenario: 1 overlapping patterns of the same size, 2 complex "
                        "patterns with one magnitude, 3 with two magnitudes (default 1)")
    p.add_argument("--n-classes", type=int,
                   help="number of categories (the group levels cat1..catN), 2-5 (default 2)")
    p.add_argument("--n-trials", type=int, help="volumes (samples) per subject (default 20)")
    p.add_argument("--design", choices=["between", "within"],
                   help="between: each subject has one category, its participants.tsv 'group' "
                        "(default); within: each subject's trials cycle through the categories "
                        "(events' trial_type), as in Gotsopoulos et al. 2018 -- analyse with --features trials "
                        "--target trial_type")
    p.add_argument("--grid", choices=["box", "mni"],
                   help="box: a cube of --grid-size voxels, all in the mask (default); mni: "
                        "nilearn's MNI152 brain mask at --voxel-size")
    p.add_argument("--voxel-size", type=int, help="voxel size in mm (default 4)")
    p.add_argument("--grid-size", type=int, help="voxels per side of the box (default 20)")
    p.add_argument("--effect-mean", type=float,
                   help="mean of the noise added to pattern voxels (default 0.05, the seed's)")
    p.add_argument("--effect-mean-right", type=float,
                   help="scenario 3: the mean on the right half (default 0.07, the seed's)")
    p.add_argument("--effect-sd", type=float,
                   help="SD of the noise added to pattern voxels (default 1, the seed's)")
    return parser


#: Defaults of the RNN options that differ between the kinds (the simulator functions' own).
RNN_DEFAULTS = {
    "rnn-ei": dict(n_timepoints=100, tr=1.0, severity=0.3, burn_in=0, excitability="input",
                   coupling=1.0),
    "bold": dict(n_timepoints=100, tr=2.0, severity=0.5, burn_in=50, excitability="local",
                 coupling=0.8),
}


def _rnn_options(p: argparse.ArgumentParser, kind: str) -> None:
    d = RNN_DEFAULTS[kind]
    p.add_argument("--snr-db", type=float, help="signal-to-noise ratio in dB (default 0)")
    p.add_argument("--prevalence", type=float,
                   help="fraction of nodes with raised excitability (default 0.05)")
    p.add_argument("--severity", type=float,
                   help=f"excitability increase δ (default {d['severity']:g})")
    p.add_argument("--k", type=int, help="ring neighbours of the small-world graph (default 10)")
    p.add_argument("--rewire-p", type=float, help="rewiring probability (default 0.1)")
    p.add_argument("--neural-noise", type=float, help="SD of the intrinsic noise (default 0.1)")
    p.add_argument("--burn-in", type=int,
                   help=f"discarded initial RNN steps (default {d['burn_in']}; 0 is Strock et "
                        "al. 2025's code: x_0 ~ N(0, 1))")
    p.add_argument("--excitability", choices=["input", "gain", "local"],
                   help=f"how excitability changes (default {d['excitability']}): 'input' "
                        "(Strock et al. 2025's code): each affected node gets an extra input of "
                        "weight δ/ρ from every node, a slow drift to saturation; 'gain': the "
                        "affected nodes' weights on their neighbours × (1 + δ) (a reading of "
                        "the paper's text, far weaker); 'local': the affected nodes' "
                        "self-excitation raised by δ, a larger and slower fluctuation in the "
                        "BOLD band (use with --coupling below 1)")
    p.add_argument("--coupling", type=float,
                   help=f"global coupling c of W_0 = c·A/ρ, in (0, 1] (default "
                        f"{d['coupling']:g}; 1 is Strock et al. 2025's critical network)")
    p.add_argument("--n-timepoints", type=int,
                   help=f"volumes per subject (default {d['n_timepoints']})")
    p.add_argument("--tr", type=float, help=f"repetition time in s (default {d['tr']:g})")


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
