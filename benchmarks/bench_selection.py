"""Feature selection and the classifier's verdict at the defaults, against truth and baselines.

    python benchmarks/bench_selection.py [--full] [--conditions snr0 ...] [--nulls 20] [--jobs 2]

For every condition of Strock et al. 2025's Fig 2 grid (``rnn-ei`` simulator: SNR, prevalence,
severity) this script simulates a dataset, trains the ensemble **at xaibids' defaults**
(``region-cnn`` with its group lasso, ``--sparsity`` to change it; ``--model stdnn`` for the
previous default; IG with 50 points, ``closest``
stabilization, ``abs`` maps; only the folds and models per fold set for time) and scores,
against the simulated affected nodes:

- every selection rule of ``--selection`` (``empirical-null``, the default; ``roi-score``; ``fixed``):
  number selected, precision, recall, F1 and the false-positive rate (false selections over
  unaffected nodes), each only when the verdict says the classifier is above chance;
- what a user tries first, on the same data and the same folds: a t-test per node of the
  nodes' standard deviations (and of their means) with Benjamini-Hochberg FDR at 0.05; and
  logistic regressions on the nodes' standard deviations and on the correlation matrix
  (nilearn's ``ConnectivityMeasure``), with their out-of-fold balanced accuracy beside the
  ensemble's;
- the verdict (:func:`xaibids.stats.verdict.classifier_verdict`).

Then ``--nulls`` label-shuffled copies of the central condition (0 dB, 5 %, δ = 0.3), each
with its own shuffle and seed: how often the verdict says "above chance" and how often any
node is selected (the issue's bar: at most 1 of 20 each).

Sizes: 200 subjects, 5 folds × 3 models (the default); ``--full``: 400 subjects (Strock et al.'s
size), 5 folds × 10 models (xaibids' default ensemble). Writes
``benchmarks/results/selection[_full][_<model>].json``.

``--cost`` instead times what the verdict and the selection add to a group run (no model is
trained for either): both on 1 000 subjects × 400 features, against the time of one forward
pass of a ``stdnn`` (the default until region-cnn) over those subjects (``benchmarks/results/selection_cost.json``).
"""

from __future__ import annotations

import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import replace
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

from xaibids.validation.benchmark import STROCK2025_CONDITIONS as CONDITIONS  # noqa: E402

RULES = ("empirical-null", "roi-score", "fixed")


class _Deferred:
    """A call run in this process when its ``result()`` is asked for, as a future's is."""

    def __init__(self, call):
        self.call = call

    def result(self):
        return self.call()


def rates(selected, truth) -> dict:
    """Precision, recall and F1 (``xaibids.validation.metrics``), the number selected and the
    false-positive rate (false selections over the unaffected nodes)."""
    from xaibids.validation.metrics import confusion_counts, precision_recall_f1

    counts = confusion_counts(selected, truth)
    return {"n_selected": counts["tp"] + counts["fp"], **precision_recall_f1(selected, truth),
            "false_positive_rate": counts["fp"] / max(counts["fp"] + counts["tn"], 1)}


def baselines(X, y, folds) -> dict:
    """t-tests per node with FDR, and logistic regressions on the same folds
    (:mod:`xaibids.validation.baselines`)."""
    from xaibids.validation.baselines import classification_baselines, region_tests

    out = {f"ttest_{name}_selected": test["selected"] for name, test in region_tests(X, y).items()}
    return out | classification_baselines(X, y, folds)


