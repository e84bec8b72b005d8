"""Participant level: the Nipype overhead of ``xaibids … participant`` over nilearn directly.

    python benchmarks/bench_extraction_overhead.py [--subjects 8] [--volumes 100] [--small 2]
        [--modes nprocs1 linear nprocs2 linear-tfmin] [--full]

Makes a small fMRIPrep-like derivatives dataset (``tests/conftest.py::make_fmriprep_dataset``:
8 mm MNI BOLD, brain mask, confounds; one rest run per subject) in a temporary folder and, on
the same files, times

(a) **nilearn directly**, per run, what xaibids computes (``xaibids.features.timeseries``):
    the bundled ``aal`` atlas (``xaibids.features.atlases.load_atlas``) resampled
    nearest-neighbour to the BOLD grid, the ``simple`` confounds of
    ``nilearn.interfaces.fmriprep.load_confounds_strategy``, ``NiftiLabelsMasker`` (mean,
    linear detrending, no standardization, TR from the sidecar), regions with less than 50 %
    of their voxels in the brain mask set to NaN, and the TSV written as xaibids writes it.
    Runs in a fresh subprocess; its imports and the atlas load are the route's fixed cost;

(b) **the xaibids command line** ``xaibids BIDS OUT participant -d fmriprep=DERIV --atlas aal
    --skip-bids-validation --nprocs 1 -w WORK`` in a subprocess (wall clock), and, per
    execution mode, the same ``main(argv)`` in a subprocess whose phases are timed in process
    (imports, configuration and atlas, pybids input collection, completion records, workflow
    build and boilerplate, ``Workflow.run`` with the time spent inside the nodes).

Modes: ``nprocs1`` (``--nprocs 1``: Nipype MultiProc with one worker, xaibids' default plugin),
``linear`` (``--use-plugin`` with ``plugin: Linear``, every node in the main process),
``nprocs2`` (``--nprocs 2``), and a what-if that is not what xaibids ships:
``linear-tfmin``, ``linear`` with ``TEMPLATEFLOW_HOME`` on a
folder holding one template's ``template_description.json`` (importing niworkflows'
``DerivativesDataSink`` lists the templates of the TemplateFlow home, indexing it with pybids;
a default home holds TemplateFlow's skeleton of ~2 500 files).

Each mode runs on the dataset of ``--subjects`` subjects and on one of its first ``--small``
subjects (the same files: the generator draws subject after subject), so that the cost splits
into a fixed start-up part and a part per run: a line through the two sizes, fitted to the time
after the imports (whose duration does not depend on the data but varies by seconds with the
load of a shared machine) and the mean import time added to the fixed part. A line through the
two wall-clock times is kept in the JSON as ``split_wall``.

Both routes' timecourses are compared (max abs difference over the regions with coverage;
the TSVs hold 8 significant digits). Results are printed as tables and written to
``benchmarks/results/extraction_overhead.json``. Thread pools are limited to ``--threads``
(default 1) in every subprocess, so the comparison is per core.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

MODES = {
    "nprocs1": {"args": ["--nprocs", "1"], "tf_min": False},
    "linear": {"args": ["--nprocs", "1", "--use-plugin", "{linear_yaml}"], "tf_min": False},
    "nprocs2": {"args": ["--nprocs", "2"], "tf_min": False},
    "linear-tfmin": {"args": ["--nprocs", "1", "--use-plugin", "{linear_yaml}"], "tf_min": True},
}
ATLAS = "aal"
STRATEGY = "simple"
MIN_COVERAGE = 0.5


def run_key(path: Path) -> str:
    """``sub-01_task-rest[_run-1]``: the entities before ``_space-`` of a BOLD or output file."""
    return path.name.split("_space-")[0]


# --------------------------------------------------------------------------------------------
# workers (each in a fresh subprocess)
# --------------------------------------------------------------------------------------------

def direct_worker(args) -> dict:
    """(a): nilearn directly, run by run, with the computation of xaibids' ROI extraction."""
    t0 = time.perf_counter()
    import warnings

    import nibabel as nb
    import numpy as np
    import pandas as pd
    from nilearn.image import resample_to_img
    from nilearn.interfaces.fmriprep import load_confounds_strategy
    from nilearn.maskers import NiftiLabelsMasker

    t_import = time.perf_counter() - t0
    t1 = time.perf_counter()
    from xaibids.features.atlases import load_atlas

    atlas = load_atlas(ATLAS)
    indices = atlas.labels["index"].astype(int).tolist()
    names = atlas.region_names
    t_atlas = time.perf_counter() - t1

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bolds = sorted(Path(args.deriv).glob("sub-*/func/*_desc-preproc_bold.nii.gz"))
    if args.participants:
        bolds = [b for b in bolds if b.name.split("_")[0][4:] in args.participants]
    per_run, per_run_write, arrays = [], [], {}
    warnings.simplefilter("ignore")  # nilearn: "labels removed after masking" (as in xaibids)
    for bold in bolds:
        t = time.perf_counter()
        img = nb.load(bold)
        mask = nb.load(str(bold).replace("desc-preproc_bold", "desc-brain_mask"))
        sidecar = json.loads(Path(str(bold).replace(".nii.gz", ".json")).read_text())
        labels_img = resample_to_img(atlas.img, img, interpolation="nearest",
                                     force_resample=True, copy_header=True)
        atlas_data = np.asarray(labels_img.dataobj)
        inside = np.asarray(mask.dataobj) > 0
        coverage = []
        for index in indices:
            region = atlas_data == index
            n = region.sum()
            coverage.append((region & inside).sum() / n if n else 0.0)
        conf, sample_mask = load_confounds_strategy(str(bold), denoise_strategy=STRATEGY)
        masker = NiftiLabelsMasker(labels_img=labels_img, mask_img=mask, detrend=True,
                                   standardize=None, t_r=float(sidecar["RepetitionTime"]),
                                   strategy="mean")
        values = masker.fit_transform(img, confounds=conf, sample_mask=sample_mask)
        data = np.full((values.shape[0], len(indices)), np.nan)
        column_of = {int(v): k for k, v in masker.region_ids_.items() if k != "background"}
        for j, index in enumerate(indices):
            if index in column_of and coverage[j] >= MIN_COVERAGE and coverage[j] > 0:
                data[:, j] = values[:, column_of[index]]
        t_write = time.perf_counter()
        pd.DataFrame(data, columns=names).to_csv(
            out / f"{run_key(bold)}_timeseries.tsv", sep="\t", index=False, na_rep="n/a",
            float_format="%.8g")
        end = time.perf_counter()
        per_run.append(end - t)
        per_run_write.append(end - t_write)
        arrays[run_key(bold)] = data
    np.savez(out / "direct.npz", **arrays)
    return {"import_s": t_import, "atlas_s": t_atlas, "per_run_s": per_run,
            "per_run_write_s": per_run_write, "runs": [run_key(b) for b in bolds],
            "in_process_s": time.perf_counter() - t0}


