"""Naive Lewis et al. 2023 pipeline vs xaibids: wall time, peak memory and agreement of the maps (issue #10).

    python benchmarks/bench_naive_vs_xaibids.py [--n-subjects 200] [--n-models 5] [--threads 1]
    python benchmarks/bench_naive_vs_xaibids.py --ukb [--n-subjects 200] [--n-models 4]

Both pipelines explain the *same trained models* on the *same data*: the parent process
simulates Lewis et al. 2023's ``boxes`` dataset (§2.5; box perturbation N(1, 1) as in the CI preset
``xaibids.validation.benchmark.CI_PRESETS["boxes"]``), makes the cross-validation folds and
trains every fold's models once with xaibids' own training
(:func:`xaibids.learning.ensemble.train_fold_chunk`, i.e. ``train_model`` with the seeds
``run_ensemble`` uses), into checkpoints in a temporary folder. Training is timed once and
reported separately; it is identical for both pipelines (``stdnn`` by default, Adam 3e-3,
batches of 32, at most 30 epochs with early stopping: patience 5 on a 20 % validation split). Each attribution + stabilization path
then runs in a **fresh subprocess** that reloads the checkpoints
(:func:`~xaibids.learning.ensemble.load_fold_models`: the fold's models and its standardized test
subjects) and runs its path once on one subject and one model (warm-up: lazy imports and one-off
initializations) before the measurement starts, so peaks do not carry over from training or from
the other path:

1. **naive** -- the baseline Lewis et al. 2023 describes (§2.3-2.4), hand-written here on purpose (see
   :func:`naive_fold`): for every model of the fold and every test subject *one at a time*,
   Captum's ``IntegratedGradients(model, multiply_by_inputs=False).attribute(x[None],
   baselines=0, target=y, n_steps=50, method="riemann_trapezoid")`` (zero baseline,
   non-multiplied, a 50-step linear path) and the model's loss on the subject; every model's map
   of every test subject is kept in one ``n_models x n_test x T x F`` array, and only then each
   subject's maps are reduced with xaibids' own
   :func:`xaibids.attribution.stabilize.stabilize` (``closest`` rule, ``abs``, sum
   normalization) -- so only the attribution / streaming strategy differs from xaibids.
2. **xaibids** -- :func:`xaibids.learning.ensemble.attribute_fold` with the settings
   ``run_ensemble`` passes it for a default :class:`~xaibids.learning.ensemble.EnsembleConfig`:
   batches of ``attribution_batch_size`` (16) test subjects streamed through all models and
   stabilized before the next batch, Gauss-Legendre IG, and the per-sample stability statistics
   (``stability=True``, the default; under 10 % of the time here). One row per ``--xaibids-ig-steps``
   value: ``50`` (xaibids' default ``ig_steps``), ``auto`` (``ig_steps=0``: the smallest
   step count whose IG completeness error on the fold's first model and first 32 test subjects
   is within 1 %, chosen per fold inside the timed step as ``run_ensemble`` does) and
   ``adaptive`` (each batch of each model within 1 %; its steps are the mean gradient
   evaluations per map).

Per path: wall time of attribution + stabilization over all folds, the same per
(subject x model), the ratio to the naive path; the peak increase of the resident memory
during the step (Linux ``VmHWM`` reset through ``/proc/self/clear_refs`` just before it, as
``bench_stabilization_memory.py`` does); the agreement of the stabilized maps with the naive
ones (Pearson correlation over all elements per subject, then mean and minimum; share of
subjects whose ``closest`` rule selected the same model); and both maps' Lewis et al. 2023 scores against
the simulated truth mask (:func:`xaibids.validation.metrics.saliency_quality`: overlap, weighted
Jaccard, Euclidean distance; mean over subjects). A second, untimed subprocess per path measures
the peak of its NumPy allocations with ``tracemalloc`` (``--no-trace`` skips it); that peak feeds
the memory projection only (tracemalloc slows Python code, so it is never in the timed run).

Shapes: the default is CI size (boxes, 200 time points x 30 features, 200 subjects, 2 folds x 5
``stdnn`` models; a few minutes on one core). ``--ukb`` uses Lewis et al. 2023's UK Biobank shape
(53 ICA components x 160 time points, simulated as boxes with ``n_features=53``,
``n_timepoints=160``), 200 subjects and 2 folds x 4 models, and prints a **projection** (not a
measurement) to the paper's 8 216 subjects, 300 models, 10 folds: training time scales with
the measured seconds per (model x training subject), attribution time with the measured seconds
per (test subject x model); the naive peak memory grows by the exact size of its larger
``300 x 822 x 160 x 53`` float32 array, xaibids' by its measured NumPy peak times
``300 / n_models`` (its working arrays are ``n_models x batch``); PyTorch's part of the peak
(one model at a time in both paths) is kept as measured. With ``--ukb``, xaibids' streamed peak
is also *measured* at 300 models (``--memory-models``): 300 untrained ``stdnn`` models (memory
does not depend on the weights) stream the first fold's first 32 test subjects (two batches;
the streamed peak does not grow with the subjects, ``bench_stabilization_memory.py``) with the
row's IG steps (for ``auto`` the larger per-fold choice; ``adaptive`` refines again). ``--full`` doubles the subjects and
models. Results: ``benchmarks/results/naive_vs_xaibids.json`` (``..._ukb.json`` with
``--ukb``, ``_full`` appended with ``--full``). See ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

#: Lewis et al. 2023's UK Biobank study (§2.1, §2.4, §3.2): subjects, models per fold, folds, shape.
UKB_STUDY = {"n_subjects": 8216, "n_models": 300, "n_folds": 10, "n_timepoints": 160,
             "n_features": 53}
#: Defaults per shape: subjects, models per fold, time points, features.
SHAPES = {
    "ci": {"n_subjects": 200, "n_models": 5, "n_timepoints": 200, "n_features": 30},
    "ukb": {"n_subjects": 200, "n_models": 4, "n_timepoints": UKB_STUDY["n_timepoints"],
            "n_features": UKB_STUDY["n_features"]},
}
#: The naive path's IG settings (Lewis et al. 2023: Captum, zero baseline, linear steps).
NAIVE_STEPS = 50
NAIVE_RULE = "riemann_trapezoid"
METRICS = ("overlap", "weighted_jaccard", "euclidean_distance")


# --------------------------------------------------------------------------------------------
# memory probes (as in bench_stabilization_memory.py)

def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# data, settings, folds

def simulate(args):
    """The boxes simulation and its :class:`TimeseriesDataset` (same in parent and workers)."""
    from xaibids.validation.benchmark import CI_PRESETS, as_dataset, simulate_in_memory

    sim = simulate_in_memory("boxes", args.n_subjects, seed=args.data_seed,
                             n_timepoints=args.timepoints, n_features=args.features,
                             **CI_PRESETS["boxes"].simulation)
    return sim, as_dataset(sim)


def make_config(args, ig_steps: int | None = None):
    """The ensemble settings: stdnn, seeded folds and models; xaibids' attribution defaults."""
    from xaibids.learning.ensemble import EnsembleConfig

    extra = {} if ig_steps is None else {"ig_steps": ig_steps}
    return EnsembleConfig(model=args.model, n_folds=args.n_folds, n_models=args.n_models,
                          epochs=args.epochs, batch_size=32, learning_rate=args.learning_rate,
                          patience=5, val_fraction=0.2, device=args.device,
                          random_seed=args.random_seed, **extra)


