"""Real data: xaibids' models on ABIDE against the connectome baseline a user tries first (issue 28).

    python benchmarks/bench_abide.py [--targets diagnosis sex] [--models connectome region-cnn]
                                     [--n-models 10] [--threads 2]

Ingests the ABIDE I ROI timecourses of the Preprocessed Connectomes Project in
``../shared/data/abide-pcp-cc200`` (CC200 atlas; the sites there, NYU and UM_1, 294 subjects)
with ``xaibids-ingest abide-pcp`` and its CC200 atlas image, and classifies each target
(``diagnosis``: ASD or control; ``sex``) under leave-one-site-out cross-validation
(``--cv-group site``: with two sites, the site-grouped folds are the two leave-one-site-out
folds) with the group level's default ensemble (``xaibids.config.Config`` through
``xaibids.levels.group.ensemble_config``: its default 10 models per fold, IG) for each of
``--models``. Runs of different lengths are cropped to the shortest (176 time points), as the
group level does by default; the baselines see the same cropped timecourses.

On the same timecourses and the same folds it runs the baselines of
:mod:`xaibids.validation.baselines`: logistic regressions on nilearn's vectorized correlation
matrices (Abraham et al. 2017) and on the regions' standard deviations.

Reported per target and model: the verdict (out-of-fold balanced accuracy with its 95 %
confidence interval and permutation p-value), the balanced accuracy of each test site, the
number of selected regions, and the ten most important CC200 regions with the Harvard-Oxford
region holding most of each parcel. Writes ``benchmarks/results/abide.json``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

ABIDE = HERE.parent.parent / "shared" / "data" / "abide-pcp-cc200"
CC200_IMAGE = HERE.parent.parent / "shared" / "data" / "atlases" / "CPAC200_space-MNI152NLin6_res-2x2x2.nii.gz"
TARGETS = ("diagnosis", "sex")


def ingest(out: Path) -> Path:
    """ABIDE in BIDS (the README's command); the derivatives folder with the timecourses."""
    from xaibids.ingest.abide import ingest_abide_pcp

    ingest_abide_pcp(ABIDE / "rois_cc200", ABIDE / "Phenotypic_V1_0b_preprocessed1.csv", out,
                     atlas="cc200", atlas_image=CC200_IMAGE)
    return out / "derivatives" / "abide-pcp-cc200"


def region_names(derivatives: Path):
    """Harvard-Oxford name and share of each CC200 parcel."""
    from xaibids.features.atlases import load_bids_atlas_dataset, load_bundled_atlas
    from xaibids.levels.sources import REFERENCE_ATLAS
    from xaibids.stats.regions import reference_regions

    atlas = load_bids_atlas_dataset(derivatives / "atlases")
    reference = load_bundled_atlas(REFERENCE_ATLAS)
    return reference_regions(atlas.img, atlas.labels, reference.img,
                             reference.labels).set_index("name")


def score_model(dataset, model: str, n_models: int, seed: int, names) -> dict:
    """The default ensemble with ``model``: verdict, per-site accuracy, selection, top regions."""
    import numpy as np
    from default_ensemble import run_default_ensemble
    from sklearn.metrics import balanced_accuracy_score

    run = run_default_ensemble(dataset, model, 2, n_models, seed, cv_group="site")
    samples = np.array([row["sample"] for row in run.result.map_info])
    predicted = np.array([row["prediction_index"] for row in run.result.map_info])
    sites = {str(site): float(balanced_accuracy_score(dataset.y[samples[test]], predicted[test]))
             for site in np.unique(dataset.groups)
             for test in [dataset.groups[samples] == site]}
    top = run.table.sort_values("importance", ascending=False).head(10)
    return {"verdict": run.verdict.to_dict(), "balanced_accuracy_per_test_site": sites,
            "n_selected": int(run.table["selected"].sum()),
            "top_regions": [{"feature": row.feature,
                             "reference_region": names.loc[row.feature, "reference_region"],
                             "reference_share": float(names.loc[row.feature, "reference_share"]),
                             "importance_norm": float(row.importance_norm),
                             "selected": bool(row.selected)} for row in top.itertuples()],
            "folds": run.result.folds, "seconds": run.seconds}


def _print_target(target: str, row: dict) -> None:
    baselines = row["baselines"]
    print(f"{target}: LR connectome {baselines['logreg_connectome_balanced_accuracy']:.3f}, "
          f"LR sd {baselines['logreg_sd_balanced_accuracy']:.3f}", flush=True)
    for model, res in row["models"].items():
        v = res["verdict"]
        print(f"  {model:<11} BA {v['balanced_accuracy']:.3f} ({v['ci_low']:.3f}-"
              f"{v['ci_high']:.3f}, p {v['p_value']:.4f}), per test site "
              f"{res['balanced_accuracy_per_test_site']}, {res['n_selected']} selected, "
              f"{res['seconds']:.0f} s", flush=True)


def run(targets, models, n_models: int, seed: int) -> dict:
    import numpy as np

    from xaibids.learning.dataset import output_timecourses
    from xaibids.validation.baselines import classification_baselines

    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        bids = Path(tmp) / "abide"
        derivatives = ingest(bids)
        names = region_names(derivatives)
        for target in targets:
            dataset = output_timecourses(derivatives, bids / "participants.tsv", target,
                                         cv_group="site")
            row = {"n_subjects": len(dataset.y), "classes": list(dataset.classes),
                   "class_counts": np.bincount(dataset.y).tolist(),
                   "n_timepoints": int(dataset.X.shape[1]), "models": {}}
            for model in models:
                row["models"][model] = score_model(dataset, model, n_models, seed, names)
            folds = row["models"][models[0]]["folds"]
            for model in models:
                row["models"][model].pop("folds")
            # the two flat regions of two subjects are n/a: the training mean, as for xaibids
            row["baselines"] = classification_baselines(np.nan_to_num(dataset.X), dataset.y,
                                                        folds)
            report[target] = row
            _print_target(target, row)
    return report


def main(argv=None) -> int:
    from xaibids.validation.benchmark import benchmark_parser, write_benchmark_report

    parser = benchmark_parser(__doc__.split("\n\n")[0], None)
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    parser.add_argument("--models", nargs="+", default=["connectome", "region-cnn"])
    parser.add_argument("--n-models", type=int, default=10,
                        help="models per fold (the group level's default, 10)")
    args = parser.parse_args(argv)
    if not (ABIDE / "rois_cc200").is_dir():
        parser.error(f"{ABIDE} is not there: this benchmark needs ../shared beside the checkout.")

    import torch

    torch.set_num_threads(args.threads)
    report = {"benchmark": "abide", "description": __doc__.split("\n\n")[0],
              "cross_validation": "leave-one-site-out (--cv-group site)",
              "n_models": args.n_models,
              "targets": run(args.targets, args.models, args.n_models, args.random_seed)}
    write_benchmark_report(report, args.output or HERE / "results" / "abide.json", args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
