"""Ground-truth benchmarks: simulate, train the ensemble, score against the seeds' numbers.

Used by the CI-sized tests (``tests/test_validation_benchmarks.py``) and the benchmark scripts
(``benchmarks/bench_lewis2023_table1.py``, ``benchmarks/bench_strock2025_grid.py``). The data are
simulated in memory (:mod:`xaibids.simulate`; the same arrays ``xaibids-simulate`` writes), the
ensemble is :func:`xaibids.learning.ensemble.run_ensemble` and the scoring
:func:`xaibids.validation.score.score_maps` — the code paths of ``xaibids … group`` and
``xaibids-validate`` without the file round trip.

Paper numbers
-------------
:data:`LEWIS2023_TABLE1`: Lewis et al. 2023, Table 1 (mean and SD over 3 000 test samples) for its LSTM +
attention model and for input-cell attention. :data:`STROCK2025_F1`: Strock et al. 2025 reports F1 = 1.0 for
IG at the 0.5 threshold in every RNN condition it shows (Fig 2).

CI presets
----------
:data:`CI_PRESETS` hold the settings the tests use; ``docs/benchmarks.md`` explains each choice
and records what they give. In short:

* ``boxes``: Lewis et al. 2023's geometry (200 steps × 30 features, 10 × 15 box) with the box perturbation
  drawn from N(1, 1) instead of the simulator's default N(0, 1). Lewis et al. 2023 leaves the noise's
  parameters open; its boxes are visible in Fig 4 and its models reach 99 % test accuracy, whereas
  zero-mean noise (a variance change only) is not learnable at CI size (chance accuracy with
  1 000 subjects). ``lstm-attn`` at its default size (hidden 64), Adam at 5e-3.
* ``rnn-ei``: Strock et al. 2025's condition of the issue (0 dB, 5 % prevalence, δ = 0.3, 100 nodes,
  100 volumes) on the simulator's default model, which follows the seed's code
  (``excitability="input"``), with the seed's 400 subjects. ``stdnn`` with 4 channels per layer,
  Adam at 3e-3 with weight decay 0.1, batches of 128, 40 epochs without early stopping. Without
  the weight decay the networks spread their weights over the 95 unaffected nodes, which follow
  the network's global activity: the affected nodes still rank first, but Strock et al. 2025's 0.5
  threshold selects 26 nodes (F1 0.32 with 1 200 subjects; ``docs/benchmarks.md``).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

#: Lewis et al. 2023, Table 1: mean (SD) over 3 000 holdout samples.
LEWIS2023_TABLE1 = {
    "boxes": {
        "lstm-attn": {"euclidean_distance": (1.24, 0.23), "overlap": (0.33, 0.07),
                      "weighted_jaccard": (0.22, 0.04)},
        "input-cell-attention": {"euclidean_distance": (2.35, 0.45), "overlap": (0.15, 0.05),
                                 "weighted_jaccard": (0.07, 0.02)},
    },
    "var": {
        "lstm-attn": {"euclidean_distance": (4.57, 1.16), "overlap": (0.56, 0.31),
                      "weighted_jaccard": (0.10, 0.05)},
        "input-cell-attention": {"euclidean_distance": (5.34, 1.42), "overlap": (0.17, 0.14),
                                 "weighted_jaccard": (0.05, 0.03)},
    },
}
#: Lewis et al. 2023, §3.1: holdout accuracy of its LSTM + attention model.
LEWIS2023_ACCURACY = {"boxes": 0.99, "var": 0.92}
#: Strock et al. 2025, Fig 2: F1 of IG at the 0.5 threshold in every RNN condition.
STROCK2025_F1 = 1.0
#: Strock et al. 2025 Fig 2's conditions (SNR dB, prevalence, severity), keyed by a short name.
STROCK2025_CONDITIONS = {
    "snr-10": (-10.0, 0.05, 0.3),
    "snr0": (0.0, 0.05, 0.3),
    "snr10": (10.0, 0.05, 0.3),
    "prev0.01": (0.0, 0.01, 0.3),
    "prev0.10": (0.0, 0.10, 0.3),
    "sev0.1": (0.0, 0.05, 0.1),
    "sev0.5": (0.0, 0.05, 0.5),
}


@dataclass
class Preset:
    """A benchmark setting: simulator, its options, and the ensemble's settings."""

    kind: str
    n_subjects: int
    simulation: dict = field(default_factory=dict)
    ensemble: dict = field(default_factory=dict)
    seed: int = 0
    #: Seed of a shuffle of the labels (a null dataset: no class effect left); None keeps them.
    shuffle: int | None = None


