"""Peak memory of attribution + stabilization for one fold, at N and 4N subjects.

xaibids streams a fold's test subjects in batches through all models of the fold and stabilizes
each batch before the next (Lewis et al. 2023 §2.4 computed in constant memory), so the memory of this
step should not grow with the number of subjects. This benchmark measures it:

    python benchmarks/bench_stabilization_memory.py [--n 32] [--factor 4] [--model stdnn] ...

Each size runs in a fresh subprocess (so peaks do not carry over) on the CPU. Two peaks are
recorded while :func:`xaibids.learning.ensemble.attribute_fold` is consumed:

- ``tracemalloc``: the peak of Python/NumPy allocations (raw maps, stabilization);
- ``rss``: the peak increase of the process's resident memory over its level just before
  the step (Linux ``VmHWM`` reset through ``/proc/self/clear_refs``; elsewhere
  ``ru_maxrss``), which also covers PyTorch's allocations (Captum's interpolated batches,
  activations, gradients), and the increase still resident at the end of the step.

The working memory is allocated by the first batch and reused by the next ones; the RSS peak
can still creep up slowly with the number of batches (malloc fragmentation: an occasional batch
lands on fresh heap pages), far below proportionally.

The input data and the stabilized output maps are allocated *before* the measurement; they
necessarily scale with N (their size is reported as ``output_mib``). The batches' maps are
written into the output array as the ensemble does. Results are printed as a table and written
to ``benchmarks/results/stabilization_memory.json``. This is not a timed test.

``--curve`` measures the curves instead (each point in a fresh subprocess, as above)::

    python benchmarks/bench_stabilization_memory.py --curve [--curve-subjects 16 32 64 128 256]
        [--curve-batches 4 8 16] [--curve-models 2 5 10] [--curve-n 32]

- peak vs the number of subjects at fixed batch size and number of models (``--batch-size``,
  ``--n-models``);
- peak vs batch size x number of models at a fixed number of subjects (``--curve-n``);

with least-squares slopes (MiB per subject, MiB per unit of batch x models) and, for
comparison, two sizes that are *computed, not measured*: the raw maps a naive implementation
would hold (every model's maps of all N subjects, ``n_models x N x T x F`` float32) and the raw
maps the streamed one holds at a time (``batch x n_models x T x F`` float32). Each point is
also measured with glibc's ``MALLOC_MMAP_THRESHOLD_`` at 64 KiB (``--curve-mmap-threshold``; 0
skips it): large blocks are then mapped and unmapped on their own, which separates what the
step holds from the heap that glibc keeps (and fragments) between batches. Written to
``benchmarks/results/stabilization_memory_curve.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing


def _vm_hwm_kib() -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _vm_rss_kib() -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
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


def worker(args: argparse.Namespace) -> dict:
    """Measure one size in this process and return the numbers."""
    import numpy as np
    import torch

    from xaibids.learning.ensemble import attribute_fold
    from xaibids.models import build_model

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.worker, args.timepoints, args.features)).astype(np.float32)
    y = (np.arange(args.worker) % 2).astype(np.int64)
    models = []
    for seed in range(args.n_models):
        torch.manual_seed(seed)
        extra = {"grid": list(args.grid)} if args.model == "cnn3d" else {}
        models.append(build_model(args.model, args.features, args.timepoints, 2, **extra).eval())
    out = np.full_like(X, np.nan)  # the stabilized maps as run_ensemble stores them (pages touched)

    rss_before = _vm_rss_kib()
    hwm_reset = _reset_hwm()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    start = time.perf_counter()
    for batch in attribute_fold(models, X, y, n_steps=args.ig_steps, batch_size=args.batch_size):
        out[batch["start"]:batch["stop"]] = batch["maps"]["ig"]
    seconds = time.perf_counter() - start
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = _vm_rss_kib()
    if hwm_reset and rss_before is not None:
        rss_increase_kib = _vm_hwm_kib() - rss_before
        rss_method = "VmHWM after clear_refs"
    else:
        rss_increase_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss_before
        rss_method = "ru_maxrss increase"
    assert np.isfinite(out).all()
    return {
        "n_subjects": args.worker,
        "tracemalloc_peak_mib": traced_peak / 2**20,
        "rss_peak_increase_mib": max(rss_increase_kib, 0) / 1024,
        "rss_method": rss_method,
        "rss_end_increase_mib": (max(rss_after - rss_before, 0) / 1024
                                 if rss_after is not None and rss_before is not None else float("nan")),
        "output_mib": out.nbytes / 2**20,
        "seconds": seconds,
    }


def measure(args: argparse.Namespace, n: int, n_models: int, batch_size: int,
            mmap_threshold: int = 0) -> dict:
    """One size in a fresh subprocess (so peaks do not carry over); the worker's numbers.

    ``mmap_threshold`` > 0 runs the worker with glibc's ``MALLOC_MMAP_THRESHOLD_`` at that many
    bytes: larger blocks are then mapped and unmapped on their own instead of being carved from
    (and fragmenting) the heap.
    """
    env = dict(os.environ)
    if mmap_threshold:
        env["MALLOC_MMAP_THRESHOLD_"] = str(mmap_threshold)
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(n)]
    settings = {"model": args.model, "n_models": n_models, "timepoints": args.timepoints,
                "features": args.features, "batch_size": batch_size, "ig_steps": args.ig_steps,
                "threads": args.threads}
    for name, value in settings.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    if args.grid:
        command += ["--grid", *map(str, args.grid)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(done.returncode)
    row = json.loads(done.stdout.strip().splitlines()[-1])
    maps_mib = args.timepoints * args.features * 4 / 2**20  # one float32 (T, F) map
    row.update({"n_models": n_models, "batch_size": batch_size,
                "batch_x_models": batch_size * n_models,
                "naive_all_maps_mib_computed": n_models * n * maps_mib,
                "streamed_raw_maps_mib_computed": n_models * min(batch_size, n) * maps_mib})
    return row


def _slope(x, y) -> dict:
    """Least-squares line ``y = intercept + slope * x``."""
    import numpy as np

    slope, intercept = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    return {"slope": float(slope), "intercept": float(intercept)}


def _environment() -> dict:
    import numpy
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "machine": platform.machine(),
            "cpu_count": os.cpu_count()}


def curve(args: argparse.Namespace) -> int:
    """``--curve``: peak vs subjects, and peak vs batch x models; slopes; JSON."""
    print(f"Memory curves of attribution + stabilization of one fold: {args.model}, "
          f"T={args.timepoints}, F={args.features}, IG steps {args.ig_steps}, "
          f"{args.threads} thread(s); each point in a fresh subprocess")
    mmap = args.curve_mmap_threshold
    header = (f"{'tracemalloc':>12}  {'RSS peak':>10}  {'RSS end':>9}  "
              + (f"{'RSS peak (mmap)':>15}  " if mmap else "")
              + f"{'streamed maps*':>14}  {'naive maps*':>11}  {'time':>7}")
    mmap_key = "rss_peak_increase_mib_mmap_threshold"

    def point(n, n_models, batch_size) -> dict:
        row = measure(args, n, n_models, batch_size)
        if mmap:
            row[mmap_key] = measure(args, n, n_models, batch_size,
                                    mmap_threshold=mmap)["rss_peak_increase_mib"]
        return row

    def line(row) -> str:
        return (f"{row['tracemalloc_peak_mib']:>8.2f} MiB  "
                f"{row['rss_peak_increase_mib']:>6.2f} MiB  "
                f"{row['rss_end_increase_mib']:>5.2f} MiB  "
                + (f"{row[mmap_key]:>11.2f} MiB  " if mmap else "") +
                f"{row['streamed_raw_maps_mib_computed']:>10.2f} MiB  "
                f"{row['naive_all_maps_mib_computed']:>7.2f} MiB  {row['seconds']:>6.2f}s")

    print(f"\nPeak vs number of subjects (batch {args.batch_size}, {args.n_models} models):")
    print(f"{'subjects':>8}  " + header)
    by_subjects = []
    for n in args.curve_subjects:
        row = point(n, args.n_models, args.batch_size)
        by_subjects.append(row)
        print(f"{n:>8}  " + line(row), flush=True)
    x = [r["n_subjects"] for r in by_subjects]
    keys = ["rss_peak_increase_mib", "tracemalloc_peak_mib"] + ([mmap_key] if mmap else [])
    fits_subjects = {key: _slope(x, [r[key] for r in by_subjects])
                     for key in keys + ["naive_all_maps_mib_computed"]}
    print("slope, MiB per subject: RSS peak "
          f"{fits_subjects['rss_peak_increase_mib']['slope']:.4f}, "
          + (f"RSS peak (mmap) {fits_subjects[mmap_key]['slope']:.4f}, " if mmap else "")
          + f"tracemalloc {fits_subjects['tracemalloc_peak_mib']['slope']:.4f}; naive maps "
          f"(computed) {fits_subjects['naive_all_maps_mib_computed']['slope']:.4f}")

    print(f"\nPeak vs batch x models ({args.curve_n} subjects):")
    print(f"{'batch':>5}  {'models':>6}  {'b x m':>5}  " + header)
    by_batch_models = []
    for batch_size in args.curve_batches:
        for n_models in args.curve_models:
            row = point(args.curve_n, n_models, batch_size)
            by_batch_models.append(row)
            print(f"{batch_size:>5}  {n_models:>6}  {batch_size * n_models:>5}  " + line(row),
                  flush=True)
    x = [r["batch_x_models"] for r in by_batch_models]
    fits_bm = {key: _slope(x, [r[key] for r in by_batch_models])
               for key in keys + ["streamed_raw_maps_mib_computed"]}
    # the same points split into batch and models: peak = c + a * batch + b * models
    import numpy as np

    design = np.column_stack([np.ones(len(by_batch_models)),
                              [r["batch_size"] for r in by_batch_models],
                              [r["n_models"] for r in by_batch_models]])
    coef = {}
    # the split needs two batch sizes and two model counts (else the design is rank-deficient
    # and lstsq's minimum-norm answer is meaningless)
    if np.linalg.matrix_rank(design) == 3:
        for key in keys:
            c, a, b = np.linalg.lstsq(design, [r[key] for r in by_batch_models], rcond=None)[0]
            coef[key] = {"intercept": float(c), "per_batch_sample": float(a),
                         "per_model": float(b)}
    print(f"slope, MiB per unit of batch x models: RSS peak "
          f"{fits_bm['rss_peak_increase_mib']['slope']:.4f}, "
          + (f"RSS peak (mmap) {fits_bm[mmap_key]['slope']:.4f}, " if mmap else "")
          + "tracemalloc "
          f"{fits_bm['tracemalloc_peak_mib']['slope']:.4f}; streamed raw maps (computed) "
          f"{fits_bm['streamed_raw_maps_mib_computed']['slope']:.4f}")
    if coef:
        print(f"split fit, RSS peak = {coef['rss_peak_increase_mib']['intercept']:.2f} + "
              f"{coef['rss_peak_increase_mib']['per_batch_sample']:.3f} x batch + "
              f"{coef['rss_peak_increase_mib']['per_model']:.3f} x models MiB; tracemalloc = "
              f"{coef['tracemalloc_peak_mib']['intercept']:.2f} + "
              f"{coef['tracemalloc_peak_mib']['per_batch_sample']:.3f} x batch + "
              f"{coef['tracemalloc_peak_mib']['per_model']:.3f} x models MiB"
              + (f"; RSS peak (mmap) = {coef[mmap_key]['intercept']:.2f} + "
                 f"{coef[mmap_key]['per_batch_sample']:.3f} x batch + "
                 f"{coef[mmap_key]['per_model']:.3f} x models MiB" if mmap else ""))
    else:
        print("split fit into batch and models skipped: it needs at least two --curve-batches "
              "and two --curve-models")
    print("(* computed, not measured: streamed = batch x models x T x F float32 held at a time; "
          "naive = models x N x T x F float32, every model's maps of all subjects; RSS measured "
          f"as {by_subjects[0]['rss_method']}"
          + (f"; RSS peak (mmap): the same point rerun with MALLOC_MMAP_THRESHOLD_={mmap}, "
             "so that glibc maps large blocks on their own instead of reusing, and fragmenting, "
             "its heap" if mmap else "") + ")")

    result = {
        "benchmark": "stabilization_memory_curve",
        "description": "Peak memory of streamed attribution + stabilization of one fold's test "
                       "subjects vs the number of subjects and vs batch size x number of models, "
                       "excluding the pre-allocated input and output arrays. The *_computed "
                       "columns are computed sizes, not measurements.",
        "settings": {k: getattr(args, k) for k in ("model", "n_models", "batch_size",
                                                    "timepoints", "features", "ig_steps",
                                                    "threads", "curve_subjects", "curve_n",
                                                    "curve_batches", "curve_models",
                                                    "curve_mmap_threshold")},
        "by_subjects": by_subjects,
        "fit_by_subjects_mib_per_subject": fits_subjects,
        "by_batch_x_models": by_batch_models,
        "fit_by_batch_x_models_mib_per_unit": fits_bm,
        "fit_by_batch_and_models_mib": coef,
        "environment": _environment(),
    }
    output = args.output or HERE / "results" / "stabilization_memory_curve.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"Wrote {output}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=32, help="smaller number of test subjects")
    parser.add_argument("--factor", type=int, default=4, help="the larger size is factor x n")
    parser.add_argument("--model", default="stdnn",
                        choices=["stdnn", "lstm-attn", "linear", "cnn3d"])
    parser.add_argument("--grid", type=int, nargs=3, metavar=("X", "Y", "Z"),
                        help="--model cnn3d: the volume grid (then --timepoints is 1 and "
                             "--features X*Y*Z)")
    parser.add_argument("--n-models", type=int, default=5, help="models of the fold")
    parser.add_argument("--timepoints", type=int, default=100)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=8, help="attribution batch size")
    parser.add_argument("--ig-steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path,
                        help="JSON file (default benchmarks/results/stabilization_memory.json, "
                             "with --curve stabilization_memory_curve.json)")
    parser.add_argument("--curve", action="store_true",
                        help="measure peak vs subjects and vs batch x models instead")
    parser.add_argument("--curve-subjects", type=int, nargs="+", default=[16, 32, 64, 128, 256],
                        help="--curve: numbers of subjects (at --batch-size, --n-models)")
    parser.add_argument("--curve-batches", type=int, nargs="+", default=[4, 8, 16],
                        help="--curve: batch sizes (at --curve-n subjects)")
    parser.add_argument("--curve-models", type=int, nargs="+", default=[2, 5, 10],
                        help="--curve: numbers of models (at --curve-n subjects)")
    parser.add_argument("--curve-n", type=int, default=32,
                        help="--curve: subjects of the batch x models curve")
    parser.add_argument("--curve-mmap-threshold", type=int, default=65536, metavar="BYTES",
                        help="--curve: also measure each point with glibc's "
                             "MALLOC_MMAP_THRESHOLD_=BYTES (0: do not)")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if (args.model == "cnn3d") != bool(args.grid):
        parser.error("--grid X Y Z goes with --model cnn3d (and only with it)")
    if args.grid:
        args.timepoints, args.features = 1, int(args.grid[0] * args.grid[1] * args.grid[2])
    if args.worker is not None:
        print(json.dumps(worker(args)))
        return 0
    if args.curve:
        sizes = args.curve_subjects + args.curve_batches + args.curve_models + [args.curve_n]
        if min(sizes) < 1 or len(args.curve_subjects) < 2 or \
                len(args.curve_batches) * len(args.curve_models) < 3:
            parser.error("--curve needs positive sizes, at least 2 subject counts and 3 batch x "
                         "models points")
        return curve(args)
    if args.n < 1 or args.factor < 2:
        parser.error("--n must be >= 1 and --factor >= 2")
    args.output = args.output or HERE / "results" / "stabilization_memory.json"

    rows = [measure(args, n, args.n_models, args.batch_size)
            for n in (args.n, args.factor * args.n)]

    small, large = rows
    ratios = {
        key: (large[key] / small[key] if small[key] > 0 else float("nan"))
        for key in ("tracemalloc_peak_mib", "rss_peak_increase_mib", "rss_end_increase_mib",
                    "output_mib", "seconds")
    }
    header = (f"{'subjects':>8}  {'tracemalloc peak':>16}  {'RSS peak increase':>17}  "
              f"{'RSS at end':>10}  {'output maps':>11}  {'time':>7}")
    print(f"Attribution + stabilization of one fold: {args.model}, {args.n_models} models, "
          f"T={args.timepoints}, F={args.features}, batch {args.batch_size}, IG steps {args.ig_steps}")
    print(header)
    for row in rows:
        print(f"{row['n_subjects']:>8}  {row['tracemalloc_peak_mib']:>12.2f} MiB  "
              f"{row['rss_peak_increase_mib']:>13.2f} MiB  {row['rss_end_increase_mib']:>6.2f} MiB  "
              f"{row['output_mib']:>7.2f} MiB  "
              f"{row['seconds']:>6.2f}s")
    print(f"{'ratio':>8}  {ratios['tracemalloc_peak_mib']:>16.2f}  {ratios['rss_peak_increase_mib']:>17.2f}  "
          f"{ratios['rss_end_increase_mib']:>10.2f}  {ratios['output_mib']:>11.2f}  {ratios['seconds']:>7.2f}")
    print(f"(subjects ratio {args.factor}; RSS measured as {small['rss_method']})")

    result = {
        "benchmark": "stabilization_memory",
        "description": "Peak memory of streamed attribution + stabilization of one fold's test "
                       "subjects, excluding the pre-allocated input and output arrays.",
        "settings": {k: getattr(args, k) for k in ("n", "factor", "model", "n_models", "timepoints",
                                                    "features", "grid", "batch_size", "ig_steps", "threads")},
        "rows": rows,
        "ratios_large_over_small": ratios,
        "environment": _environment(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
