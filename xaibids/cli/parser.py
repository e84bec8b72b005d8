"""Argument parser of ``xaibids BIDS_DIR OUTPUT_DIR {participant,group}``, spelled like fMRIPrep.

Every ``--long-option`` also answers to its underscore spelling (``--participant_label``), as
fMRIPrep's do. Option destinations equal the field names of :class:`xaibids.config.Config`.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

from xaibids import __version__
from xaibids.features.atlases import BUNDLED_ATLASES
from xaibids.features.timeseries import CONFOUND_STRATEGIES, STANDARDIZE_CHOICES
from xaibids.stats.selection import SELECTION_RULES

MODELS = ("region-cnn", "lstm-attn", "stdnn", "cnn3d", "linear", "connectome")
#: Keys of :data:`xaibids.attribution.METHODS` (spelled out so that ``--help`` does not import
#: torch; a test keeps the two equal).
ATTRIBUTION_METHODS = ("ig", "saliency", "inputxgradient", "deeplift", "guidedbackprop",
                       "deconvolution", "gradcam", "guidedgradcam", "occlusion", "ablation", "lrp",
                       "shapleysampling", "gradientshap", "smoothgrad", "weight", "weightxinput",
                       "outputdiff", "mp")
IG_RULES = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle",
            "riemann_trapezoid")


def parse_mem(text: str) -> float:
    """``--mem`` value → gigabytes. Plain numbers are MB (fMRIPrep); units K/M/G/T allowed."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)B?\s*", text, flags=re.I)
    if not match:
        raise argparse.ArgumentTypeError(
            f"invalid memory amount {text!r}: use a number of MB or a unit, e.g. 16000, 16G, 512MB"
        )
    value, unit = float(match.group(1)), match.group(2).upper() or "M"
    return value * {"K": 1 / 1024**2, "M": 1 / 1024, "G": 1.0, "T": 1024.0}[unit]


def parse_derivative(text: str) -> tuple[str, str]:
    """``NAME=PATH`` (or a bare PATH, named after its folder)."""
    name, sep, path = text.partition("=")
    if not sep:
        name, path = Path(text).name, text
    name = re.sub(r"[^A-Za-z0-9_-]", "", name)
    if not name or not path:
        raise argparse.ArgumentTypeError(f"invalid derivatives {text!r}: use NAME=PATH")
    return name, str(Path(path).absolute())


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def validation_fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1), got {text}")
    return value


def t1_resolution(text: str) -> float:
    """A voxel size in mm for the T1 grid: 1 to 8 (finer grids do not fit a 3D CNN's memory,
    coarser ones lose the anatomy)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of mm") from None
    if not 1.0 <= value <= 8.0:
        raise argparse.ArgumentTypeError(f"{text} mm is outside 1-8 mm")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must lie between 0 and 1, got {text}")
    return value


def steps_or_auto(text: str) -> int:
    """A positive count, or ``auto`` (stored as 0: chosen during the run)."""
    return 0 if text == "auto" else positive_int(text)


def ig_steps_value(text: str) -> int | str:
    """IG's ``--ig-steps``: a positive count, ``auto`` (stored as 0) or ``adaptive``."""
    return text if text == "adaptive" else steps_or_auto(text)


def open_fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


class _Group:
    """Adds each ``--a-b`` option together with its ``--a_b`` alias, as fMRIPrep does."""

    def __init__(self, group):
        self.group = group

    def add(self, *flags, **kwargs):
        aliases = [f.replace("-", "_").replace("__", "--", 1) for f in flags
                   if f.startswith("--") and "-" in f[2:]]
        return self.group.add_argument(*flags, *aliases, **kwargs)