def xaibids_worker(args) -> dict:
    """(b) with phases: ``xaibids.cli.run.main(argv)`` with timers around its steps."""
    t0 = time.perf_counter()
    timers: dict[str, float] = {}
    nodes: dict[str, float] = {}

    def timed(name, func):
        @functools.wraps(func)
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return func(*a, **k)
            finally:
                timers[name] = timers.get(name, 0.0) + time.perf_counter() - t
        return wrapper

    timers["imports"] = 0.0
    import templateflow.api as tf_api  # niworkflows' DerivativesDataSink lists the templates

    tf_api.templates = timed("  of which TemplateFlow templates()", tf_api.templates)
    from nipype.pipeline.engine.workflows import Workflow

    from xaibids.levels import participant
    from xaibids.cli import command as cli_run
    from xaibids.features import atlases
    from xaibids.outputs import boilerplate
    from xaibids.workflows import base as wf_base

    timers["imports"] = time.perf_counter() - t0

    cli_run.parse_args = timed("parse_args", cli_run.parse_args)
    cli_run.setup_logging = timed("setup_logging", cli_run.setup_logging)
    cli_run.configure = timed("configure (incl. atlas)", cli_run.configure)
    atlases.load_atlas = timed("  of which load_atlas", atlases.load_atlas)
    participant.collect_inputs = timed("collect_inputs (pybids)", participant.collect_inputs)
    participant.pending_subjects = timed("completion records", participant.pending_subjects)
    participant.record_completion = timed("completion records", participant.record_completion)
    participant.snapshot = timed("completion records", participant.snapshot)
    participant.prepare_output = timed("prepare output + atlas file", participant.prepare_output)
    wf_base.init_xaibids_participant_wf = timed("build workflow",
                                                wf_base.init_xaibids_participant_wf)
    boilerplate.write_boilerplate = timed("boilerplate", boilerplate.write_boilerplate)
    boilerplate.workflow_description = timed("boilerplate", boilerplate.workflow_description)
    original_run = Workflow.run

    def run(self, *a, **k):
        t = time.perf_counter()
        try:
            graph = original_run(self, *a, **k)
        finally:
            timers["Workflow.run"] = timers.get("Workflow.run", 0.0) + time.perf_counter() - t
        for node in graph.nodes():
            runtime = getattr(node.result, "runtime", None)
            if runtime is not None and getattr(runtime, "duration", None) is not None:
                nodes[node.name] = nodes.get(node.name, 0.0) + float(runtime.duration)
        return graph

    Workflow.run = run
    code = cli_run.main(args.argv)
    return {"code": code, "phases_s": timers, "node_s": nodes,
            "in_process_s": time.perf_counter() - t0}


