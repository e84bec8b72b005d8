"""The defaults on the BOLD simulator, against the baselines a user tries first (issue 25).

    python benchmarks/bench_defaults_bold.py [--full] [--confounds simple scrubbing ...]
                                             [--models region-cnn stdnn] [--sparsity 0.2]

Simulates ``xaibids-simulate bold`` **at its defaults** (Harvard-Oxford regions, 100 volumes,
0 dB per voxel, motion, fMRIPrep-style confounds; the class effect a raised self-excitation of
5 % of the regions), runs the participant level at its defaults once per ``--confounds``
strategy (``simple`` is the default), and trains on the extracted timecourses the group
level's default ensemble (``xaibids.config.Config`` through ``xaibids.levels.group.ensemble_config``,
only the folds and models per fold set for time) for each of ``--models`` (the first is
xaibids' default; ``stdnn`` was the default before). On the same timecourses and the same
folds it runs the baselines of :mod:`xaibids.validation.baselines`: logistic regressions on
the regions' SD and on the correlation matrix, and a t-test per region of the SDs with FDR.

Reported per strategy and model: the verdict (out-of-fold balanced accuracy, permutation p),
the ranks of the simulated regions by group importance, and the default selection's
precision, recall and F1; per strategy the baselines' balanced accuracy and the t-test's
ranks and F1.

Sizes: 40 subjects, 4 folds x 5 models (the demo's); ``--full``: 100 subjects, 5 folds x 10
models (the group level's default ensemble). Writes
``benchmarks/results/defaults_bold[_full].json``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

STRATEGIES = ("simple", "scrubbing", "compcor", "none")


def extract(bids: Path, out: Path, work: Path, strategy: str):
    """The participant level at its defaults but ``--confounds``; the timecourses as a dataset."""
    from xaibids.cli.run import main as xaibids_main
    from xaibids.learning.dataset import output_timecourses

    code = xaibids_main([str(bids), str(out), "participant", "-d",
                         f"fmriprep={bids / 'derivatives' / 'fmriprep'}", "-w", str(work),
                         "--atlas", "harvard-oxford", "--confounds", strategy])
    if code:
        raise RuntimeError(f"the participant level failed with --confounds {strategy}")
    return output_timecourses(out, bids / "participants.tsv", "group")


def score_model(dataset, relevant, model: str, n_folds: int, n_models: int, seed: int,
                sparsity: float | None = None) -> dict:
    """The default ensemble with ``model``: verdict, truth ranks, default selection."""
    from default_ensemble import run_default_ensemble
    from xaibids.validation.baselines import truth_ranks
    from xaibids.validation.metrics import precision_recall_f1

    run = run_default_ensemble(dataset, model, n_folds, n_models, seed, sparsity=sparsity)
    selected = run.table["selected"].to_numpy().astype(bool)
    return {"verdict": run.verdict.to_dict(),
            "truth_ranks_importance": truth_ranks(run.table["importance"].to_numpy(), relevant),
            "selection": {"n_selected": int(selected.sum()),
                          **precision_recall_f1(selected, relevant)},
            "folds": run.result.folds, "seconds": run.seconds}


def run(n_subjects: int, n_folds: int, n_models: int, strategies, models, seed: int,
        sparsity: float | None = None) -> dict:
    import numpy as np
    import pandas as pd

    from xaibids.simulate import simulate
    from xaibids.validation.baselines import classification_baselines, region_tests, truth_ranks
    from xaibids.validation.metrics import precision_recall_f1

    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bids = tmp / "bids"
        simulate("bold", bids, n_subjects=n_subjects, seed=seed)
        truth = pd.read_csv(bids / "derivatives" / "fmriprep" / "groundtruth_features.tsv",
                            sep="\t")
        for strategy in strategies:
            dataset = extract(bids, tmp / f"out-{strategy}", tmp / f"work-{strategy}", strategy)
            relevant = np.isin(dataset.feature_names,
                               truth.loc[truth["relevant"] == 1, "feature"])
            row = {"models": {}}
            for model in models:
                row["models"][model] = score_model(dataset, relevant, model, n_folds, n_models,
                                                   seed, sparsity)
            folds = row["models"][models[0]].pop("folds")
            for model in models[1:]:
                row["models"][model].pop("folds")
            sd_test = region_tests(dataset.X, dataset.y)["sd"]
            row["baselines"] = classification_baselines(dataset.X, dataset.y, folds) | {
                "ttest_sd_truth_ranks": truth_ranks(sd_test["t"], relevant),
                "ttest_sd_selection": {"n_selected": int(sd_test["selected"].sum()),
                                       **precision_recall_f1(sd_test["selected"], relevant)}}
            report[strategy] = row
            print(f"--confounds {strategy}: LR sd "
                  f"{row['baselines']['logreg_sd_balanced_accuracy']:.2f}, LR connectome "
                  f"{row['baselines']['logreg_connectome_balanced_accuracy']:.2f}, t-test SD "
                  f"ranks {row['baselines']['ttest_sd_truth_ranks']} F1 "
                  f"{row['baselines']['ttest_sd_selection']['f1']:.2f}", flush=True)
            for model, res in row["models"].items():
                v = res["verdict"]
                print(f"  {model:<10} BA {v['balanced_accuracy']:.2f} (p {v['p_value']:.4f}) "
                      f"ranks {res['truth_ranks_importance']} selected "
                      f"{res['selection']['n_selected']} F1 {res['selection']['f1']:.2f} "
                      f"{res['seconds']:.0f} s", flush=True)
    return report


def main(argv=None) -> int:
    from xaibids.validation.benchmark import benchmark_parser, write_benchmark_report

    parser = benchmark_parser(__doc__.split("\n\n")[0],
                              "100 subjects, 5 folds x 10 models (the default ensemble)")
    parser.add_argument("--confounds", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    parser.add_argument("--models", nargs="+", default=["region-cnn", "stdnn"])
    parser.add_argument("--sparsity", type=float,
                        help="region-cnn's group lasso (default: the group level's, 0.2)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    n_subjects, n_folds, n_models = (100, 5, 10) if args.full else (40, 4, 5)
    name = "defaults_bold" + ("_full" if args.full else "")
    report = {"benchmark": name, "description": __doc__.split("\n\n")[0],
              "n_subjects": n_subjects, "n_folds": n_folds, "n_models": n_models,
              **({"sparsity": args.sparsity} if args.sparsity is not None else {}),
              "strategies": run(n_subjects, n_folds, n_models, args.confounds, args.models,
                                args.random_seed, args.sparsity)}
    write_benchmark_report(report, args.output or HERE / "results" / f"{name}.json", args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