# --------------------------------------------------------------------------------------------
# the two pipelines

def naive_fold(models, X_test, y_test, device, n_steps: int = NAIVE_STEPS,
               rule: str = NAIVE_RULE, how: str = "closest", positive: str = "abs"):
    """Lewis et al. 2023's pipeline as written, for one fold: the reference xaibids is compared with.

    Every model explains every test subject one at a time with Captum (zero baseline, IG not
    multiplied by the input, ``n_steps`` points of ``rule``), every map is kept in memory
    (``n_models x n_test x T x F``), and only then each subject's maps are stabilized with
    xaibids' :func:`~xaibids.attribution.stabilize.stabilize`.

    Returns ``(stabilized (n_test, T, F) float32, selected model per subject,
    probabilities (n_models, n_test, n_classes), attribution seconds, stabilization seconds)``.
    """
    import numpy as np
    import torch
    from captum.attr import IntegratedGradients

    from xaibids.attribution.stabilize import stabilize

    start = time.perf_counter()
    X = torch.as_tensor(X_test, dtype=torch.float32, device=device)
    n_models, n_test = len(models), len(X)
    every = np.empty((n_models, n_test) + tuple(X.shape[1:]), dtype=np.float32)
    losses = np.empty((n_models, n_test))
    probabilities = []
    for m, model in enumerate(models):
        model = model.to(device).eval()
        ig = IntegratedGradients(model, multiply_by_inputs=False)
        probs = []
        for j in range(n_test):
            x, target = X[j], int(y_test[j])
            with torch.no_grad():
                log_p = torch.log_softmax(model(x[None]), dim=1)[0]
            losses[m, j] = -float(log_p[target])
            probs.append(log_p.exp().cpu().numpy())
            every[m, j] = ig.attribute(x[None], baselines=0, target=target, n_steps=n_steps,
                                       method=rule).detach().cpu().numpy()[0]
        probabilities.append(np.stack(probs))
    attributed = time.perf_counter()
    stable = np.empty(every.shape[1:], dtype=np.float32)
    selected = []
    for j in range(n_test):
        stable[j], sel = stabilize(every[:, j], losses[:, j], how=how, positive=positive)
        selected.append(sel)
    stabilized = time.perf_counter()
    del every
    return (stable, selected, np.stack(probabilities), attributed - start,
            stabilized - attributed)


