"""Stabilization rules against the truth as the ensemble grows (issue #10, ``--n-models``).

    python benchmarks/bench_stabilization_rules.py [--n-models 300] [--sizes 8 32 300]

On the ``rnn-ei`` CI preset (Strock et al. 2025's RNN E/I data, ``stdnn``), fold 1's models are trained
once (``train_fold_chunk``; 300 by default, Lewis et al. 2023's count) and every model's IG map of every
test subject is kept, with its loss on the subject. For each ensemble size (the first n seeds)
the maps are stabilized three ways and scored against the simulated truth (Strock et al. 2025's group ROI
F1 and the mean per-subject ROI F1, Lewis et al. 2023's overlap):

* ``closest`` as xaibids reads Lewis et al. 2023 §2.4: the model map with the smallest
  loss x distance to the mean map;
* ``closest`` on the distance alone (all losses set to 1), to see what the loss weighting does;
* ``mean``: the element-wise mean over models.

Written to ``benchmarks/results/stabilization_rules.json``; see ``docs/benchmarks.md``. Not a
test. Memory: every map is held (300 x 200 x 100 x 100 float32 = 2.4 GB at the defaults).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

SCORES = ("group_roi_f1", "roi_f1", "overlap")


def main(argv=None) -> int:
    import numpy as np
    import torch

    from xaibids.attribution.ig import integrated_gradients
    from xaibids.attribution.stabilize import stabilize
    from xaibids.learning.ensemble import (
        EnsembleConfig,
        ensemble_folds,
        load_fold_models,
        train_fold_chunk,
    )
    from xaibids.validation.benchmark import (
        CI_PRESETS,
        as_dataset,
        benchmark_parser,
        score_simulated_maps,
        simulate_in_memory,
        summary,
        write_benchmark_report,
    )

    parser = benchmark_parser(__doc__.split("\n\n")[0], None)
    parser.add_argument("--n-models", type=int, default=300)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 32, 300])
    args = parser.parse_args(argv)
    if max(args.sizes) > args.n_models:
        parser.error("--sizes must not exceed --n-models.")
    torch.set_num_threads(args.threads)
    preset = CI_PRESETS["rnn-ei"]
    sim = simulate_in_memory(preset.kind, preset.n_subjects, preset.seed, **preset.simulation)
    dataset = as_dataset(sim)
    config = EnsembleConfig(random_seed=args.random_seed, device=args.device,
                            **{**preset.ensemble, "n_models": args.n_models})
    with tempfile.TemporaryDirectory() as folder:
        train_fold_chunk(dataset, config, folder, fold=1)
        models, X_test, y_test, _ = load_fold_models(dataset, config, folder, fold=1)
    test_idx = ensemble_folds(dataset, config)[0][1]
    X = torch.as_tensor(X_test, dtype=torch.float32)
    y = torch.as_tensor(y_test)
    maps = np.empty((len(models),) + X_test.shape, dtype=np.float32)
    losses = np.empty((len(models), len(y_test)))
    for m, model in enumerate(models):
        with torch.no_grad():
            losses[m] = -torch.log_softmax(model(X), dim=1)[torch.arange(len(y)), y].numpy()
        maps[m] = integrated_gradients(model, X, y,
                                       n_steps=preset.ensemble["ig_steps"]).detach().numpy()

    rules = {
        "closest (loss-weighted, xaibids)": lambda n, j: stabilize(maps[:n, j], losses[:n, j],
                                                                   "closest", "abs")[0],
        "closest (distance only)": lambda n, j: stabilize(maps[:n, j], np.ones(n), "closest",
                                                          "abs")[0],
        "mean": lambda n, j: stabilize(maps[:n, j], None, "mean", "abs")[0],
    }
    rows = []
    for n in args.sizes:
        for rule, stabilized in rules.items():
            values = summary(score_simulated_maps(
                sim, dataset, np.stack([stabilized(n, j) for j in range(len(y_test))]), test_idx))
            row = {"n_models": n, "rule": rule, **{k: values[k]["value"] for k in SCORES}}
            rows.append(row)
            print(f"{n:>4} {rule:<34} " + "  ".join(f"{k} {row[k]:.3f}" for k in SCORES),
                  flush=True)
    report = {"benchmark": "stabilization_rules", "preset": "rnn-ei", "fold": 1,
              "n_test_subjects": len(y_test), "rows": rows}
    output = args.output or HERE / "results" / "stabilization_rules.json"
    write_benchmark_report(report, output, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
