"""Lewis et al. 2023, Table 1: stabilized LSTM + attention maps on the boxes and VAR datasets.

    python benchmarks/bench_lewis2023_table1.py [--full] [--kinds boxes var] [--threads 1]

Simulates the dataset in memory (``xaibids.simulate``), trains seeded ``lstm-attn`` ensembles
per fold (``run_ensemble``), computes out-of-fold IG maps stabilized as in Lewis et al. 2023 §2.4, and
scores them as in Lewis et al. 2023 §2.6 (overlap, weighted Jaccard, Euclidean distance;
``xaibids.validation.metrics``). Prints the paper's Table 1 (LSTM + attention and input-cell
attention, mean ± SD) beside our mean ± SD over subjects, for the stabilized maps and for the
first model of each fold alone (no stabilization), and writes
``benchmarks/results/lewis2023_table1.json`` (``lewis2023_table1_full.json`` with ``--full``).

Sizes: the default is the CI size (the boxes test of ``tests/test_validation_benchmarks.py``);
``--full`` uses more subjects, folds and models (about an hour on a 2-core CPU). ``--kinds``
runs some of the datasets and keeps the others' results in the JSON file. Lewis et al. 2023 used
27 000 training and 3 000 test samples and 300 models. See ``docs/benchmarks.md``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

METRICS = ("overlap", "weighted_jaccard", "euclidean_distance")


def presets(full: bool) -> dict:
    from dataclasses import replace

    from xaibids.validation.benchmark import CI_PRESETS, Preset

    boxes = CI_PRESETS["boxes"]
    var = Preset(kind="var", n_subjects=400, simulation={},
                 ensemble={**boxes.ensemble, "learning_rate": 3e-3, "batch_size": 64,
                           "epochs": 30, "patience": 8})
    if not full:
        return {"boxes": boxes, "var": var}
    return {
        "boxes": replace(boxes, n_subjects=1000,
                         ensemble={**boxes.ensemble, "n_folds": 5, "n_models": 3,
                                   "ig_steps": 20}),
        # VAR needs thousands of training subjects, a smaller learning rate and more
        # patience than the CI preset (docs/benchmarks.md, "Why these settings")
        "var": replace(var, n_subjects=16000,
                       ensemble={**var.ensemble, "n_folds": 2, "n_models": 2,
                                 "learning_rate": 1e-3, "epochs": 80, "patience": 20}),
    }


def fmt(value, sd=None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")


def main(argv=None) -> int:
    from xaibids.validation.benchmark import benchmark_parser, write_benchmark_report

    parser = benchmark_parser(__doc__.split("\n\n")[0], "larger datasets and ensembles")
    parser.add_argument("--kinds", nargs="+", choices=["boxes", "var"], default=["boxes", "var"])
    args = parser.parse_args(argv)

    import torch

    from xaibids.validation.benchmark import LEWIS2023_ACCURACY, LEWIS2023_TABLE1, run_benchmark

    torch.set_num_threads(args.threads)
    name = "lewis2023_table1" + ("_full" if args.full else "")
    output = args.output or HERE / "results" / f"{name}.json"
    chosen = presets(args.full)
    report = {"benchmark": name,
              "description": "Lewis et al. 2023 Table 1 (boxes, VAR): stabilized lstm-attn IG maps vs "
                             "the paper's LSTM + attention and input-cell attention.",
              "paper": LEWIS2023_TABLE1, "paper_accuracy": LEWIS2023_ACCURACY, "results": {}}
    if output.exists():  # a run of some kinds keeps the file's results of the others
        import json

        report["results"] = json.loads(output.read_text()).get("results", {})
    for kind in args.kinds:
        preset = chosen[kind]
        print(f"\n== {kind}: {preset.n_subjects} subjects, {preset.ensemble['n_folds']} folds x "
              f"{preset.ensemble['n_models']} models, simulation {preset.simulation or 'defaults'}",
              flush=True)
        start = time.perf_counter()
        result = run_benchmark(preset, random_seed=args.random_seed, device=args.device)
        wall = time.perf_counter() - start
        ours, single = result["summary"], result["single_model_summary"]
        paper = LEWIS2023_TABLE1[kind]
        rows = []
        print(f"{'metric':<20} {'LSTM+attn (paper)':>18} {'input-cell (paper)':>19} "
              f"{'xaibids stabilized':>20} {'single model':>16}  beats")
        for metric in METRICS:
            p_mu, p_sd = paper["lstm-attn"][metric]
            c_mu, c_sd = paper["input-cell-attention"][metric]
            o, s = ours[metric], single[metric]
            better = (o["value"] < p_mu) if metric == "euclidean_distance" else (o["value"] > p_mu)
            rows.append({"metric": metric, "paper_lstm_attn": [p_mu, p_sd],
                         "paper_input_cell": [c_mu, c_sd], "ours": o, "single_model": s,
                         "beats_paper": bool(better)})
            print(f"{metric:<20} {fmt(p_mu, p_sd):>18} {fmt(c_mu, c_sd):>19} "
                  f"{fmt(o['value'], o['sd']):>20} {fmt(s['value'], s['sd']):>16}  "
                  f"{'yes' if better else 'NO'}")
        print(f"{'accuracy':<20} {LEWIS2023_ACCURACY[kind]:>18.2f} {'':>19} "
              f"{result['accuracy']:>20.3f}")
        print(f"time: {wall:.0f} s (simulate {result['seconds']['simulate']:.0f}, ensemble "
              f"{result['seconds']['ensemble']:.0f}, score {result['seconds']['score']:.0f})",
              flush=True)
        report["results"][kind] = {"rows": rows, "accuracy": result["accuracy"],
                                   "seconds": {**result["seconds"], "wall": wall},
                                   "settings": result["settings"]}
    write_benchmark_report(report, output, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