# --------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------

def _env(threads: int) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMEXPR_NUM_THREADS"):
        env[var] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def _call(command: list[str], env: dict, cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-8000:])
        raise SystemExit(f"command failed ({done.returncode}): {' '.join(command)}")
    return wall, done.stdout


def _worker(kind: str, payload: dict, env: dict, cwd: Path) -> tuple[float, dict]:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", kind,
               "--payload", json.dumps(payload)]
    wall, stdout = _call(command, env, cwd)
    return wall, json.loads(stdout.strip().splitlines()[-1])


def compare(out_dir: Path, direct: dict) -> dict:
    """Max abs difference between xaibids' TSVs and the direct arrays (same NaN pattern)."""
    import numpy as np

    from xaibids.fileio import read_timeseries_tsv

    tsvs = sorted(out_dir.glob("sub-*/func/*_stat-mean_timeseries.tsv"))
    got = {run_key(p): read_timeseries_tsv(p).to_numpy() for p in tsvs}
    if sorted(got) != sorted(direct):
        raise SystemExit(f"xaibids wrote runs {sorted(got)}, the direct route {sorted(direct)}")
    max_abs, max_rel, same_nan, n_regions = 0.0, 0.0, True, None
    for key, expected in direct.items():
        x = got[key]
        same_nan &= bool(np.array_equal(np.isnan(x), np.isnan(expected)))
        ok = ~np.isnan(expected)
        diff = np.abs(x[ok] - expected[ok])
        max_abs = max(max_abs, float(diff.max()))
        max_rel = max(max_rel, float((diff / np.maximum(np.abs(expected[ok]), 1e-12)).max()))
        covered = int(ok.all(axis=0).sum())  # regions with coverage in every volume of the run
        n_regions = covered if n_regions is None else min(n_regions, covered)
    return {"max_abs_diff": max_abs, "max_rel_diff": max_rel, "same_nan_regions": same_nan,
            "regions_with_coverage": n_regions or 0}  # fewest over the runs


def main(argv=None) -> int:
    import argparse

    worker = argparse.ArgumentParser(add_help=False)
    worker.add_argument("--worker", choices=["direct", "xaibids"])
    worker.add_argument("--payload")
    known, _ = worker.parse_known_args(argv)
    if known.worker:  # before importing anything else: the workers time their own imports
        payload = argparse.Namespace(**json.loads(known.payload))
        result = direct_worker(payload) if known.worker == "direct" else xaibids_worker(payload)
        print(json.dumps(result))
        return 0

    from xaibids.validation.benchmark import benchmark_parser

    parser = benchmark_parser(__doc__.split("\n\n")[0],
                              "16 subjects x 2 runs of 200 volumes (several minutes)")
    parser.add_argument("--subjects", type=int, default=8, help="subjects")
    parser.add_argument("--runs", type=int, default=1, help="rest runs per subject")
    parser.add_argument("--volumes", type=int, default=100, help="volumes per run")
    parser.add_argument("--small", type=int, default=2,
                        help="also run xaibids on a dataset of the first SMALL subjects (0: do "
                             "not), to split the overhead into a fixed and a per-run part")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each xaibids mode and size this many times; keep the fastest")
    parser.add_argument("--keep", type=Path, help="make the data and outputs here (kept)")
    args = parser.parse_args(argv)
    if args.device != "cpu":
        parser.error("the participant level runs on the CPU; --device is not used here")
    if args.full:
        args.subjects, args.runs, args.volumes = 16, 2, 200
    if args.subjects < 1 or not 0 <= args.small < args.subjects:
        parser.error("--subjects must be >= 1 and 0 <= --small < --subjects")

    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        return _benchmark(args, args.keep)
    with tempfile.TemporaryDirectory(prefix="xaibids-overhead-") as tmp:
        return _benchmark(args, Path(tmp))


