"""``xaibids demo OUT_DIR``: simulate a small BOLD dataset and run both levels on it.

The dataset is the ``bold`` simulation at its defaults (``xaibids-simulate bold``): the
small-world E/I network of Strock et al. 2025 painted into the Harvard-Oxford regions of the
MNI152 template, with a few regions whose self-excitation differs between the classes, and
fMRIPrep-style confounds. Both levels run at their defaults; only the dataset size, the folds
and the models per fold are chosen for speed. The demo ends by scoring the maps against the
simulated truth with :mod:`xaibids.validation` (also written to
``group/desc-validation_metrics.tsv``) and by running, on the same timecourses and folds, the
baselines a user would try first (:mod:`xaibids.validation.baselines`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import pandas as pd

LOGGER = logging.getLogger("xaibids")

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
    parser.add_argument("--epochs", type=int, help="maximum training epochs (default: the "
                                                  "group level's)")
    parser.add_argument("--model", help="network architecture (default: the group level's)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from xaibids.cli.command import main as xaibids_main
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
        simulate("bold", bids_dir, n_subjects=opts.n_subjects, seed=opts.seed)
    fmriprep = bids_dir / "derivatives" / "fmriprep"
    common = [str(bids_dir), str(results), "-d", f"fmriprep={fmriprep}",
              "-w", str(out_dir / "work"), "--atlas", "harvard-oxford",
              "--random-seed", str(opts.seed)]
    code = xaibids_main(common[:2] + ["participant"] + common[2:])
    if code:
        return code
    chosen = [("--model", opts.model), ("--epochs", opts.epochs)]
    code = xaibids_main(common[:2] + ["group"] + common[2:] + [
        "--target", "group", "--n-folds", str(opts.n_folds), "--n-models", str(opts.n_models)]
        + [str(x) for option, value in chosen if value is not None for x in (option, value)])
    if code:
        return code
    print(summarize(results, bids_dir))
    return 0


def baselines_on_the_same_folds(results: Path, bids_dir: Path, relevant: list[str]) -> str:
    """The baselines a user tries first (:mod:`xaibids.validation.baselines`), on the demo's
    timecourses and on the group level's folds (each subject's ``Fold`` in its map's sidecar)."""
    import numpy as np

    from xaibids.learning.dataset import output_timecourses
    from xaibids.validation.baselines import classification_baselines, region_tests, truth_ranks

    dataset = output_timecourses(results, bids_dir / "participants.tsv", "group")
    fold_of = {}
    for path in results.glob("sub-*/func/*_desc-ig_attribution.json"):
        fold_of[path.name.split("_")[0]] = json.loads(path.read_text())["Fold"]
    fold = np.array([fold_of[s] for s in dataset.subjects])
    folds = [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in np.unique(fold)]
    accuracy = classification_baselines(dataset.X, dataset.y, folds)
    sd_test = region_tests(dataset.X, dataset.y)["sd"]
    truth = np.isin(dataset.feature_names, relevant)
    n_selected, n_true = int(sd_test["selected"].sum()), int((sd_test["selected"] & truth).sum())
    return (f"  baselines on the same timecourses and folds: logistic regression on the "
            f"regions' SD {accuracy['logreg_sd_balanced_accuracy']:.3f}, on the correlation "
            f"matrix {accuracy['logreg_connectome_balanced_accuracy']:.3f} (balanced "
            f"accuracy); a t-test of the regions' SD ranks the simulated regions "
            f"{', '.join(map(str, truth_ranks(sd_test['t'], truth)))} and selects {n_selected} "
            f"({n_true} simulated) at FDR 0.05")


def summarize(results: Path, bids_dir: Path) -> str:
    """Score the demo's maps against the simulated truth; the text the demo ends with."""
    from xaibids.cli.validate import write_validation
    from xaibids.validation import score_output

    table = score_output(results, bids_dir)
    metrics_path = write_validation(table, results, bids_dir)
    summary = table[table["subject"].isna() & (table["method"] == "ig")].set_index("metric")["value"]
    importance = pd.read_csv(results / "group" / "desc-ig_importance.tsv", sep="\t")
    truth = pd.read_csv(bids_dir / "derivatives" / "fmriprep" / "groundtruth_features.tsv",
                        sep="\t")
    relevant = truth.loc[truth["relevant"] == 1, "feature"].tolist()
    order = importance.sort_values("importance_norm", ascending=False)["feature"].tolist()
    ranks = sorted(order.index(f) + 1 for f in relevant if f in order)
    n_selected = int(importance["selected"].astype(str).str.lower().eq("true").sum())
    perf = pd.read_csv(results / "group" / "desc-performance_metrics.tsv", sep="\t")
    ens = perf[(perf["model"].astype(str) == "ensemble") & (perf["fold"].astype(str) != "all")]
    sidecars = {name: json.loads((results / "group" / f"{name}.json").read_text())
                for name in ("desc-performance_metrics", "desc-ig_importance")}
    rule = sidecars["desc-ig_importance"]
    report = results / "group.html"
    report_line = (f"  report (open in a browser): {report.as_uri()}\n" if report.exists() else "")
    return f"""
xaibids demo finished.
{report_line}  results:            {results}
  validation metrics: {metrics_path}
  methods text:       {results / 'logs' / 'CITATION.md'}
  settings:           both levels at their defaults (see {results / 'logs' / 'config.toml'})
  balanced accuracy:  {ens['balanced_accuracy'].mean():.3f} (mean over {len(ens)} folds)
  verdict:            {sidecars['desc-performance_metrics']['Verdict']}
  simulated relevant regions ({len(relevant)}): {', '.join(relevant)}
  their ranks by group importance: {', '.join(map(str, ranks))} of {len(order)} (1 = most important)
  ranking against the truth: R-precision {summary['importance_r_precision']:.2f} (share of the \
{len(relevant)} top-ranked regions that are simulated ones), ROC AUC {summary['importance_auc']:.2f}
  selection ({rule['SelectionRule']} rule): {n_selected} of {len(importance)} regions selected, \
precision {summary['importance_precision']:.2f}, recall {summary['importance_recall']:.2f}, \
F1 {summary['importance_f1']:.2f}
    rule: {rule['SelectionDescription']}
{baselines_on_the_same_folds(results, bids_dir, relevant)}"""
