"""IG step counts: ``--ig-steps auto`` against seed 000's fixed 50-point Riemann sum (issue #10).

    python benchmarks/bench_ig_steps.py [--presets boxes rnn-ei] [--tolerance 0.01] [--threads 1]

For each CI preset (:data:`xaibids.validation.benchmark.CI_PRESETS`: seed 000's boxes with
``lstm-attn``, seed 001's RNN E/I data with ``stdnn``) the data are simulated in memory, fold 1's
models are trained as the group level trains them (``train_fold_chunk``) and loaded with the
fold's standardized test subjects (``load_fold_models``). On the first model and every test
subject, with the zero baseline:

* the **reference** is IG with 256 Gauss-Legendre points (the converged path integral);
* the **naive** pipeline's IG is the 50-point Riemann sum (trapezoid rule, Captum's
  ``riemann_trapezoid``) that seed 000 ran per subject;
* **auto** is what ``--ig-steps auto`` does: :func:`xaibids.attribution.ig.converged_ig_steps`
  on the first 32 test subjects chooses the fewest Gauss-Legendre points of 4, 8, …, 256 whose
  completeness error is within the tolerance, and those points explain every test subject;
* every step count of the ladder is also measured for both rules;
* a probe (:func:`refinement_probe`) asks whether more points for only the subjects that need
  them would reach the tolerance with fewer points per subject on average.

Reported per setting: the completeness error on all test subjects (summed |convergence delta|
over summed |change of the target logit|), the mean per-subject Pearson correlation of the maps
with the reference, and the seconds per subject of the attribution alone. The figures are
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


#: Gauss–Legendre counts of the per-subject refinement probe (:func:`refinement_probe`).
PROBE_STEPS = (8, 12, 16, 20, 24, 32, 48, 64)


def refinement_probe(model, X, y, tolerance: float) -> dict:
    """Could giving more points only to the subjects that need them meet the tolerance cheaper?

    For every start count ``n0`` and refined count ``n1 > n0`` of :data:`PROBE_STEPS`, all
    subjects get ``n0`` Gauss–Legendre points, then the subjects with the largest convergence
    delta are recomputed with ``n1`` (one at a time, largest first) until the summed error of
    the batch is within ``tolerance``. Returned: the error of every count, and the cheapest
    scheme with its mean points per subject (``n0`` + the refined share × ``n1``).
    """
    import numpy as np

    from xaibids.attribution.ig import completeness_terms

    deltas, change = {}, None
    for n in PROBE_STEPS:
        delta, change = completeness_terms(model, X, y, "zero", n, internal_batch_size=1024)
        deltas[n] = delta.abs().numpy()
    total = float(change.abs().sum())
    errors = {n: float(d.sum()) / total for n, d in deltas.items()}
    best = None
    for n0 in PROBE_STEPS:
        for n1 in (n for n in PROBE_STEPS if n > n0):
            current = deltas[n0].copy()
            refined = 0
            for i in np.argsort(-deltas[n0]):
                if current.sum() / total <= tolerance:
                    break
                current[i] = deltas[n1][i]
                refined += 1
            if current.sum() / total <= tolerance:
                mean = n0 + refined * n1 / len(current)
                if best is None or mean < best["mean_points"]:
                    best = {"start": n0, "refined_to": n1, "refined_share": refined / len(current),
                            "mean_points": mean}
    return {"errors": errors, "best": best}


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
    auto_total = auto["row"]["seconds_per_subject"] * len(X) + choose_seconds
    naive_total = naive["row"]["seconds_per_subject"] * len(X)
    return {
        "preset": name, "model": config.model, "n_test_subjects": len(X),
        "shape": list(X.shape[1:]), "train_seconds": train_seconds,
        "auto": {**auto["row"], "choose_seconds": choose_seconds,
                 "correlation_with_naive": _correlation(auto["maps"], naive["maps"])},
        "naive": naive["row"],
        "refinement_probe": refinement_probe(model, X, y, tolerance),
        "steps_ratio_naive_over_auto": NAIVE_STEPS / steps,
        "seconds_ratio_naive_over_auto": naive_total / auto_total,
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
        best = r["refinement_probe"]["best"]
        if best:
            print(f"per-subject refinement probe: {best['start']} points for all, "
                  f"{best['refined_to']} for the {100 * best['refined_share']:.0f} % with the "
                  f"largest delta: {best['mean_points']:.1f} points per subject on average")
    write_benchmark_report({"benchmark": "ig_steps", "tolerance": args.tolerance,
                            "naive_steps": NAIVE_STEPS, "reference_steps": REFERENCE_STEPS,
                            "presets": results},
                           args.output or HERE / "results" / "ig_steps.json", args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