def _benchmark(args, tmp: Path) -> int:
    import numpy as np

    from tests.conftest import make_fmriprep_dataset
    from xaibids.validation.benchmark import write_benchmark_report

    env = _env(args.threads)
    subjects = [f"{i:02d}" for i in range(1, args.subjects + 1)]
    runs = tuple(range(1, args.runs + 1)) if args.runs > 1 else (None,)
    t = time.perf_counter()
    datasets = {n: make_fmriprep_dataset(tmp / f"data-{n}", subjects=subjects[:n], runs=runs,
                                         n_vols=args.volumes, seed=args.random_seed)
                for n in [args.subjects] + ([args.small] if args.small else [])}
    deriv = datasets[args.subjects][1]
    print(f"dataset: {args.subjects} subjects x {len(runs)} run(s) x {args.volumes} volumes "
          f"(20x24x20 voxels of 8 mm) made in {time.perf_counter() - t:.1f} s in {tmp}")
    linear_yaml = tmp / "linear.yml"
    linear_yaml.write_text("plugin: Linear\n")
    tf_min = tmp / "templateflow-min" / "tpl-MNI152NLin6Asym"
    tf_min.mkdir(parents=True, exist_ok=True)
    (tf_min / "template_description.json").write_text(json.dumps(
        {"Identifier": "MNI152NLin6Asym", "Name": "FSL's MNI ICBM 152 non-linear 6th Generation "
         "Asymmetric Average Brain Stereotaxic Registration Model"}))
    env_tf_min = {**env, "TEMPLATEFLOW_HOME": str(tf_min.parent)}
    sizes = [args.subjects] + ([args.small] if args.small else [])

    # (a) nilearn directly
    wall, direct = _worker("direct", {"deriv": str(deriv), "out": str(tmp / "direct"),
                                      "participants": []}, env, tmp)
    direct["wall_s"] = wall
    direct["runs_s"] = float(sum(direct["per_run_s"]))
    direct["fixed_s"] = wall - direct["runs_s"]
    with np.load(tmp / "direct" / "direct.npz") as npz:
        arrays = {key: npz[key] for key in npz.files}
    n_runs = len(direct["per_run_s"])
    per_run_direct = direct["runs_s"] / n_runs
    print(f"\n(a) nilearn directly: {n_runs} runs in {direct['runs_s']:.2f} s "
          f"({per_run_direct:.3f} s/run; first {direct['per_run_s'][0]:.3f} s, of which TSV "
          f"writing {np.mean(direct['per_run_write_s']):.3f} s/run); imports "
          f"{direct['import_s']:.2f} s, atlas {direct['atlas_s']:.2f} s; subprocess wall "
          f"{wall:.2f} s")

    def xaibids_argv(n: int, mode: str, tag: str) -> tuple[list[str], Path]:
        out = tmp / f"out-{tag}"
        raw, derivatives = datasets[n]
        argv = [str(raw), str(out), "participant", "-d", f"fmriprep={derivatives}",
                "--atlas", ATLAS, "--skip-bids-validation", "-w", str(tmp / f"work-{tag}")]
        argv += [a.format(linear_yaml=linear_yaml) for a in MODES[mode]["args"]]
        return argv, out

    # (b) the command line itself, --nprocs 1
    argv, cli_out = xaibids_argv(args.subjects, "nprocs1", "cli")
    script = Path(sys.executable).with_name("xaibids")
    command = ([str(script)] if script.exists() else
               [sys.executable, "-c",
                "import sys; from xaibids.cli.run import main; sys.exit(main())"]) + argv
    cli_wall, _ = _call(command, env, tmp)
    cli_check = compare(cli_out, arrays)
    print(f"(b) xaibids BIDS OUT participant --atlas {ATLAS} --nprocs 1: {cli_wall:.2f} s "
          f"wall; max |xaibids - direct| = {cli_check['max_abs_diff']:.2e} "
          f"(same n/a regions: {cli_check['same_nan_regions']})")

    # (b) per mode and size, phases timed in process
    rows = []
    for mode in args.modes:
        for n in sizes:
            best = None
            for rep in range(max(1, args.repeat)):
                argv, out = xaibids_argv(n, mode, f"{mode}-{n}-{rep}")
                wall, res = _worker("xaibids", {"argv": argv},
                                    env_tf_min if MODES[mode]["tf_min"] else env, tmp)
                if res["code"] != 0:
                    raise SystemExit(f"xaibids exited with {res['code']} in mode {mode}")
                if best is None or wall < best[0]:
                    best = (wall, res, argv, out)
            wall, res, argv, out = best
            keys = [k for k in arrays if k.split("_")[0][4:] in subjects[:n]]
            check = compare(out, {k: arrays[k] for k in keys})
            row = {"mode": mode, "subjects": n, "runs": len(keys), "wall_s": wall,
                   "interpreter_start_s": wall - res["in_process_s"], **res, **check,
                   "direct_runs_s": float(sum(direct["per_run_s"][i]
                                              for i, k in enumerate(direct["runs"])
                                              if k in keys))}
            rows.append(row)
            print(f"  {mode:>16} {n:>3} subjects: {wall:6.2f} s wall, Workflow.run "
                  f"{res['phases_s'].get('Workflow.run', float('nan')):6.2f} s, "
                  f"max diff {check['max_abs_diff']:.1e}")

    # summary
    ratio = cli_wall / direct["runs_s"]
    overhead = cli_wall - direct["runs_s"]
    summary = {
        "n_runs": n_runs,
        "direct_runs_s": direct["runs_s"], "direct_per_run_s": per_run_direct,
        "direct_wall_s": direct["wall_s"], "direct_fixed_s": direct["fixed_s"],
        "cli_wall_s": cli_wall,
        "overhead_s": overhead, "overhead_per_run_s": overhead / n_runs,
        "ratio_cli_over_direct_runs": ratio,
        "overhead_over_direct_wall_s": cli_wall - direct["wall_s"],
        "ratio_cli_over_direct_wall": cli_wall / direct["wall_s"],
        "split": {}, "split_wall": {},
    }
    for mode in args.modes:
        big = next(r for r in rows if r["mode"] == mode and r["subjects"] == args.subjects)
        small = next((r for r in rows if r["mode"] == mode and r["subjects"] == args.small), None)
        if small is None or big["runs"] == small["runs"]:
            continue
        per_run = (big["wall_s"] - small["wall_s"]) / (big["runs"] - small["runs"])
        fixed = big["wall_s"] - per_run * big["runs"]
        summary["split_wall"][mode] = {
            "per_run_s": per_run, "fixed_s": fixed,
            "overhead_per_run_s": per_run - per_run_direct,
            "overhead_fixed_s": fixed - direct["fixed_s"],
        }

        def after_imports(row):
            return row["in_process_s"] - row["phases_s"]["imports"]

        def startup(row):
            return row["interpreter_start_s"] + row["phases_s"]["imports"]

        per_run = (after_imports(big) - after_imports(small)) / (big["runs"] - small["runs"])
        fixed = (startup(big) + startup(small)) / 2 + after_imports(big) - per_run * big["runs"]
        summary["split"][mode] = {
            "per_run_s": per_run, "fixed_s": fixed,
            "startup_s": (startup(big) + startup(small)) / 2,
            "workflow_run_per_run_s": (big["phases_s"]["Workflow.run"]
                                       - small["phases_s"]["Workflow.run"])
            / (big["runs"] - small["runs"]),
            "overhead_per_run_s": per_run - per_run_direct,
            "overhead_fixed_s": fixed - direct["fixed_s"],
        }

    print(f"\nParticipant level, {n_runs} runs of {args.volumes} volumes "
          f"({args.subjects} subjects x {len(runs)} run(s)), atlas {ATLAS}, confounds "
          f"{STRATEGY}, {args.threads} thread(s) per process")
    print(f"{'route':<42} {'runs':>4} {'wall':>8} {'per run':>8} {'ratio':>6}  max |diff|")
    print(f"{'nilearn directly, sum over runs':<42} {n_runs:>4} {direct['runs_s']:>7.2f}s "
          f"{per_run_direct:>7.3f}s {1.0:>6.2f}  -")
    print(f"{'nilearn directly, subprocess wall':<42} {n_runs:>4} {direct['wall_s']:>7.2f}s "
          f"{direct['wall_s'] / n_runs:>7.3f}s {direct['wall_s'] / direct['runs_s']:>6.2f}  -")
    print(f"{'xaibids command line, --nprocs 1':<42} {n_runs:>4} {cli_wall:>7.2f}s "
          f"{cli_wall / n_runs:>7.3f}s {ratio:>6.2f}  {cli_check['max_abs_diff']:.1e}")
    for row in rows:
        label = f"xaibids main(), {row['mode']}"
        print(f"{label:<42} {row['runs']:>4} {row['wall_s']:>7.2f}s "
              f"{row['wall_s'] / row['runs']:>7.3f}s "
              f"{row['wall_s'] / row['direct_runs_s']:>6.2f}  {row['max_abs_diff']:.1e}")
    print(f"\noverhead of the command line (--nprocs 1) over nilearn's runs: {overhead:.2f} s "
          f"({overhead / n_runs:.3f} s per run); over the direct subprocess's wall: "
          f"{cli_wall - direct['wall_s']:.2f} s")

    if summary["split"]:
        print(f"\nfixed + per-run split (line through {args.small} and {args.subjects} subjects, "
              "fitted after the imports; start-up = interpreter + imports):")
        print(f"{'route':<26} {'fixed':>8} {'start-up':>9} {'per run':>8} {'overhead fixed':>15} "
              f"{'overhead/run':>13} {'Workflow.run/run':>17}")
        print(f"{'nilearn directly':<26} {direct['fixed_s']:>7.2f}s "
              f"{direct['fixed_s'] - direct['atlas_s']:>8.2f}s {per_run_direct:>7.3f}s "
              f"{'-':>15} {'-':>13} {'-':>17}")
        for mode, s in summary["split"].items():
            print(f"{'xaibids ' + mode:<26} {s['fixed_s']:>7.2f}s {s['startup_s']:>8.2f}s "
                  f"{s['per_run_s']:>7.3f}s {s['overhead_fixed_s']:>14.2f}s "
                  f"{s['overhead_per_run_s']:>12.3f}s {s['workflow_run_per_run_s']:>16.3f}s")

    phase_names = []
    for row in rows:
        phase_names += [p for p in row["phases_s"] if p not in phase_names]
    print(f"\nphases in process at {args.subjects} subjects (seconds; nodes: time inside "
          "the nodes, summed):")
    big_rows = [r for r in rows if r["subjects"] == args.subjects]
    print(f"{'phase':<36}" + "".join(f" {r['mode']:>16}" for r in big_rows))
    lines = [("interpreter start", lambda r: r["interpreter_start_s"])]
    lines += [(p, functools.partial(lambda r, key: r["phases_s"].get(key, 0.0), key=p))
              for p in phase_names]
    lines += [("  nodes: extract", lambda r: r["node_s"].get("extract", 0.0)),
              ("  nodes: ds_timeseries", lambda r: r["node_s"].get("ds_timeseries", 0.0)),
              ("  Workflow.run - nodes", lambda r: r["phases_s"].get("Workflow.run", 0.0)
               - sum(r["node_s"].values())),
              ("wall", lambda r: r["wall_s"])]
    for name, get in lines:
        print(f"{name:<36}" + "".join(f" {get(r):>16.2f}" for r in big_rows))
    print("('of which' rows are part of the row above them; with nprocs2 the nodes overlap, so "
          "'Workflow.run - nodes' is not the scheduling time there)")

    report = {
        "benchmark": "extraction_overhead",
        "description": "Wall time of the participant level (xaibids command line, Nipype) "
                       "against the same ROI extraction done with nilearn directly, on the same "
                       "fMRIPrep-like runs; timecourses compared.",
        "settings": {"subjects": args.subjects, "repeat": args.repeat,
                     "runs_per_subject": len(runs),
                     "volumes": args.volumes, "grid": [20, 24, 20], "voxel_mm": 8,
                     "atlas": ATLAS, "confounds": STRATEGY, "small": args.small,
                     "modes": args.modes, "random_seed": args.random_seed,
                     "threads": args.threads},
        "direct": direct,
        "cli": {"argv": ["xaibids", "BIDS", "OUT", "participant", "-d",
                         "fmriprep=DERIV", "--atlas", ATLAS, "--skip-bids-validation",
                         "-w", "WORK", "--nprocs", "1"],
                "wall_s": cli_wall, **cli_check},
        "rows": rows,
        "summary": summary,
    }
    output = args.output or HERE / "results" / "extraction_overhead.json"
    write_benchmark_report(report, output, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
