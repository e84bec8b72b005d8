"""IG step counts: ``--ig-steps auto`` against Lewis et al. 2023's fixed 50-point Riemann sum (issue #10).

    python benchmarks/bench_ig_steps.py [--presets boxes rnn-ei] [--tolerance 0.01] [--threads 1]

For each CI preset (:data:`xaibids.validation.benchmark.CI_PRESETS`: Lewis et al. 2023's boxes with
``lstm-attn``, Strock et al. 2025's RNN E/I data with ``stdnn``) the data are simulated in memory, fold 1's
models are trained as the group level trains them (``train_fold_chunk``) and loaded with the
fold's standardized test subjects (``load_fold_models``). On the first model and every test
subject, with the zero baseline:

* the **reference** is IG with 256 Gauss-Legendre points (the converged path integral);
* the **naive** pipeline's IG is the 50-point Riemann sum (trapezoid rule, Captum's
  ``riemann_trapezoid``) that Lewis et al. 2023 ran per subject;
* **auto** is what ``--ig-steps auto`` does: :func:`xaibids.attribution.ig.converged_ig_steps`
  on the first 32 test subjects chooses the fewest Gauss-Legendre points of 4, 8, …, 256 whose
  completeness error is within the tolerance, and those points explain every test subject;
* **adaptive** is what ``--ig-steps adaptive`` does:
  :func:`xaibids.attribution.ig.adaptive_integrated_gradients` on every batch of 16 test
  subjects (``--attribution-batch-size``'s default), each batch within the tolerance;
* every step count of the ladder is also measured for both rules.

Reported per setting: the completeness error on all test subjects (summed |convergence delta|
over summed |change of the target logit|), the mean per-subject Pearson correlation of the maps
with the reference, and the seconds per subject of the attribution alone; for adaptive also the
gradient evaluations (points) and forward passes spent per subject. The figures are
printed as a table and written to ``benchmarks/results/ig_steps.json``; this is not a test.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

NAIVE_STEPS = 50
REFERENCE_STEPS = 256


def _correlation(a, b) -> float:
    """Mean over subjects of the Pearson correlation of two maps (flattened per subject)."""
    import numpy as np

    a = a.reshape(len(a), -1)
    b = b.reshape(len(b), -1)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean((a * b).sum(axis=1) / np.where(denominator > 0, denominator, np.nan)))


def measure(model, X, y, n_steps: int, rule: str, reference=None) -> dict:
    """Maps, completeness error, agreement with ``reference`` and seconds per subject."""
    from xaibids.attribution.ig import completeness_error, integrated_gradients

    start = time.perf_counter()
    maps = integrated_gradients(model, X, y, n_steps=n_steps, method=rule,
                                internal_batch_size=1024).numpy()
    seconds = (time.perf_counter() - start) / len(X)
    error = completeness_error(model, X, y, "zero", n_steps, rule, internal_batch_size=1024)
    row = {"rule": rule, "n_steps": n_steps, "completeness_error": error,
           "seconds_per_subject": seconds}
    if reference is not None:
        row["correlation_with_reference"] = _correlation(maps, reference)
    return {"row": row, "maps": maps}


#: Test subjects per call of adaptive IG, as ``--attribution-batch-size`` streams them.
ADAPTIVE_BATCH = 16


def measure_adaptive(model, X, y, tolerance: float, reference) -> dict:
    """``--ig-steps adaptive`` on batches of :data:`ADAPTIVE_BATCH` subjects: the maps, the
    completeness error over all subjects, points and forward passes per subject, seconds."""
    import numpy as np

    from xaibids.attribution.ig import adaptive_integrated_gradients

    start = time.perf_counter()
    parts = [adaptive_integrated_gradients(model, X[i:i + ADAPTIVE_BATCH], y[i:i + ADAPTIVE_BATCH],
                                           tolerance=tolerance, internal_batch_size=1024)
             for i in range(0, len(X), ADAPTIVE_BATCH)]
    seconds = (time.perf_counter() - start) / len(X)
    maps = np.concatenate([p.attributions.numpy() for p in parts])
    delta = np.concatenate([p.delta.numpy() for p in parts])
    change = np.concatenate([p.change.numpy() for p in parts])
    points = np.concatenate([p.points.numpy() for p in parts])
    row = {"rule": "adaptive", "completeness_error": float(np.abs(delta).sum() / np.abs(change).sum()),
           "mean_points": float(points.mean()), "max_points": int(points.max()),
           "mean_forward_passes": float(np.mean(np.concatenate([p.forward_passes.numpy() for p in parts]))),
           "all_batches_converged": all(p.converged for p in parts),
           "seconds_per_subject": seconds, "correlation_with_reference": _correlation(maps, reference)}
    return {"row": row, "maps": maps}


def run_preset(name: str, tolerance: float, seed: int) -> dict:
    import torch

    from xaibids.attribution.ig import STEP_LADDER, converged_ig_steps
    from xaibids.learning.ensemble import (
        IG_CALIBRATION_SAMPLES, EnsembleConfig, load_fold_models, train_fold_chunk,
    )
    from xaibids.validation.benchmark import CI_PRESETS, as_dataset, simulate_in_memory

    preset = CI_PRESETS[name]
    sim = simulate_in_memory(preset.kind, preset.n_subjects, preset.seed, **preset.simulation)
    dataset = as_dataset(sim)
    config = EnsembleConfig(random_seed=seed, device="cpu", **{**preset.ensemble, "n_models": 1})
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train_fold_chunk(dataset, config, tmp, fold=1)
        train_seconds = time.perf_counter() - start
        models, X_test, y_test, _ = load_fold_models(dataset, config, tmp, fold=1)
    model = models[0].eval()
    X = torch.as_tensor(X_test, dtype=torch.float32)
    y = torch.as_tensor(y_test, dtype=torch.long)
    reference = measure(model, X, y, REFERENCE_STEPS, "gausslegendre")["maps"]
    rows = []
    for rule in ("gausslegendre", "riemann_trapezoid"):
        for n_steps in sorted(set(STEP_LADDER[:-1]) | {NAIVE_STEPS}):
            rows.append(measure(model, X, y, n_steps, rule, reference)["row"])
    n_cal = min(IG_CALIBRATION_SAMPLES, len(X))
    start = time.perf_counter()
    steps, _ = converged_ig_steps(model, X[:n_cal], y[:n_cal], tolerance=tolerance)
    choose_seconds = time.perf_counter() - start
    auto = measure(model, X, y, steps, "gausslegendre", reference)
    naive = measure(model, X, y, NAIVE_STEPS, "riemann_trapezoid", reference)
    adaptive = measure_adaptive(model, X, y, tolerance, reference)
    auto_total = auto["row"]["seconds_per_subject"] * len(X) + choose_seconds
    naive_total = naive["row"]["seconds_per_subject"] * len(X)
    return {
        "preset": name, "model": config.model, "n_test_subjects": len(X),
        "shape": list(X.shape[1:]), "train_seconds": train_seconds,
        "auto": {**auto["row"], "choose_seconds": choose_seconds,
                 "correlation_with_naive": _correlation(auto["maps"], naive["maps"])},
        "naive": naive["row"],
        "adaptive": {**adaptive["row"],
                     "correlation_with_naive": _correlation(adaptive["maps"], naive["maps"])},
        "steps_ratio_naive_over_auto": NAIVE_STEPS / steps,
        "seconds_ratio_naive_over_auto": naive_total / auto_total,
        "steps_ratio_naive_over_adaptive": NAIVE_STEPS / adaptive["row"]["mean_points"],
        "seconds_ratio_naive_over_adaptive": naive["row"]["seconds_per_subject"]
        / adaptive["row"]["seconds_per_subject"],
        "ladder": rows,
    }


def main(argv=None) -> int:
    import torch

    from xaibids.validation.benchmark import CI_PRESETS, benchmark_parser, write_benchmark_report

    parser = benchmark_parser(__doc__.split("\n\n")[0], "(no larger size: the CI presets)")
    parser.add_argument("--presets", nargs="+", choices=sorted(CI_PRESETS),
                        default=sorted(CI_PRESETS))
    parser.add_argument("--tolerance", type=float, default=0.01)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = [run_preset(name, args.tolerance, args.random_seed) for name in args.presets]
    for r in results:
        print(f"\n{r['preset']} ({r['model']}, {r['n_test_subjects']} test subjects of "
              f"{r['shape'][0]} time points x {r['shape'][1]} features)")
        print(f"{'rule':<18}{'steps':>6}{'completeness error':>20}{'r with reference':>18}"
              f"{'ms/subject':>12}")
        for row in r["ladder"]:
            print(f"{row['rule']:<18}{row['n_steps']:>6}{100 * row['completeness_error']:>19.3f}%"
                  f"{row['correlation_with_reference']:>18.5f}"
                  f"{1000 * row['seconds_per_subject']:>12.2f}")
        a, n = r["auto"], r["naive"]
        print(f"auto (tolerance {100 * args.tolerance:g} %): {a['n_steps']} Gauss-Legendre points "
              f"(error {100 * a['completeness_error']:.3f} %, r = "
              f"{a['correlation_with_reference']:.5f} with the reference, "
              f"{a['correlation_with_naive']:.5f} with the naive maps); naive 50-point Riemann: "
              f"error {100 * n['completeness_error']:.3f} %, r = "
              f"{n['correlation_with_reference']:.5f}. Steps {r['steps_ratio_naive_over_auto']:.1f}x "
              f"fewer, attribution {r['seconds_ratio_naive_over_auto']:.1f}x faster "
              "(choosing included).")
        d = r["adaptive"]
        print(f"adaptive (tolerance {100 * args.tolerance:g} % per batch of {ADAPTIVE_BATCH}): "
              f"{d['mean_points']:.1f} gradient evaluations per subject on average (at most "
              f"{d['max_points']}) and {d['mean_forward_passes']:.1f} forward passes; error "
              f"{100 * d['completeness_error']:.3f} %, r = {d['correlation_with_reference']:.5f} with "
              f"the reference. Steps {r['steps_ratio_naive_over_adaptive']:.1f}x fewer than naive, "
              f"attribution {r['seconds_ratio_naive_over_adaptive']:.1f}x faster.")
    write_benchmark_report({"benchmark": "ig_steps", "tolerance": args.tolerance,
                            "naive_steps": NAIVE_STEPS, "reference_steps": REFERENCE_STEPS,
                            "presets": results},
                           args.output or HERE / "results" / "ig_steps.json", args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