def xaibids_fold(models, X_test, y_test, config, device, ig_steps: int | str):
    """xaibids' step 4 of ``run_ensemble`` for one fold: :func:`attribute_fold` with the
    parameters ``run_ensemble`` gives it (``ig_steps=0``: the per-fold completeness check first).

    Returns ``(stabilized, selected, probabilities, n_steps)``; with ``ig_steps="adaptive"``,
    ``n_steps`` is the mean of the gradient evaluations each map took.
    """
    import numpy as np
    import torch

    from xaibids.attribution.ig import ADAPTIVE, converged_ig_steps
    from xaibids.learning.ensemble import (
        IG_CALIBRATION_SAMPLES,
        attribute_fold,
        method_params,
    )

    params = method_params(config)
    baseline = {"zero": 0.0}  # make_baseline("zero") for config.baseline == "zero"
    n_steps = ig_steps
    if ig_steps == 0:  # as ensemble._converged_steps
        n = min(IG_CALIBRATION_SAMPLES, len(X_test))
        xb = torch.as_tensor(X_test[:n], dtype=torch.float32, device=device)
        yb = torch.as_tensor(y_test[:n], dtype=torch.int64, device=device)
        n_steps, _ = converged_ig_steps(models[0].to(device).eval(), xb, yb, (0.0,),
                                        tolerance=config.ig_tolerance, method=config.ig_method)
    if ig_steps != ADAPTIVE:
        params["ig"]["n_steps"] = n_steps
    stable = np.empty(X_test.shape, dtype=np.float32)
    selected, probabilities, points = [], [], []
    for batch in attribute_fold(models, X_test, y_test, methods=config.attribution,
                                baseline=baseline, how=config.stabilize, positive=config.positive,
                                batch_size=config.attribution_batch_size, device=device,
                                method_params=params, stability=config.stability):
        stable[batch["start"]:batch["stop"]] = batch["maps"]["ig"]
        selected += batch["selected"]["ig"]
        probabilities.append(batch["probabilities"])
        if ig_steps == ADAPTIVE:
            points.append(batch["ig_adaptive"]["ig"]["points"])
    if ig_steps == ADAPTIVE:
        n_steps = round(float(np.concatenate(points, axis=1).mean()), 1)
    return stable, selected, np.concatenate(probabilities, axis=1), n_steps