def run_condition(snr, prevalence, severity, n_subjects, n_folds, n_models, seed, shuffle=None,
                  device="cpu", model=None, sparsity=None) -> dict:
    """Simulate, run the default ensemble, and score every rule and baseline."""
    import numpy as np

    from xaibids.learning.ensemble import EnsembleConfig, run_ensemble
    from xaibids.stats import SelectionRule, group_importance
    from xaibids.stats.verdict import out_of_fold_verdict
    from xaibids.validation.benchmark import as_dataset, simulate_in_memory

    start = time.perf_counter()
    sim = simulate_in_memory("rnn-ei", n_subjects, seed, snr_db=snr, prevalence=prevalence,
                             severity=severity)
    dataset = as_dataset(sim)
    if shuffle is not None:
        dataset = replace(dataset, y=np.random.default_rng([seed, shuffle]).permutation(dataset.y))
    config = EnsembleConfig(n_folds=n_folds, n_models=n_models, random_seed=seed, device=device,
                            **({"model": model} if model else {}),
                            **({"model_kwargs": {"sparsity": sparsity}} if sparsity is not None
                               else {}))
    with tempfile.TemporaryDirectory() as tmp:
        result = run_ensemble(dataset, config, tmp, progress=False)
    verdict = out_of_fold_verdict(result.map_info, len(dataset.classes), random_state=seed)
    truth = np.isin(dataset.feature_names, sorted(set(sim.relevant_features[0])))
    withheld = None if verdict.above_chance else "not above chance"
    row = {"verdict": verdict.to_dict(), "rules": {}, "seconds": 0.0}
    for rule in RULES:
        table = group_importance(result.maps["ig"], dataset.y, dataset.classes,
                                 dataset.feature_names, n_boot=0,
                                 selection=SelectionRule(rule), withheld=withheld,
                                 selection_importance=result.mean_model_importance["ig"])
        row["rules"][rule] = rates(table["selected"].to_numpy(), truth)
        if rule == "empirical-null":
            order = np.argsort(-np.abs(table["statistic"].to_numpy()))
            row["truth_ranks_contrast"] = sorted(int(r) + 1 for r in np.flatnonzero(truth[order]))
        order = np.argsort(-table["importance"].to_numpy())
        row["truth_ranks_importance"] = sorted(int(r) + 1 for r in np.flatnonzero(truth[order]))
    base = baselines(dataset.X, dataset.y, result.folds)
    for key in [k for k in base if k.endswith("_selected")]:
        row[key.removesuffix("_selected")] = rates(base.pop(key), truth)
    row.update(base)
    row["seconds"] = time.perf_counter() - start
    return row


def cost(n_subjects: int = 1000, n_features: int = 400, n_timepoints: int = 200,
         repeats: int = 3) -> dict:
    """Seconds of the verdict and of the default selection rule, with a forward pass of the
    default model over the same subjects as the yardstick (best of ``repeats``)."""
    import numpy as np
    import torch

    from xaibids.models import build_model
    from xaibids.stats import SelectionRule, classifier_verdict
    from xaibids.stats.selection import select_features

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n_subjects)
    pred = np.where(rng.random(n_subjects) < 0.7, y, 1 - y)
    shares = rng.dirichlet(np.ones(n_features), n_subjects)
    model = build_model("stdnn", n_features, n_timepoints, 2).eval()
    x = torch.randn(n_subjects, n_timepoints, n_features)

    def best(fn):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    with torch.no_grad():
        forward = best(lambda: model(x))
    verdict = best(lambda: classifier_verdict(y, pred, 2))
    norm = shares.mean(0) / shares.mean(0).max()
    selection = best(lambda: select_features(SelectionRule(), shares, y, 2, norm, norm))
    return {"n_subjects": n_subjects, "n_features": n_features, "n_timepoints": n_timepoints,
            "seconds": {"verdict": verdict, "selection": selection,
                        "stdnn_forward_pass": forward},
            "ratio_to_forward_pass": (verdict + selection) / forward}


