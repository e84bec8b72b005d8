"""Batched ensemble training (``--batched-training``) against one-by-one training (issue #10).

    python benchmarks/bench_batched_training.py [--full] [--threads 1] [--device cpu|cuda]

The data are Lewis et al. 2023's boxes, simulated in memory at the CI shape (200 time points x 30
features) and the UK-Biobank shape (160 x 53), 160 training subjects. For each model
(``stdnn`` with Strock et al. 2025's 4 channels and with the default 32, ``linear``) and each ensemble
size, the same seeds are trained for a fixed number of epochs (no early stopping, so both paths
do the same work) one by one (:func:`xaibids.learning.training.train_model`, what the group
level does with ``--batched-training off``) and together
(:func:`~xaibids.learning.training.train_models_batched`). Reported: wall time of each path,
their ratio, and how far the batched weights and the models' test logits are from the
one-by-one ones (they differ by floating-point rounding only). ``--full`` adds 32 models. The
figures are printed as a table and written to ``benchmarks/results/batched_training.json``;
this is not a test.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

SHAPES = {"ci": (200, 30), "ukb": (160, 53)}
MODELS = {"stdnn-4": ("stdnn", {"channels": [4, 4]}), "stdnn-32": ("stdnn", {}),
          "linear": ("linear", {})}


def main(argv=None) -> int:
    import numpy as np
    import torch

    from xaibids.learning.ensemble import resolve_device
    from xaibids.learning.training import train_model, train_models_batched
    from xaibids.models import build_model
    from xaibids.validation.benchmark import (
        benchmark_parser,
        simulate_in_memory,
        write_benchmark_report,
    )

    parser = benchmark_parser(__doc__.split("\n\n")[0], "also ensembles of 32 models")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--n-subjects", type=int, default=200)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    sizes = (4, 8, 16, 32) if args.full else (4, 8, 16)
    rows = []
    print(f"{'shape':>5} {'model':>9} {'models':>6} {'one by one':>11} {'batched':>8} "
          f"{'speed-up':>8} {'max |dw|':>9} {'max |dlogit|':>12}")
    for shape, (n_timepoints, n_features) in SHAPES.items():
        sim = simulate_in_memory("boxes", args.n_subjects, seed=args.random_seed,
                                 n_timepoints=n_timepoints, n_features=n_features)
        X = ((sim.data - sim.data.mean()) / sim.data.std()).astype(np.float32)
        y = np.asarray(sim.labels)
        n_fit = int(0.8 * len(X))
        X_fit, y_fit, X_test = X[:n_fit], y[:n_fit], torch.as_tensor(X[n_fit:])
        for label, (name, kwargs) in MODELS.items():
            # warm-up: the first call of each path pays one-time costs (allocator, kernels)
            warm = dict(epochs=1, batch_size=32, device=device)
            train_model(name, kwargs, X_fit, y_fit, X_fit[:0], y_fit[:0], 2, 1, **warm)
            train_models_batched(name, kwargs, X_fit, y_fit, X_fit[:0], y_fit[:0], 2, [1, 2],
                                 **warm)
            for n_models in sizes:
                seeds = list(range(1000, 1000 + n_models))
                common = dict(epochs=args.epochs, batch_size=32, learning_rate=3e-3,
                              device=device)
                start = time.perf_counter()
                single = [train_model(name, kwargs, X_fit, y_fit, X_fit[:0], y_fit[:0], 2, seed,
                                      **common) for seed in seeds]
                t_single = time.perf_counter() - start
                start = time.perf_counter()
                batched = train_models_batched(name, kwargs, X_fit, y_fit, X_fit[:0], y_fit[:0],
                                               2, seeds, **common)
                t_batched = time.perf_counter() - start
                dw = max(float((b[0][k] - s[0][k]).abs().max())
                         for b, s in zip(batched, single) for k in s[0])
                dlogit = 0.0
                for (sb, _), (ss, _) in zip(batched, single):
                    model = build_model(name, n_features=n_features, n_timepoints=n_timepoints,
                                        n_classes=2, **kwargs).eval()
                    with torch.no_grad():
                        model.load_state_dict(sb)
                        a = model(X_test)
                        model.load_state_dict(ss)
                        dlogit = max(dlogit, float((a - model(X_test)).abs().max()))
                row = {"shape": shape, "n_timepoints": n_timepoints, "n_features": n_features,
                       "model": label, "n_models": n_models, "epochs": args.epochs,
                       "n_train": n_fit, "seconds_one_by_one": t_single,
                       "seconds_batched": t_batched, "speedup": t_single / t_batched,
                       "max_abs_weight_difference": dw, "max_abs_logit_difference": dlogit}
                rows.append(row)
                print(f"{shape:>5} {label:>9} {n_models:>6} {t_single:>10.2f}s {t_batched:>7.2f}s "
                      f"{row['speedup']:>7.2f}x {dw:>9.1e} {dlogit:>12.1e}", flush=True)
    output = args.output or HERE / "results" / (
        "batched_training" + ("_full" if args.full else "") + ".json")
    write_benchmark_report({"rows": rows, "device": str(device)}, output, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
