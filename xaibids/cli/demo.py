"""``xaibids demo OUT_DIR``: simulate a small BOLD dataset and run both levels on it.

The dataset is the ``bold`` simulation (``xaibids-simulate bold``): the small-world E/I network
of seed 001 painted into the Harvard-Oxford regions of the MNI152 template, with a few regions
whose excitability differs between the classes. The demo ends by scoring the maps against
the simulated truth with :mod:`xaibids.validation` (also written to
``group/desc-validation_metrics.tsv``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd

LOGGER = logging.getLogger("xaibids")

#: Simulation settings of the demo: a strong, clearly separable effect (seed 001's easiest
#: corner: severity 0.5, 10 dB) so that a 2-core laptop run shows the method working.
DEMO_SIMULATION = {"severity": 0.5, "snr_db": 10.0, "n_timepoints": 200}


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xaibids demo",
        description="Simulate a small BOLD dataset with known relevant regions, run the "
                    "participant and group levels on it, and compare the result with the truth.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("out_dir", type=Path, help="folder for the dataset, outputs and work")
    parser.add_argument("--n-subjects", type=int, default=40, help="simulated subjects")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulation and the run")
    parser.add_argument("--n-models", type=int, default=5, help="models per fold")
    parser.add_argument("--n-folds", type=int, default=4, help="cross-validation folds")
    parser.add_argument("--epochs", type=int, default=40, help="maximum training epochs")
    parser.add_argument("--model", default="stdnn", help="network architecture")
    return parser


def main(argv: list[str] | None = None) -> int:
    from xaibids.cli.run import main as xaibids_main
    from xaibids.simulate import simulate

    opts = get_parser().parse_args(argv)
    out_dir = opts.out_dir.absolute()
    bids_dir = out_dir / "bids"
    results = out_dir / "xaibids"
    if bids_dir.exists():
        print(f"xaibids demo: reusing the simulated dataset in {bids_dir}", file=sys.stderr)
    else:
        print(f"xaibids demo: simulating {opts.n_subjects} subjects into {bids_dir}",
              file=sys.stderr)
        simulate("bold", bids_dir, n_subjects=opts.n_subjects, seed=opts.seed,
                 **DEMO_SIMULATION)
    fmriprep = bids_dir / "derivatives" / "fmriprep"
    common = [str(bids_dir), str(results), "-d", f"fmriprep={fmriprep}",
              "-w", str(out_dir / "work"), "--atlas", "harvard-oxford",
              "--random-seed", str(opts.seed)]
    code = xaibids_main(common[:2] + ["participant"] + common[2:])
    if code:
        return code
    code = xaibids_main(common[:2] + ["group"] + common[2:] + [
        "--target", "group", "--model", opts.model, "--n-folds", str(opts.n_folds),
        "--n-models", str(opts.n_models), "--epochs", str(opts.epochs)])
    if code:
        return code
    from xaibids.validation import score_output, write_metrics

    table = score_output(results, bids_dir)
    metrics_path = write_metrics(table, results, bids_dir)
    summary = table[table["subject"].isna()].set_index("metric")["value"]
    importance = pd.read_csv(results / "group" / "desc-ig_importance.tsv", sep="\t")
    selected = importance.loc[importance["selected"].astype(str) == "True", "feature"].tolist()
    truth = pd.read_csv(fmriprep / "groundtruth_features.tsv", sep="\t")
    relevant = truth.loc[truth["relevant"] == 1, "feature"].tolist()
    perf = pd.read_csv(results / "group" / "desc-performance_metrics.tsv", sep="\t")
    ens = perf[perf["model"].astype(str) == "ensemble"]
    print(f"""
xaibids demo finished.
  results:            {results}
  group importance:   {results / 'group' / 'desc-ig_importance.tsv'}
  subject maps:       {results}/sub-*/func/*_desc-ig_attribution.(tsv|nii.gz)
  validation metrics: {metrics_path}
  methods text:       {results / 'logs' / 'CITATION.md'}
  balanced accuracy:  {ens['balanced_accuracy'].mean():.3f} (mean over {len(ens)} folds)
  simulated relevant regions: {', '.join(relevant)}
  selected regions (importance_norm >= 0.5): {len(selected)} of {len(importance)}
  against the truth: importance precision {summary['importance_precision']:.2f}, recall \
{summary['importance_recall']:.2f}, F1 {summary['importance_f1']:.2f}; seed 001 ROI score F1 \
{summary['group_roi_f1']:.2f}""")
    return 0