def main(argv=None) -> int:
    from xaibids.validation.benchmark import benchmark_parser, write_benchmark_report

    parser = benchmark_parser(__doc__.split("\n\n")[0],
                              "400 subjects, 5 folds x 10 models (the default ensemble)")
    parser.add_argument("--conditions", nargs="*", choices=sorted(CONDITIONS),
                        default=list(CONDITIONS))
    parser.add_argument("--nulls", type=int, default=20,
                        help="label-shuffled copies of the central condition")
    parser.add_argument("--model", help="architecture (default: xaibids' default); results go "
                                         "to selection[_full]_<model>.json")
    parser.add_argument("--sparsity", type=float,
                        help="region-cnn's group lasso (default: the model's, 0.2)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="conditions run at once, each in a process of --threads")
    parser.add_argument("--cost", action="store_true",
                        help="only time the verdict and the selection (selection_cost.json)")
    args = parser.parse_args(argv)

    import torch

    from xaibids.learning.ensemble import EnsembleConfig

    torch.set_num_threads(args.threads)
    if args.cost:
        report = {"benchmark": "selection_cost", "description": "Seconds of the verdict (10 000 "
                  "label permutations) and of the default selection rule.", **cost()}
        print(report)
        write_benchmark_report(report, args.output or HERE / "results" / "selection_cost.json",
                               args)
        return 0
    n_subjects, n_models = (400, 10) if args.full else (200, 3)
    name = "selection" + ("_full" if args.full else "") + (f"_{args.model}" if args.model else "")
    output = args.output or HERE / "results" / f"{name}.json"
    report = {"benchmark": name, "description": __doc__.split("\n\n")[0],
              "n_subjects": n_subjects, "n_folds": 5, "n_models": n_models,
              "model": args.model or EnsembleConfig.model,
              "paper_f1": 1.0, "conditions": {}, "nulls": []}
    print(f"{'condition':<10} {'BA':>5} {'p':>7} " + " ".join(f"{r + ' F1':>13}" for r in RULES)
          + f" {'t-test SD F1':>13} {'LR sd BA':>9} {'LR conn BA':>10}   s")
    tasks = [(key, CONDITIONS[key], args.random_seed, None) for key in args.conditions]
    tasks += [(f"null {index}", CONDITIONS["snr0"], args.random_seed + 1000 + index, index)
              for index in range(args.nulls)]
    options = {"device": args.device, "model": args.model, "sparsity": args.sparsity}

    def submit(pool, key, condition, seed, shuffle):
        args_ = (*condition, n_subjects, 5, n_models, seed)
        if pool is None:  # one job: in this process, one after the other
            return _Deferred(partial(run_condition, *args_, shuffle=shuffle, **options))
        return pool.submit(run_condition, *args_, shuffle=shuffle, **options)

    # conditions are independent (each simulates with its own seed): --jobs runs them in
    # worker processes of --threads each, with the same results as one after the other
    with (ProcessPoolExecutor(args.jobs, initializer=torch.set_num_threads,
                              initargs=(args.threads,)) if args.jobs > 1 else nullcontext()) as pool:
        futures = [submit(pool, *task) for task in tasks]
        for (key, condition, _, shuffle), future in zip(tasks, futures):
            row = future.result()
            v = row["verdict"]
            if shuffle is None:
                report["conditions"][key] = dict(zip(("snr_db", "prevalence", "severity"),
                                                     condition)) | row
                print(f"{key:<10} {v['balanced_accuracy']:>5.2f} {v['p_value']:>7.4f} "
                      + " ".join(f"{row['rules'][r]['f1']:>13.2f}" for r in RULES)
                      + f" {row['ttest_sd']['f1']:>13.2f}"
                      + f" {row['logreg_sd_balanced_accuracy']:>9.2f}"
                      + f" {row['logreg_connectome_balanced_accuracy']:>10.2f}"
                      + f" {row['seconds']:>4.0f}", flush=True)
            else:
                report["nulls"].append(row)
                print(f"null {shuffle:>3}  BA {v['balanced_accuracy']:.2f} p {v['p_value']:.4f} "
                      f"selected {row['rules']['empirical-null']['n_selected']} "
                      f"(t-test SD {row['ttest_sd']['n_selected']}) {row['seconds']:.0f} s",
                      flush=True)
    if report["nulls"]:
        nulls = report["nulls"]
        report["null_summary"] = {
            "n": len(nulls),
            "above_chance": sum(r["verdict"]["above_chance"] for r in nulls),
            "any_selected": {rule: sum(r["rules"][rule]["n_selected"] > 0 for r in nulls)
                             for rule in RULES},
            "ttest_sd_any_selected": sum(r["ttest_sd"]["n_selected"] > 0 for r in nulls),
        }
        print("null summary:", report["null_summary"])
    write_benchmark_report(report, output, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