def worker(args) -> dict:
    """Run one path over all folds in this (fresh) process and return its numbers."""
    import tracemalloc

    import numpy as np
    import torch

    from xaibids.learning.ensemble import (
        ensemble_folds,
        load_fold_models,
        resolve_device,
    )
    from xaibids.models import build_model

    torch.set_num_threads(args.threads)
    path = args.worker
    memory_only = path.startswith("mem-")  # xaibids at --memory-models untrained models
    if path == "naive":
        ig_steps = None
    else:
        value = path.split("-")[-1]
        ig_steps = int(value) if value.isdigit() else {"auto": 0, "adaptive": "adaptive"}[value]
        path = "xaibids"
    _, dataset = simulate(args)
    config = make_config(args, ig_steps)
    device = resolve_device(args.device)
    folds = ensemble_folds(dataset, config)
    loaded = []
    for k in range(1, len(folds) + 1):
        models, X_test, y_test, _ = load_fold_models(dataset, config, args.checkpoints, fold=k)
        loaded.append((folds[k - 1][1], [m.to(device) for m in models], X_test, y_test))
    if memory_only:  # the first fold's first subjects through many untrained models
        _, n_timepoints, n_features = dataset.X.shape
        models = []
        for seed in range(args.memory_models):
            torch.manual_seed(seed)
            models.append(build_model(config.model, n_features=n_features, n_timepoints=n_timepoints,
                                      n_classes=len(dataset.classes), **config.model_kwargs).to(device))
        n = min(args.memory_subjects, len(loaded[0][2]))
        loaded = [(np.arange(n), models, loaded[0][2][:n], loaded[0][3][:n])]
    n_total, n_models = sum(len(t) for t, *_ in loaded), len(loaded[0][1])
    maps = np.full((n_total,) + dataset.X.shape[1:], np.nan, dtype=np.float32)  # allocated before
    selected = np.full(n_total, -1)
    probabilities = np.full((n_models, n_total, len(dataset.classes)), np.nan)

    # warm-up on one subject and one model, outside the measurement: lazy imports and one-off
    # initializations are then excluded from both paths' time and memory
    _, warm_models, warm_X, warm_y = loaded[0]
    if path == "naive":
        naive_fold(warm_models[:1], warm_X[:1], warm_y[:1], device)
    else:
        xaibids_fold(warm_models[:1], warm_X[:1], warm_y[:1], config, device, ig_steps)
    del warm_models, warm_X, warm_y

    rss_before = _status_kib("VmRSS")
    hwm_reset = _reset_hwm()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if args.trace:
        tracemalloc.start()
    seconds = {"attribution": 0.0, "stabilization": 0.0}
    steps = []
    start = time.perf_counter()
    for test_idx, models, X_test, y_test in loaded:
        if path == "naive":
            stable, sel, probs, t_attr, t_stab = naive_fold(models, X_test, y_test, device)
            seconds["attribution"] += t_attr
            seconds["stabilization"] += t_stab
        else:
            stable, sel, probs, n_steps = xaibids_fold(models, X_test, y_test, config, device,
                                                       ig_steps)
            steps.append(n_steps if ig_steps == "adaptive" else int(n_steps))
        maps[test_idx], selected[test_idx], probabilities[:, test_idx] = stable, sel, probs
    total = time.perf_counter() - start
    traced_peak = tracemalloc.get_traced_memory()[1] if args.trace else None
    if args.trace:
        tracemalloc.stop()
    if hwm_reset and rss_before is not None:
        rss_peak_kib, rss_method = _status_kib("VmHWM") - rss_before, "VmHWM after clear_refs"
    else:
        rss_peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss_before
        rss_method = "ru_maxrss increase"
    assert np.isfinite(maps).all() and (selected >= 0).all()
    np.savez(args.maps, maps=maps, selected=selected, probabilities=probabilities)
    n_test_max = max(len(t) for t, *_ in loaded)
    return {
        "path": args.worker, "n_models": n_models, "n_subjects": n_total, "seconds": total,
        "seconds_split": seconds if path == "naive" else None,
        "ig_rule": NAIVE_RULE if path == "naive" else (
            "adaptive" if ig_steps == "adaptive" else config.ig_method),
        "ig_steps": [NAIVE_STEPS] * len(loaded) if path == "naive" else steps,
        "rss_peak_increase_mib": max(rss_peak_kib, 0) / 1024, "rss_method": rss_method,
        "tracemalloc_peak_mib": None if traced_peak is None else traced_peak / 2**20,
        "n_test_max": n_test_max,
        "batch_size": None if path == "naive" else config.attribution_batch_size,
        "stability_statistics": None if path == "naive" else config.stability,
    }


