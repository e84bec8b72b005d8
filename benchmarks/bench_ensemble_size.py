"""Ensemble size: ``--n-models auto`` against a large fixed ensemble on simulated data (issue #10).

    python benchmarks/bench_ensemble_size.py [--full] [--reference-models 32] [--threshold 0.95]

On Strock et al. 2025's RNN E/I data (the ``rnn-ei`` CI preset: 0 dB, 5 % prevalence, δ = 0.3, ``stdnn``)
fold 1 is run twice into one checkpoint folder:

* **auto**: :func:`xaibids.learning.ensemble.choose_ensemble_size` doubles the ensemble from 2
  models until the maps of n and 2n, and of 2n and 4n models, correlate at ``--threshold``
  (the mean maps, which the preset's ``closest`` rule selects against);
* **fixed**: the same fold with ``--reference-models`` models (300 with ``--full``, Lewis et al. 2023's
  count), trained afresh in its own folder (its first models have the auto run's seeds).

Both stabilized maps of all the fold's test subjects are compared (mean per-subject Pearson
correlation) and scored against the simulated truth with xaibids' validation metrics (Strock et al. 2025's
group ROI F1 and the importance F1). Wall time counts training and attribution of each. Printed as
a table and written to ``benchmarks/results/ensemble_size[_full].json``; this is not a test.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing


def fold_maps(dataset, config, checkpoint_dir):
    """Stabilized IG maps of fold 1's test subjects (training what is not checkpointed)."""
    from xaibids.learning.ensemble import attribute_trained_fold, train_fold_chunk

    train_fold_chunk(dataset, config, checkpoint_dir, fold=1)
    return attribute_trained_fold(dataset, config, checkpoint_dir, fold=1)


def score(sim, dataset, result) -> dict:
    """Group ROI F1 (Strock et al. 2025) and importance F1 of one fold's stabilized maps."""
    from xaibids.validation.benchmark import score_simulated_maps, summary

    values = summary(score_simulated_maps(sim, dataset, result.maps["ig"], result.test_idx))
    return {k: values[k]["value"] for k in ("group_roi_f1", "importance_f1", "roi_f1")
            if k in values}


def main(argv=None) -> int:
    import numpy as np
    import torch

    from xaibids.attribution.reliability import pearson_per_sample
    from xaibids.learning.ensemble import EnsembleConfig, choose_ensemble_size
    from xaibids.validation.benchmark import (
        CI_PRESETS, as_dataset, benchmark_parser, simulate_in_memory, write_benchmark_report,
    )

    parser = benchmark_parser(__doc__.split("\n\n")[0], "a 300-model reference (Lewis et al. 2023)")
    parser.add_argument("--reference-models", type=int, default=32)
    parser.add_argument("--threshold", type=float, default=0.95)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    reference_models = 300 if args.full else args.reference_models
    preset = CI_PRESETS["rnn-ei"]
    sim = simulate_in_memory(preset.kind, preset.n_subjects, preset.seed, **preset.simulation)
    dataset = as_dataset(sim)
    config = EnsembleConfig(random_seed=args.random_seed, device=args.device,
                            **{**preset.ensemble, "n_models": reference_models})
    with tempfile.TemporaryDirectory() as auto_dir, tempfile.TemporaryDirectory() as fixed_dir:
        start = time.perf_counter()
        n_auto, table = choose_ensemble_size(dataset, config, auto_dir, threshold=args.threshold)
        auto = fold_maps(dataset, replace(config, n_models=n_auto), auto_dir)
        auto_seconds = time.perf_counter() - start
        start = time.perf_counter()
        fixed = fold_maps(dataset, config, fixed_dir)  # every model trained afresh
        fixed_seconds = time.perf_counter() - start
    r = float(np.nanmean(pearson_per_sample(auto.maps["ig"], fixed.maps["ig"])))
    # auto stopped because successive maps agreed, not because it reached the cap (the
    # reference size): at the cap both runs are the same models and r = 1 says nothing
    converged = bool((table["correlation"].astype(float) >= args.threshold).any())
    report = {
        "benchmark": "ensemble_size", "preset": "rnn-ei", "threshold": args.threshold,
        "reference_models": reference_models, "auto_models": n_auto,
        "auto_converged": converged,
        "size_table": table.to_dict(orient="records"),
        "correlation_auto_vs_fixed": r,
        "scores": {"auto": score(sim, dataset, auto), "fixed": score(sim, dataset, fixed)},
        "seconds": {"auto": auto_seconds, "fixed": fixed_seconds},
        "speedup_fixed_over_auto": fixed_seconds / auto_seconds,
    }
    print(table.to_string(index=False))
    print(f"\nauto: {n_auto} models per fold; fixed: {reference_models}. Stabilized maps of fold "
          f"1's {len(auto.test_idx)} test subjects correlate at r = {r:.4f}.")
    if not converged:
        print(f"auto did NOT converge (no doubling reached r >= {args.threshold}): it stopped at "
              "the cap, the reference size, so auto and fixed are the same ensemble.")
    for name in ("auto", "fixed"):
        print(f"{name:>6}: " + ", ".join(f"{k} {v:.3f}" for k, v in report["scores"][name].items())
              + f"; {report['seconds'][name]:.0f} s (fold 1: training and attribution)")
    output = args.output or HERE / "results" / f"ensemble_size{'_full' if args.full else ''}.json"
    write_benchmark_report(report, output, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
