"""Peak memory of attribution + stabilization for one fold, at N and 4N subjects.

xaibids streams a fold's test subjects in batches through all models of the fold and stabilizes
each batch before the next (seed 000 §2.4 computed in constant memory), so the memory of this
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
        models.append(build_model(args.model, args.features, args.timepoints, 2).eval())
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=32, help="smaller number of test subjects")
    parser.add_argument("--factor", type=int, default=4, help="the larger size is factor x n")
    parser.add_argument("--model", default="stdnn", choices=["stdnn", "lstm-attn", "linear"])
    parser.add_argument("--n-models", type=int, default=5, help="models of the fold")
    parser.add_argument("--timepoints", type=int, default=100)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=8, help="attribution batch size")
    parser.add_argument("--ig-steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "stabilization_memory.json")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(args)))
        return 0
    if args.n < 1 or args.factor < 2:
        parser.error("--n must be >= 1 and --factor >= 2")

    rows = []
    for n in (args.n, args.factor * args.n):
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(n)]
        for name in ("model", "n_models", "timepoints", "features", "batch_size", "ig_steps", "threads"):
            command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            return done.returncode
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))

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

    import numpy
    import torch

    result = {
        "benchmark": "stabilization_memory",
        "description": "Peak memory of streamed attribution + stabilization of one fold's test "
                       "subjects, excluding the pre-allocated input and output arrays.",
        "settings": {k: getattr(args, k) for k in ("n", "factor", "model", "n_models", "timepoints",
                                                    "features", "batch_size", "ig_steps", "threads")},
        "rows": rows,
        "ratios_large_over_small": ratios,
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "numpy": numpy.__version__, "machine": platform.machine(),
                        "cpu_count": os.cpu_count()},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
