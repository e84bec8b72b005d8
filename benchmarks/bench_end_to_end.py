"""End to end: Lewis et al. 2023's naive 300-model study vs xaibids' adaptive one, in one run (issue #10).

    python benchmarks/bench_end_to_end.py [--n-subjects 400] [--naive-models 300] [--threads 1]

Issue 10's first target, measured rather than projected: equal-quality stabilized maps
(correlation >= 0.95 with the naive 300-model result, *or* equal or better ground-truth
F1 / Jaccard) at >= 3x less CPU wall time than the naive pipeline, on a UK-Biobank-shaped
subsample, training included.

Data: Strock et al. 2025's RNN E/I simulator (``rnn-ei`` CI preset: 0 dB, 5 % prevalence, delta = 0.3)
at Lewis et al. 2023's UK Biobank shape, 53 nodes x 160 time points, so that the maps can be scored
against a known truth (``stdnn``'s IG maps do not find the boxes of ``bench_naive_vs_xaibids.py``,
so a ground-truth score there says little). Both paths use the preset's ``stdnn`` settings and
the same cross-validation folds and model seeds, and run one after the other in this process:

1. **naive** (Lewis et al. 2023, §2.3-2.4): per fold, ``--naive-models`` (300) models trained with
   xaibids' training code (:func:`~xaibids.learning.ensemble.train_fold_chunk`, the same code
   both paths use, so no training speed-up is claimed), then
   ``bench_naive_vs_xaibids.naive_fold``: Captum IG per test subject and model, 50
   ``riemann_trapezoid`` steps, every map held, then ``closest`` stabilization.
2. **xaibids** as ``xaibids ... group --n-models auto --ig-steps auto`` runs it:
   :func:`~xaibids.learning.ensemble.choose_ensemble_size` (fold 1 doubled from 2 models until
   the mean maps of n and 2n models correlate at ``--threshold``, at most ``--naive-models``),
   then :func:`~xaibids.learning.ensemble.run_ensemble` with that size and ``ig_steps`` auto,
   reusing the calibration's checkpoints; every model trained afresh in its own folder.

Reported: wall time of each path (training and attribution apart), the ratio, ensemble balanced
accuracy, per-subject Pearson correlation of the xaibids maps with the naive ones, and both
paths' scores against the simulated truth (Strock et al. 2025's group ROI F1, the importance F1 and the
mean per-subject ROI F1; Lewis et al. 2023's overlap and weighted Jaccard). Written to
``benchmarks/results/end_to_end.json``; see ``docs/benchmarks.md``. Not a test.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing
sys.path.insert(0, str(HERE))

#: Lewis et al. 2023's UK Biobank shape (53 ICA components x 160 time points).
UKB_SHAPE = {"n_nodes": 53, "n_timepoints": 160}
SCORES = ("group_roi_f1", "importance_f1", "roi_f1", "overlap", "weighted_jaccard")


def naive_path(dataset, config, folder: Path, device) -> dict:
    """Train every fold's ``config.n_models`` models, then Lewis et al. 2023's attribution loop."""
    import numpy as np
    from sklearn.metrics import balanced_accuracy_score

    from bench_naive_vs_xaibids import naive_fold
    from xaibids.learning.ensemble import ensemble_folds, load_fold_models, train_fold_chunk

    start = time.perf_counter()
    for fold in range(1, config.n_folds + 1):
        train_fold_chunk(dataset, config, folder, fold=fold)
    trained = time.perf_counter()
    maps = np.full(dataset.X.shape, np.nan, dtype=np.float32)
    accuracy = []
    for fold, (_, test_idx) in enumerate(ensemble_folds(dataset, config), start=1):
        models, X_test, y_test, _ = load_fold_models(dataset, config, folder, fold=fold)
        stable, _, probabilities, _, _ = naive_fold(models, X_test, y_test, device)
        maps[test_idx] = stable
        accuracy.append(balanced_accuracy_score(y_test, probabilities.mean(axis=0).argmax(axis=1)))
    done = time.perf_counter()
    return {"maps": maps, "balanced_accuracy": float(np.mean(accuracy)),
            "n_models": config.n_models,
            "seconds": {"training": trained - start, "attribution": done - trained,
                        "total": done - start}}


def xaibids_path(dataset, config, folder: Path, threshold: float) -> dict:
    """``--n-models auto --ig-steps auto``: size chosen on fold 1, then the whole run."""
    from xaibids.learning.ensemble import choose_ensemble_size, run_ensemble

    config = replace(config, ig_steps=0)
    start = time.perf_counter()
    n_models, table = choose_ensemble_size(dataset, config, folder, threshold=threshold)
    chosen = time.perf_counter()
    result = run_ensemble(dataset, replace(config, n_models=n_models), folder, progress=False)
    done = time.perf_counter()
    performance = result.performance
    ensemble = performance[performance["model"].astype(str) == "ensemble"]
    return {"maps": result.maps["ig"], "n_models": n_models,
            "balanced_accuracy": float(ensemble["balanced_accuracy"].mean()),
            "size_table": table.to_dict(orient="records"),
            "ig_steps": sorted({int(info["ig_steps"]) for info in result.map_info}),
            "seconds": {"choose_size": chosen - start, "run": done - chosen,
                        "total": done - start}}


def main(argv=None) -> int:
    import numpy as np
    import torch

    from xaibids.attribution.reliability import pearson_per_sample
    from xaibids.learning.ensemble import EnsembleConfig, resolve_device
    from xaibids.validation.benchmark import (
        CI_PRESETS,
        as_dataset,
        benchmark_parser,
        score_simulated_maps,
        simulate_in_memory,
        summary,
        write_benchmark_report,
    )

    parser = benchmark_parser(__doc__.split("\n\n")[0], "600 subjects")
    parser.add_argument("--n-subjects", type=int, default=400)
    parser.add_argument("--naive-models", type=int, default=300,
                        help="models per fold of the naive study (Lewis et al. 2023: 300); also the "
                             "largest size --n-models auto may choose")
    parser.add_argument("--n-folds", type=int, default=2)
    parser.add_argument("--threshold", type=float, default=0.95,
                        help="--ensemble-stability of the xaibids path")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    n_subjects = 600 if args.full else args.n_subjects
    preset = CI_PRESETS["rnn-ei"]
    sim = simulate_in_memory(preset.kind, n_subjects, preset.seed,
                             **{**preset.simulation, **UKB_SHAPE})
    dataset = as_dataset(sim)
    config = EnsembleConfig(random_seed=args.random_seed, device=args.device,
                            **{**preset.ensemble, "n_folds": args.n_folds,
                               "n_models": args.naive_models})
    device = resolve_device(args.device)
    print(f"rnn-ei, {n_subjects} subjects x {UKB_SHAPE['n_timepoints']} time points x "
          f"{UKB_SHAPE['n_nodes']} nodes, {args.n_folds} folds; naive {args.naive_models} models "
          "per fold", flush=True)
    with tempfile.TemporaryDirectory() as naive_dir, tempfile.TemporaryDirectory() as ours_dir:
        naive = naive_path(dataset, config, Path(naive_dir), device)
        print(f"naive: {naive['seconds']['total']:.0f} s", flush=True)
        ours = xaibids_path(dataset, config, Path(ours_dir), args.threshold)
        print(f"xaibids: {ours['seconds']['total']:.0f} s, {ours['n_models']} models per fold",
              flush=True)

    r = pearson_per_sample(ours["maps"], naive["maps"])
    paths = {}
    for name, path in (("naive", naive), ("xaibids", ours)):
        values = summary(score_simulated_maps(sim, dataset, path["maps"]))
        paths[name] = {
            "n_models": path["n_models"], "seconds": path["seconds"],
            "balanced_accuracy": path["balanced_accuracy"],
            "scores": {k: values[k]["value"] for k in SCORES if k in values},
        }
    paths["xaibids"].update(size_table=ours["size_table"], ig_steps=ours["ig_steps"])
    ratio = naive["seconds"]["total"] / ours["seconds"]["total"]
    better = {k: paths["xaibids"]["scores"][k] >= paths["naive"]["scores"][k] - 1e-12
              for k in paths["naive"]["scores"]}
    report = {
        "benchmark": "end_to_end", "simulation": dict(sim.params),
        "settings": {"n_subjects": n_subjects, "n_folds": args.n_folds,
                     "naive_models": args.naive_models, "threshold": args.threshold,
                     "ensemble": {k: (list(v) if isinstance(v, tuple) else v)
                                  for k, v in preset.ensemble.items()}},
        "paths": paths, "time_ratio_naive_over_xaibids": ratio,
        "correlation_with_naive": {"mean": float(np.nanmean(r)), "min": float(np.nanmin(r)),
                                   "n": int(np.isfinite(r).sum())},
        "scores_equal_or_better": better,
        "target_met": bool(ratio >= 3 and (np.nanmean(r) >= 0.95 or all(better.values()))),
    }
    print(f"\n{'path':<8} {'models':>6} {'train s':>8} {'attr s':>8} {'total s':>8} "
          f"{'bal.acc':>7} " + " ".join(f"{k:>16}" for k in SCORES))
    for name, path in paths.items():
        s = path["seconds"]
        train = s.get("training", float("nan"))
        attr = s.get("attribution", float("nan"))
        print(f"{name:<8} {path['n_models']:>6} {train:>8.0f} {attr:>8.0f} {s['total']:>8.0f} "
              f"{path['balanced_accuracy']:>7.3f} "
              + " ".join(f"{path['scores'].get(k, float('nan')):>16.3f}" for k in SCORES))
    print(f"\nnaive / xaibids wall time: {ratio:.2f}x; maps r with naive: mean "
          f"{np.nanmean(r):.3f} (min {np.nanmin(r):.3f}); scores equal or better: "
          f"{', '.join(k for k, v in better.items() if v) or 'none'}; target met: "
          f"{report['target_met']}")
    output = args.output or HERE / "results" / f"end_to_end{'_full' if args.full else ''}.json"
    write_benchmark_report(report, output, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
