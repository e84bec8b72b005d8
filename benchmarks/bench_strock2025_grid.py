"""Strock et al. 2025, Fig 2: detection of hyperexcitable nodes by IG on stDNN ensembles, over the grid.

    python benchmarks/bench_strock2025_grid.py [--full] [--conditions snr0 prev0.01 ...] [--threads 1]

Strock et al. 2025 shows IG detecting the affected nodes of its small-world RNN E/I simulator with
F1 = 1.0 at the 0.5 threshold in every condition of Fig 2: SNR −10, 0, 10 dB (5 % prevalence,
δ = 0.3), prevalence 1, 5, 10 % (0 dB, δ = 0.3) and severity δ = 0.1, 0.3, 0.5 (0 dB, 5 %) —
seven distinct conditions. For each, this script simulates the ``rnn-ei`` dataset in memory,
trains seeded ``stdnn`` ensembles per fold (``run_ensemble``), and scores the stabilized maps
(``xaibids.validation``): Strock et al. 2025's ROI score (``|median over time|``, max-normalized, above 0.5)
averaged over subjects (``group_roi_*``) and per subject (``roi_*``), and the ``selected``
column of xaibids' group importance table (``importance_*``). Prints them beside the paper's
F1 = 1 and writes ``benchmarks/results/strock2025_grid.json`` (``strock2025_grid_full.json`` with
``--full``).

Sizes: the default is the CI preset of ``tests/test_validation_benchmarks.py`` (400 subjects,
2 folds × 2 models, weight decay 0.1; under half a minute per condition on one core);
``--full`` uses 5 folds × 3 models. See ``docs/benchmarks.md``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

from xaibids.validation.benchmark import STROCK2025_CONDITIONS as CONDITIONS  # noqa: E402

REPORTED = ("group_roi_precision", "group_roi_recall", "group_roi_f1", "importance_f1",
            "roi_f1")


def main(argv=None) -> int:
    from xaibids.validation.benchmark import benchmark_parser, write_benchmark_report

    parser = benchmark_parser(__doc__.split("\n\n")[0], "5 folds x 3 models per condition")
    parser.add_argument("--conditions", nargs="+", choices=sorted(CONDITIONS),
                        default=list(CONDITIONS))
    args = parser.parse_args(argv)

    import torch

    from xaibids.validation.benchmark import CI_PRESETS, STROCK2025_F1, run_benchmark

    torch.set_num_threads(args.threads)
    name = "strock2025_grid" + ("_full" if args.full else "")
    output = args.output or HERE / "results" / f"{name}.json"
    base = CI_PRESETS["rnn-ei"]
    if args.full:
        base = replace(base, ensemble={**base.ensemble, "n_folds": 5, "n_models": 3})
    report = {"benchmark": name,
              "description": "Strock et al. 2025 Fig 2 grid: F1 of IG-selected nodes (stdnn ensembles, "
                             "threshold 0.5) against the simulated hyperexcitable nodes.",
              "paper_f1": STROCK2025_F1, "results": {}}
    print(f"{'condition':<10} {'SNR':>5} {'prev':>5} {'δ':>4} {'acc':>6} "
          + " ".join(f"{m:>19}" for m in REPORTED) + "   paper F1   s")
    for key in args.conditions:
        snr, prevalence, severity = CONDITIONS[key]
        preset = replace(base, simulation={"snr_db": snr, "prevalence": prevalence,
                                           "severity": severity})
        start = time.perf_counter()
        result = run_benchmark(preset, random_seed=args.random_seed, device=args.device)
        wall = time.perf_counter() - start
        got = result["summary"]
        values = {m: got[m]["value"] for m in REPORTED}
        print(f"{key:<10} {snr:>5g} {prevalence:>5g} {severity:>4g} {result['accuracy']:>6.3f} "
              + " ".join(f"{values[m]:>19.3f}" for m in REPORTED)
              + f"   {STROCK2025_F1:>8.1f} {wall:>4.0f}", flush=True)
        report["results"][key] = {"snr_db": snr, "prevalence": prevalence,
                                  "severity": severity, "accuracy": result["accuracy"],
                                  "metrics": {m: got[m] for m in got},
                                  "meets_paper": values["group_roi_f1"] == STROCK2025_F1,
                                  "seconds": {**result["seconds"], "wall": wall},
                                  "settings": result["settings"]}
    write_benchmark_report(report, output, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