def get_parser() -> argparse.ArgumentParser:
    """The ``xaibids`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="xaibids",
        description=(
            f"xaibids {__version__}: which parts of the brain signal does a deep classifier rely "
            "on, and can that answer be trusted? The participant level extracts features (ROI "
            "timecourses) with Nipype; the group level trains seeded ensembles per "
            "cross-validation fold and writes stabilized attribution maps."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("bids_dir", type=Path,
                        help="root of the input BIDS dataset (raw; derivatives go with -d)")
    parser.add_argument("output_dir", type=Path,
                        help="where the derivatives are written (must not be inside bids_dir)")
    parser.add_argument("analysis_level", choices=["participant", "group"],
                        help="participant: extract features per subject; group: train, attribute, "
                             "summarize (runs the participant step for subjects lacking outputs)")
    parser.add_argument("--version", action="version", version=f"xaibids v{__version__}")

    g = _Group(parser.add_argument_group("Selecting data"))
    g.add("--participant-label", nargs="+", default=[], metavar="LABEL",
          help="subjects to process (with or without 'sub-'); default: all")
    g.add("--session-label", nargs="+", default=[], metavar="LABEL",
          help="sessions to process (with or without 'ses-'); default: all")
    g.add("-t", "--task-id", nargs="+", default=[], metavar="TASK",
          help="tasks to process; default: all")
    g.add("--bids-filter-file", type=Path, metavar="FILE",
          help="JSON of pybids queries per data type (fMRIPrep format), e.g. "
               '{"bold": {"session": "01", "run": 1}}; keys: bold, timeseries, t1w')
    g.add("-d", "--derivatives", nargs="+", type=parse_derivative, default=[],
          metavar="NAME=PATH",
          help="derivatives datasets to read (fMRIPrep outputs, timeseries TSVs); NAME is only "
               "a label, what a dataset provides is found from its files")
    g.add("--skip-bids-validation", action="store_true",
          help="do not validate the input with bids-validator-deno")

    g = _Group(parser.add_argument_group("Resources and execution"))
    g.add("--nprocs", "--nthreads", "--n-cpus", type=non_negative_int, default=0,
          help="maximum number of processes (0: all cores)")
    g.add("--omp-nthreads", type=non_negative_int, default=0,
          help="maximum threads per process (0: min(nprocs, 8))")
    g.add("--mem", "--mem-mb", dest="mem_gb", type=parse_mem, default=0.0, metavar="MEM",
          help="memory limit for all processes: MB, or with a unit (16G, 512M)")
    g.add("--use-plugin", type=Path, metavar="FILE",
          help="Nipype plugin YAML (fMRIPrep format: 'plugin:' and 'plugin_args:')")
    g.add("--stop-on-first-crash", action="store_true",
          help="stop at the first failing node instead of finishing the other subjects")
    g.add("-w", "--work-dir", type=Path, metavar="DIR",
          help="working directory for intermediate results (default: ./work, as fMRIPrep); "
               "must not be inside bids_dir")
    g.add("--config-file", type=Path, metavar="FILE",
          help="a logs/config.toml from an earlier run: its values become the defaults, "
               "options on this command line win")
    g.add("--random-seed", type=non_negative_int, default=0,
          help="master seed; every random draw (folds, model seeds) derives from it")
    g.add("--reports-only", action="store_true",
          help="only (re)write reports and boilerplate from outputs already in OUTPUT_DIR")
    g.add("--overwrite", action="store_true",
          help="recompute and replace results that a finished earlier run wrote to OUTPUT_DIR "
               "(without it, a rerun with the same settings and inputs does nothing, and one "
               "with other settings stops with the differences)")
    g.add("--boilerplate-only", action="store_true",
          help="only write the methods boilerplate (logs/CITATION.*) and exit")
    g.add("--notrack", action="store_true", help="accepted for compatibility; xaibids sends no telemetry")
    g.add("-v", "--verbose", dest="verbose_count", action="count", default=0,
          help="more log output (-v info, -vv debug) and full tracebacks on errors")

    g = _Group(parser.add_argument_group("Features (participant level)"))
    g.add("--features", choices=["roi", "ica", "t1", "trials"], default="roi",
          help="what to extract: ROI timecourses, ICA timecourses, resampled T1 volumes, or "
               "single-trial activation maps (one volume per event of each BOLD run's "
               "events.tsv, Gotsopoulos et al. 2018; --target may then name an events column)")
    g.add("--atlas", default="harvard-oxford", metavar="NAME|PATH",
          help=f"bundled atlas ({', '.join(BUNDLED_ATLASES)}), a NIfTI label image with a TSV "
               "of 'index' and 'name' beside it, or a BIDS-Atlas dataset")
    g.add("--confounds", choices=CONFOUND_STRATEGIES, default="simple",
          help="nilearn fMRIPrep denoising strategy")
    g.add("--no-detrend", dest="detrend", action="store_false", help="do not detrend")
    g.add("--standardize", choices=STANDARDIZE_CHOICES, default="none",
          help="standardization of each timecourse (off by default, as in XCP-D: amplitude "
               "differences can carry the class; the group level standardizes each feature on "
               "the training folds)")
    g.add("--high-pass", type=non_negative_float, default=0.0, metavar="HZ",
          help="high-pass cut-off in Hz (0: off)")
    g.add("--low-pass", type=non_negative_float, default=0.0, metavar="HZ",
          help="low-pass cut-off in Hz (0: off)")
    g.add("--min-coverage", type=fraction, default=0.5,
          help="regions with a smaller fraction of voxels in the brain mask become n/a")
    g.add("--ica-components", type=positive_int, default=20, help="number of ICA components")
    g.add("--ica-template", type=Path, help="4D NIfTI of spatial maps for template-based ICA")
    g.add("--ica-algorithm", choices=["canica", "dictlearning"], default="canica",
          help="group ICA decomposition (without --ica-template): nilearn's CanICA or "
               "DictLearning")
    g.add("--ica-alpha", type=positive_float, default=10.0,
          help="--ica-algorithm dictlearning: sparsity penalty of the maps (nilearn's default "
               "10; lower it when no component is found)")
    g.add("--ica-mask", choices=["intersection", "union"], default="intersection",
          help="group ICA: brain mask as the intersection or the union of the runs' masks")
    g.add("--ica-subject-maps", action="store_true",
          help="also write each run's subject-specific component maps (dual regression "
               "stage 2)")
    g.add("--t1-resolution", type=t1_resolution, default=3.0, metavar="MM",
          help="--features t1: voxel size in mm of the template grid the T1w images are "
               "resampled onto, cropped to the brain's bounding box (default 3: 57 x 69 x 60 "
               "voxels, as Kan et al. 2020's ~58 x 70 x 58)")

    g = _Group(parser.add_argument_group("Models and ensembles (group level)"))
    g.add("--target", default="group", metavar="COLUMN",
          help="participants.tsv column holding the classes (--features trials: or a column "
               "of the events files, e.g. trial_type)")
    g.add("--cv-group", default="", metavar="COLUMN",
          help="participants.tsv column (e.g. site) kept whole within folds")
    g.add("--n-folds", type=positive_int, default=5, help="cross-validation folds")
    g.add("--n-models", type=steps_or_auto, default=10, metavar="N|auto",
          help="models (seeds) per fold, or 'auto': on fold 1, doubled from 2 until the "
               "stabilized maps stop changing (--ensemble-stability), at most --max-models")
    g.add("--max-models", type=positive_int, default=64,
          help="largest ensemble --n-models auto may choose")
    g.add("--ensemble-stability", type=open_fraction, default=0.95,
          help="--n-models auto stops at n when the stabilized maps of n and 2n models, and "
               "of 2n and 4n, correlate at least this much (with --stabilize closest: their "
               "mean maps, which the selection targets)")
    g.add("--model", choices=MODELS, default="region-cnn",
          help="network architecture: region-cnn (temporal filters per region, log-power, "
               "linear classifier; learns from a few dozen subjects), lstm-attn (Lewis et al. "
               "2023), stdnn (Strock et al. 2025), linear, connectome (correlation matrix, "
               "ridge-penalized linear classifier; for resting-state coupling) and cnn3d "
               "(volumes)")
    g.add("--sparsity", type=non_negative_float, default=0.2, metavar="LAMBDA",
          help="region-cnn: strength of the group-lasso penalty on each region's classifier "
               "weights, so that the model relies on the regions where the classes differ "
               "rather than on the regions they drive (0: off)")
    g.add("--epochs", type=positive_int, default=None,
          help="maximum training epochs (default: 100, or more when they would be fewer than "
               "400 mini-batch steps, as with a few dozen subjects)")
    g.add("--learning-rate", type=positive_float, default=1e-3, metavar="RATE",
          help="Adam's learning rate")
    g.add("--patience", type=positive_int, default=10, metavar="EPOCHS",
          help="early stopping: epochs without a lower validation loss before training stops")
    g.add("--val-fraction", type=validation_fraction, default=0.2, metavar="FRACTION",
          help="share of each fold's training subjects held out for early stopping (0: no "
               "early stopping, train --epochs; a validation set of a few subjects stops "
               "training at random)")
    g.add("--weight-decay", type=non_negative_float, default=0.0,
          help="L2 penalty of Adam; with few subjects per feature it concentrates the maps on "
               "the features the classes differ in")
    g.add("--run-length", dest="length_policy", choices=["crop", "error"], default="crop",
          help="runs of different lengths: crop all to the shortest (logged), or stop with an error")
    g.add("--max-censored", type=fraction, default=0.2, metavar="FRACTION",
          help="leave out runs whose censoring (--confounds scrubbing) removed more than this "
               "share of their volumes, as recorded in their sidecars (Parkes et al. 2018's "
               "criterion), before runs are cropped to the shortest; 1 keeps every run")
    g.add("--device", choices=["auto", "cpu", "cuda"], default="auto",
          help="where to train (auto: CUDA when present)")
    g.add("--batched-training", choices=["auto", "on", "off"], default="auto",
          help="train a fold's region-cnn, stdnn, linear or connectome models together as one "
               "vmapped network (auto: on CUDA); weights equal one-by-one training up to "
               "rounding")

    g = _Group(parser.add_argument_group("Attribution (group level)"))
    g.add("--attribution", nargs="+", choices=ATTRIBUTION_METHODS, default=["ig"],
          help="attribution methods")
    g.add("--baseline", nargs="+", choices=["zero", "mean", "median", "random"],
          default=["zero"],
          help="Integrated Gradients baseline(s) (mean, median, random: from each fold's "
               "training subjects); several give one IG map each (desc-igZero, desc-igMean, ...) "
               "and their agreement; other methods use the first")
    g.add("--ig-rule", choices=IG_RULES, default="gausslegendre",
          help="integration rule of Integrated Gradients (Captum's 'method')")
    g.add("--ig-multiply-by-inputs", action="store_true",
          help="multiply IG by (input - baseline), as in its original paper; off by default, "
               "as in Lewis et al. 2023")
    g.add("--ig-steps", type=ig_steps_value, default=50, metavar="N|auto|adaptive",
          help="integration steps of Integrated Gradients; 'auto': per fold, the fewest of "
               "4, 8, ..., 256 whose completeness error is within --ig-tolerance; 'adaptive': "
               "each subject's path is split into Gauss-Legendre panels, halved where the error "
               "is, until every batch is within --ig-tolerance (fewer points than auto in "
               "docs/benchmarks.md; needs --ig-rule "
               "gausslegendre)")
    g.add("--ig-tolerance", type=open_fraction, default=0.01,
          help="completeness tolerance of --ig-steps auto and adaptive: summed |convergence "
               "delta| over summed |change of the target logit| (0.01 = 1%%)")
    g.add("--stabilize", choices=["closest", "mean", "median", "none"], default="closest",
          help="how maps of a fold's models are combined per subject")
    g.add("--positive", choices=["abs", "relu", "none"], default="abs",
          help="applied to each stabilized map before it is normalized: absolute value (seed "
               "000), ReLU, or none (signed maps, which Strock et al. 2025's ROI score needs)")
    g.add("--permutations", type=non_negative_int, default=0,
          help="label-shuffled runs giving per-feature null thresholds and the reproducibility "
               "of each feature (Gotsopoulos et al. 2018 §2.9); each trains one model per fold")
    g.add("--reliability-samples", type=non_negative_int, default=16, metavar="N",
          help="test subjects of fold 1 used for the model-randomization sanity check and the "
               "infidelity/max-sensitivity metrics (0: skip those checks)")

    g = _Group(parser.add_argument_group("Group statistics (group level)"))
    g.add("--feature-groups", type=Path, metavar="TSV",
          help="TSV with columns 'feature' and 'group' assigning features to domains "
               "(e.g. networks); importance is also reported per domain")
    g.add("--fdr-alpha", type=fraction, default=0.01,
          help="false discovery rate of the co-saliency and sFNC edge tests (Lewis et al. "
               "2023: 0.01)")
    g.add("--n-bootstrap", type=positive_int, default=1000,
          help="bootstrap resamples of the Cohen's d confidence intervals")
    g.add("--selection", choices=SELECTION_RULES, default="empirical-null",
          help="rule of the importance tables' 'selected' column: 'empirical-null' (each "
               "feature's attribution tested for its level against an empirical null over "
               "features and for more than an even share, Benjamini-Hochberg FDR at "
               "--selection-alpha), "
               "'roi-score' (Strock et al. 2025's |median over time| score at 0.5) or 'fixed' "
               "(max-normalized importance at 0.5); the last two have no error control. "
               "Whatever the rule, nothing is selected when the classifier is not above chance")
    g.add("--selection-alpha", type=open_fraction, default=0.05, metavar="ALPHA",
          help="false discovery rate of --selection empirical-null, and the level of the test of "
               "the classifier against chance")
    return parser


def option_names() -> dict[str, str]:
    """Config field name → its long command-line option, as the methods text spells them."""
    names = {}
    for action in get_parser()._actions:
        longs = [s for s in action.option_strings if s.startswith("--") and "_" not in s]
        if longs:
            names.setdefault(action.dest, longs[0])
    names["derivatives"] = "--derivatives"
    return names