# --------------------------------------------------------------------------------------------
# parent

def run_worker(args, path: str, checkpoints: Path, maps: Path, trace: bool) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", path,
               "--checkpoints", str(checkpoints), "--maps", str(maps)]
    for name in ("n_subjects", "n_models", "timepoints", "features", "n_folds", "model", "epochs",
                 "learning_rate", "data_seed", "threads", "device", "random_seed",
                 "memory_models", "memory_subjects"):
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    if trace:
        command.append("--trace")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise RuntimeError(f"the {path} worker failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def mean_sd(values) -> dict:
    import numpy as np

    values = np.asarray(values, dtype=float)
    ok = values[np.isfinite(values)]
    return {"mean": float(ok.mean()), "sd": float(ok.std(ddof=1)) if len(ok) > 1 else None,
            "min": float(ok.min()), "n": len(ok)}


def project(args, training: dict, rows: list[dict], n_train_subjects: float) -> dict:
    """Linear projection of the measured costs to Lewis et al. 2023's UK Biobank study."""
    study = UKB_STUDY
    n_test_study = math.ceil(study["n_subjects"] / study["n_folds"])
    train_per = training["seconds"] / (args.n_folds * args.n_models * n_train_subjects)
    train_subjects_study = study["n_subjects"] * (study["n_folds"] - 1) / study["n_folds"]
    out = {
        "study": {**study, "n_test_per_fold": n_test_study},
        "training_seconds_per_model_and_training_subject": train_per,
        "training_hours": train_per * study["n_folds"] * study["n_models"] * train_subjects_study / 3600,
        "paths": {},
    }
    elements = args.timepoints * args.features
    for row in rows:
        per = row["seconds_per_subject_model"]
        measured_peak = row["rss_peak_increase_mib"]
        if row["path"] == "naive":
            held = (study["n_models"] * n_test_study - args.n_models * row["n_test_max"])
            peak = measured_peak + held * elements * 4 / 2**20
            rule = ("measured peak + the larger n_models x n_test x T x F float32 array "
                    f"(300 x {n_test_study} instead of {args.n_models} x {row['n_test_max']})")
        elif row.get("tracemalloc_peak_mib") is not None:
            peak = measured_peak + row["tracemalloc_peak_mib"] * (study["n_models"] / args.n_models - 1)
            rule = "measured peak + its NumPy (tracemalloc) peak x (300 / n_models - 1)"
        else:
            peak, rule = None, "not projected (run without --no-trace)"
        run = row.get("memory_run")
        measured = (run["rss_peak_increase_mib"] / 1024
                    if run and run["n_models"] == study["n_models"] else None)
        out["paths"][row["name"]] = {
            "seconds_per_subject_model": per,
            "attribution_hours": per * study["n_subjects"] * study["n_models"] / 3600,
            "peak_memory_gib": None if peak is None else peak / 1024, "memory_rule": rule,
            "peak_memory_measured_at_300_models_gib": measured,
        }
    naive = out["paths"]["naive"]
    for path in out["paths"].values():
        path["time_ratio_naive_over_this"] = naive["attribution_hours"] / path["attribution_hours"]
        path["memory_ratio_this_over_naive"] = (None if path["peak_memory_gib"] is None
                                                else path["peak_memory_gib"] / naive["peak_memory_gib"])
        path["measured_memory_ratio_this_over_naive"] = (
            None if path["peak_memory_measured_at_300_models_gib"] is None
            else path["peak_memory_measured_at_300_models_gib"] / naive["peak_memory_gib"])
    return out


def main(argv=None) -> int:
    from xaibids.validation.benchmark import benchmark_parser, write_benchmark_report

    parser = benchmark_parser(__doc__.split("\n\n")[0],
                              "twice the subjects and models of the chosen shape")
    parser.add_argument("--ukb", action="store_true",
                        help="Lewis et al. 2023's UK Biobank shape (160 x 53) and the projection to its study")
    parser.add_argument("--n-subjects", type=int, help="subjects (default 200)")
    parser.add_argument("--n-models", type=int, help="models per fold (default 5; 4 with --ukb)")
    parser.add_argument("--n-folds", type=int, default=2)
    parser.add_argument("--model", default="stdnn", choices=["stdnn", "lstm-attn", "linear"])
    parser.add_argument("--epochs", type=int, default=30, help="at most (early stopping)")
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--xaibids-ig-steps", nargs="+", default=["50", "auto"],
                        help="xaibids rows: IG steps (50 = default ig_steps; auto = ig_steps 0; "
                             "adaptive)")
    parser.add_argument("--memory-models", type=int,
                        help="also measure xaibids' streamed peak memory with this many untrained "
                             "models on --memory-subjects subjects (default 300 with --ukb, else 0: off)")
    parser.add_argument("--memory-subjects", type=int, default=32)
    parser.add_argument("--no-trace", action="store_true",
                        help="skip the untimed tracemalloc runs (no memory projection)")
    parser.add_argument("--data-seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--timepoints", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--features", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoints", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--maps", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    shape = SHAPES["ukb" if args.ukb else "ci"]
    scale = 2 if args.full else 1
    args.n_subjects = args.n_subjects or scale * shape["n_subjects"]
    args.n_models = args.n_models or scale * shape["n_models"]
    args.timepoints = args.timepoints or shape["n_timepoints"]
    args.features = args.features or shape["n_features"]
    if args.memory_models is None:
        args.memory_models = UKB_STUDY["n_models"] if args.ukb else 0
    if args.worker is not None:
        print(json.dumps(worker(args)))
        return 0
    for value in args.xaibids_ig_steps:
        if value not in ("auto", "adaptive") and not (value.isdigit() and int(value) > 0):
            parser.error(f"--xaibids-ig-steps takes positive integers, 'auto' or 'adaptive', "
                         f"got {value!r}")

    import numpy as np
    import torch

    from xaibids.attribution.reliability import pearson_per_sample
    from xaibids.learning.ensemble import ensemble_folds, train_fold_chunk
    from xaibids.validation.metrics import saliency_quality

    torch.set_num_threads(args.threads)
    name = "naive_vs_xaibids" + ("_ukb" if args.ukb else "") + ("_full" if args.full else "")
    output = args.output or HERE / "results" / f"{name}.json"
    sim, dataset = simulate(args)
    config = make_config(args)
    folds = ensemble_folds(dataset, config)
    n_train_subjects = float(np.mean([len(train) for train, _ in folds]))
    print(f"boxes {args.timepoints} time points x {args.features} features, {args.n_subjects} "
          f"subjects, {args.n_folds} folds x {args.n_models} {args.model} models, "
          f"{args.threads} thread(s), device {args.device}", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench_naive_") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        records = [r for k in range(1, args.n_folds + 1)
                   for r in train_fold_chunk(dataset, config, tmp / "checkpoints", k)]
        training = {"seconds": time.perf_counter() - start,
                    "best_epochs": [r["best_epoch"] for r in records],
                    "n_models_trained": len(records)}
        print(f"training (once, shared by both paths): {training['seconds']:.1f} s "
              f"({len(records)} models, best epochs {training['best_epochs']})", flush=True)
        paths = ["naive"] + [f"xaibids-{v}" for v in args.xaibids_ig_steps]
        rows, maps = [], {}
        for path in paths:
            row = run_worker(args, path, tmp / "checkpoints", tmp / f"{path}.npz", trace=False)
            if not args.no_trace:
                traced = run_worker(args, path, tmp / "checkpoints", tmp / "traced.npz", trace=True)
                row["tracemalloc_peak_mib"] = traced["tracemalloc_peak_mib"]
            with np.load(tmp / f"{path}.npz") as saved:
                maps[path] = {key: saved[key] for key in saved.files}
            row["name"] = "naive" if path == "naive" else f"xaibids, ig_steps {path.split('-')[1]}"
            print(f"  {row['name']}: {row['seconds']:.1f} s, RSS peak +{row['rss_peak_increase_mib']:.1f} MiB",
                  flush=True)
            rows.append(row)
        if args.memory_models > 0:
            for row, path in zip(rows[1:], paths[1:]):
                # with auto: the larger per-fold choice; adaptive chooses again
                steps = "adaptive" if path.endswith("adaptive") else max(row["ig_steps"])
                got = run_worker(args, f"mem-xaibids-{steps}", tmp / "checkpoints",
                                 tmp / "memory.npz", trace=False)
                row["memory_run"] = {k: got[k] for k in ("n_models", "n_subjects", "ig_steps",
                                                         "rss_peak_increase_mib", "seconds")}
                print(f"  {row['name']} with {got['n_models']} untrained models, "
                      f"{got['n_subjects']} subjects, {steps} steps: RSS peak "
                      f"+{got['rss_peak_increase_mib']:.1f} MiB ({got['seconds']:.0f} s)", flush=True)

    truth = sim.truth
    naive = maps["naive"]
    probabilities = naive["probabilities"]
    accuracy = float(np.mean(probabilities.mean(axis=0).argmax(axis=1) == dataset.y))
    for row, path in zip(rows, paths):
        got = maps[path]
        row["seconds_per_subject_model"] = row["seconds"] / (args.n_subjects * args.n_models)
        row["time_ratio_naive_over_this"] = rows[0]["seconds"] / row["seconds"]
        row["rss_ratio_this_over_naive"] = (row["rss_peak_increase_mib"] / rows[0]["rss_peak_increase_mib"]
                                            if rows[0]["rss_peak_increase_mib"] > 0 else None)
        r = pearson_per_sample(got["maps"], naive["maps"])
        row["correlation_with_naive"] = mean_sd(r)
        row["same_selected_model"] = float(np.mean(got["selected"] == naive["selected"]))
        scores = [saliency_quality(got["maps"][i], truth[i]) for i in range(len(truth))]
        row["ground_truth"] = {m: mean_sd([s[m] for s in scores]) for m in METRICS}

    print(f"\nAttribution + stabilization of all {args.n_folds} folds ({args.n_subjects} subjects x "
          f"{args.n_models} models; ensemble accuracy {accuracy:.3f}); training once: "
          f"{training['seconds']:.1f} s")
    header = (f"{'path':<22} {'IG rule, steps':<24} {'time':>8} {'ms/(subj x model)':>17} "
              f"{'naive / this':>12} {'RSS peak':>11} {'NumPy peak':>11} {'r vs naive':>15} "
              f"{'same model':>10} {'overlap':>8} {'w. Jaccard':>10} {'Euclidean':>9}")
    print(header)
    for row in rows:
        steps = ",".join(map(str, sorted(set(row["ig_steps"]))))
        corr = row["correlation_with_naive"]
        traced = row.get("tracemalloc_peak_mib")
        gt = row["ground_truth"]
        print(f"{row['name']:<22} {row['ig_rule'] + ' ' + steps:<24} {row['seconds']:>7.1f}s "
              f"{1e3 * row['seconds_per_subject_model']:>17.2f} {row['time_ratio_naive_over_this']:>11.2f}x "
              f"{row['rss_peak_increase_mib']:>7.1f} MiB "
              f"{'n/a' if traced is None else f'{traced:.1f} MiB':>11} "
              f"{corr['mean']:>7.4f} ({corr['min']:.3f}) {row['same_selected_model']:>10.2f} "
              f"{gt['overlap']['mean']:>8.3f} {gt['weighted_jaccard']['mean']:>10.3f} "
              f"{gt['euclidean_distance']['mean']:>9.3f}")
    split = rows[0]["seconds_split"]
    print(f"(naive: attribution {split['attribution']:.1f} s, stabilization {split['stabilization']:.2f} s; "
          f"r vs naive: mean (min) over subjects of the per-subject Pearson correlation; "
          f"RSS as {rows[0]['rss_method']})")

    report = {
        "benchmark": name,
        "description": "Naive Lewis et al. 2023 pipeline (per subject x model Captum IG, 50 riemann_trapezoid "
                       "steps, all maps held, then stabilized) vs xaibids' attribute_fold (batched, "
                       "streamed, Gauss-Legendre) on the same trained models and data.",
        "settings": {k: getattr(args, k) for k in (
            "ukb", "full", "n_subjects", "n_models", "n_folds", "model", "epochs",
            "learning_rate", "timepoints", "features", "xaibids_ig_steps", "random_seed",
            "data_seed", "threads", "device", "memory_models", "memory_subjects")},
        "simulation": {"kind": "boxes", **sim.params},
        "ensemble_accuracy": accuracy,
        "training": training,
        "rows": rows,
        "ratios": {row["name"]: {"time_naive_over_this": row["time_ratio_naive_over_this"],
                                 "rss_peak_this_over_naive": row["rss_ratio_this_over_naive"]}
                   for row in rows},
    }
    if args.ukb:
        proj = project(args, training, rows, n_train_subjects)
        report["projection"] = proj
        study = proj["study"]
        print(f"\nPROJECTION (linear scaling of the measured rates, not a measurement) to Lewis et al. 2023's "
              f"UK Biobank study: {study['n_subjects']} subjects, {study['n_models']} models per "
              f"fold, {study['n_folds']} folds ({study['n_test_per_fold']} test subjects per fold), "
              f"{args.timepoints} x {args.features}, one thread")
        print(f"training: {1e3 * proj['training_seconds_per_model_and_training_subject']:.3f} ms per "
              f"(model x training subject) -> {proj['training_hours']:.0f} h")
        print(f"{'path':<22} {'attribution + stabilization':>28} {'naive / this':>12} "
              f"{'peak memory':>12} {'this / naive':>12} {'measured at 300 models':>23} "
              f"{'this / naive':>12}")

        def fmt(value, unit=""):
            return "n/a" if value is None else f"{value:.3f}{unit}"

        for name_, path in proj["paths"].items():
            print(f"{name_:<22} {path['attribution_hours']:>26.0f} h "
                  f"{path['time_ratio_naive_over_this']:>11.2f}x "
                  f"{fmt(path['peak_memory_gib'], ' GiB'):>12} "
                  f"{fmt(path['memory_ratio_this_over_naive']):>12} "
                  f"{fmt(path['peak_memory_measured_at_300_models_gib'], ' GiB'):>23} "
                  f"{fmt(path['measured_memory_ratio_this_over_naive']):>12}")
        print("(peak memory: increase of the resident memory during attribution + stabilization of "
              "one fold; naive projected from its exact array size, xaibids projected from its "
              "NumPy peak, and measured with 300 untrained models streaming "
              f"{args.memory_subjects} subjects)")
    write_benchmark_report(report, output, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