CI_PRESETS = {
    "boxes": Preset(
        kind="boxes", n_subjects=200, simulation={"box_mean": 1.0, "box_std": 1.0},
        ensemble=dict(model="lstm-attn", n_folds=2, n_models=2, epochs=20, batch_size=32,
                      learning_rate=5e-3, patience=5, val_fraction=0.2, ig_steps=10,
                      attribution_batch_size=64)),
    "rnn-ei": Preset(
        kind="rnn-ei", n_subjects=400,
        simulation={"snr_db": 0.0, "prevalence": 0.05, "severity": 0.3},
        ensemble=dict(model="stdnn", n_folds=2, n_models=2, epochs=40, batch_size=128,
                      learning_rate=3e-3, weight_decay=0.1, val_fraction=0.0, ig_steps=10,
                      attribution_batch_size=64, model_kwargs={"channels": (4, 4)})),
}


def benchmark_parser(description: str, full_help: str | None):
    """The options every ``benchmarks/bench_*.py`` script shares (add the script's own);
    ``--full`` only where the script has a larger size (``full_help`` given)."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    if full_help is not None:
        parser.add_argument("--full", action="store_true", help=full_help)
    parser.add_argument("--threads", type=int, default=1,
                        help="PyTorch threads (1 avoids oversubscription on shared machines)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--random-seed", type=int, default=0)
    parser.add_argument("--output", type=Path, help="JSON file (default benchmarks/results/...)")
    return parser


def write_benchmark_report(report: dict, output: Path, args) -> Path:
    """Add the machine and the run's options to ``report`` and write it as JSON to ``output``."""
    import json
    import os
    import platform

    import torch

    report["environment"] = {
        "python": platform.python_version(), "torch": torch.__version__,
        "numpy": np.__version__, "machine": platform.machine(),
        "processor": platform.processor(), "cpu_count": os.cpu_count(),
        "threads": args.threads, "device": args.device,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {output}")
    return output


def simulate_in_memory(kind: str, n_subjects: int, seed: int = 0, **options):
    """The :class:`~xaibids.simulate.base.TimeseriesSimulation` of a timeseries kind."""
    from xaibids.simulate.rnn import simulate_rnn_ei
    from xaibids.simulate.synthetic import simulate_boxes, simulate_var

    funcs = {"boxes": simulate_boxes, "var": simulate_var, "rnn-ei": simulate_rnn_ei}
    if kind not in funcs:
        raise ValueError(f"benchmarks run on {', '.join(funcs)}, not {kind!r}.")
    return funcs[kind](n_subjects=n_subjects, seed=seed, **options)


def as_dataset(sim):
    """A :class:`~xaibids.learning.dataset.TimeseriesDataset` of a simulation (classes in the
    order of its group levels, one sample per subject)."""
    from xaibids.learning.dataset import TimeseriesDataset
    from xaibids.simulate.bidsio import subject_labels

    subjects = [f"sub-{label}" for label in subject_labels(sim.n_subjects)]
    classes = sorted(sim.group_levels)
    y = np.array([classes.index(sim.group_levels[c]) for c in sim.labels])
    return TimeseriesDataset(X=sim.data, y=y, classes=classes, subjects=subjects,
                             sources=[f"{s}_simulated" for s in subjects],
                             feature_names=list(sim.feature_names))


def run_benchmark(preset: Preset, random_seed: int = 0, device: str = "cpu",
                  checkpoint_dir: str | Path | None = None, progress: bool = False) -> dict:
    """Simulate, train and attribute, and score against the ground truth.

    Returns a dict with ``table`` (the :func:`~xaibids.validation.score.score_maps` table of the
    stabilized maps; the ``importance_*`` rows score the default selection rule, withheld when
    the classifier is not above chance), ``single_model_table`` (the same for the first model of
    each fold only, the unstabilized reference), ``summary`` (metric → mean over subjects or
    group value), ``accuracy`` (mean ensemble accuracy over folds), ``verdict``
    (:class:`~xaibids.stats.verdict.Verdict` of the out-of-fold predictions), ``seconds``
    (``simulate``, ``ensemble``, ``score``) and ``settings``.
    """
    from dataclasses import replace

    from xaibids.learning.ensemble import EnsembleConfig, config_to_dict, run_ensemble
    from xaibids.stats.verdict import out_of_fold_verdict

    t0 = time.perf_counter()
    sim = simulate_in_memory(preset.kind, preset.n_subjects, preset.seed, **preset.simulation)
    dataset = as_dataset(sim)
    if preset.shuffle is not None:
        dataset = replace(dataset, y=np.random.default_rng(preset.shuffle).permutation(dataset.y))
    t1 = time.perf_counter()
    config = EnsembleConfig(random_seed=random_seed, device=device, **preset.ensemble)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_ensemble(dataset, config, checkpoint_dir or tmp, progress=progress)
    t2 = time.perf_counter()
    verdict = out_of_fold_verdict(result.map_info, len(dataset.classes), random_state=random_seed)
    withheld = None if verdict.above_chance else "the classifier is not above chance"
    tables = {"stabilized": score_simulated_maps(
                  sim, dataset, result.maps["ig"], withheld=withheld,
                  selection_importance=result.mean_model_importance.get("ig")),
              "single": score_simulated_maps(sim, dataset, result.single_model_maps["ig"],
                                             withheld=withheld)}
    t3 = time.perf_counter()
    ens = result.performance[result.performance["model"].astype(str) == "ensemble"]
    return {
        "table": tables["stabilized"],
        "single_model_table": tables["single"],
        "summary": summary(tables["stabilized"]),
        "single_model_summary": summary(tables["single"]),
        "accuracy": float(ens["accuracy"].mean()),
        "verdict": verdict,
        "seconds": {"simulate": t1 - t0, "ensemble": t2 - t1, "score": t3 - t2},
        "settings": {"kind": preset.kind, "n_subjects": preset.n_subjects, "seed": preset.seed,
                     "shuffle": preset.shuffle,
                     "simulation": dict(preset.simulation),
                     "ensemble": {k: (list(v) if isinstance(v, tuple) else v)
                                  for k, v in config_to_dict(config).items()}},
    }


def score_simulated_maps(sim, dataset, maps: np.ndarray, rows=None,
                         withheld: str | None = None,
                         selection_importance: np.ndarray | None = None) -> pd.DataFrame:
    """Score stabilized maps against a simulation's truth (:func:`~xaibids.validation.score.
    score_maps`, with the group importance of these maps for the importance F1).

    ``maps`` hold the subjects ``rows`` of ``dataset`` (all subjects when None), in that order;
    ``withheld``: why nothing may be selected (the verdict) and ``selection_importance``: the
    per-sample importance the selection rule tests, as in the group level.
    """
    from xaibids.stats.importance import group_importance
    from xaibids.validation.score import score_maps

    rows = np.arange(len(dataset.y)) if rows is None else np.asarray(rows)
    relevant = [set(sim.relevant_features[i]) for i in rows]
    shared = {frozenset(r) for r in relevant}
    importance = group_importance(maps, dataset.y[rows], dataset.classes, dataset.feature_names,
                                  n_boot=0, withheld=withheld,
                                  selection_importance=selection_importance)
    return score_maps(maps, dataset.feature_names, [dataset.subjects[i] for i in rows], "ig",
                      masks=[sim.truth[i] for i in rows], relevant=relevant,
                      dataset_relevant=set(next(iter(shared))) if len(shared) == 1 else None,
                      importance=importance)


def summary(table: pd.DataFrame) -> dict[str, dict]:
    """Dataset-level rows as ``metric → {"value", "sd", "n"}`` (NaN → None)."""
    rows = table[table["subject"].isna()]
    out = {}
    for row in rows.itertuples():
        out[row.metric] = {key: (None if pd.isna(val) else float(val))
                           for key, val in (("value", row.value), ("sd", row.sd), ("n", row.n))}
    return out
