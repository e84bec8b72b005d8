"""Write a simulated timeseries dataset as BIDS raw + an XCP-D-style timeseries derivative.

Layout (``OUT_DIR`` = the raw dataset)::

    OUT_DIR/
      dataset_description.json  README  participants.tsv  participants.json
      sub-<l>/sub-<l>_scans.tsv                      (empty: no raw imaging files)
      derivatives/timeseries/
        dataset_description.json  README  .bidsignore  simulation.json
        groundtruth.tsv                              (one row per subject)
        groundtruth_features.tsv, <tables>.tsv       (kind-specific, see README)
        sub-<l>/func/sub-<l>_task-<t>_atlas-<a>_stat-mean_timeseries.tsv (+ .json)
        sub-<l>/func/sub-<l>_task-<t>_atlas-<a>_desc-groundtruth_mask.tsv (+ .json)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from xaibids import __version__
from xaibids.fileio import write_timeseries_tsv
from xaibids.simulate import bidsio
from xaibids.simulate.base import TimeseriesSimulation

TOOL = "xaibids-simulate"
TIMESERIES_DERIVATIVE = "timeseries"
#: Files of the timeseries derivative that the BIDS schema does not know.
TIMESERIES_BIDSIGNORE = ["*_timeseries.tsv", "*_timeseries.json", "*_mask.tsv", "*_mask.json",
                         "simulation.json", "groundtruth*.tsv", "var_*.tsv", "rnn_*.tsv"]


def participants_frame(sim_labels: np.ndarray, levels: tuple[str, str],
                       labels: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"participant_id": [f"sub-{lab}" for lab in labels],
                         "group": [levels[c] for c in sim_labels]})


def group_sidecar(levels: tuple[str, str], descriptions: tuple[str, str]) -> dict:
    return {"group": {
        "Description": "Simulated class of the participant (the classification target).",
        "Levels": {levels[0]: f"class 0: {descriptions[0]}",
                   levels[1]: f"class 1: {descriptions[1]}"},
    }}


def command_line(kind: str, params: dict) -> str:
    """The ``xaibids-simulate`` call that reproduces a dataset (OUT_DIR left symbolic)."""
    opts = []
    for key, value in params.items():
        if key in ("n_subjects", "seed") or not _is_option(kind, key):
            continue
        opts.append(f"--{key.replace('_', '-')} {value}")
    return (f"xaibids-simulate {kind} OUT_DIR --n-subjects {params['n_subjects']} "
            f"--seed {params['seed']}" + "".join(f" {o}" for o in opts))


def _is_option(kind: str, key: str) -> bool:
    from xaibids.simulate import KIND_OPTIONS

    return key in KIND_OPTIONS.get(kind, ())


def write_timeseries_dataset(sim: TimeseriesSimulation, root: Path) -> None:
    """Write ``sim`` into the (empty, staging) folder ``root``."""
    root = Path(root)
    labels = bidsio.subject_labels(sim.n_subjects)
    deriv = root / "derivatives" / TIMESERIES_DERIVATIVE
    reproduce = command_line(sim.kind, sim.params)

    # ---- raw dataset -------------------------------------------------------------------
    bidsio.write_dataset_description(
        root, f"xaibids simulated dataset: {sim.kind}", "raw", TOOL,
        f"Simulated '{sim.kind}' dataset with known ground truth.")
    bidsio.write_participants(root, participants_frame(sim.labels, sim.group_levels, labels),
                              group_sidecar(sim.group_levels, sim.group_descriptions))
    bidsio.write_scans_placeholders(root, labels)
    bidsio.write_text(root / "README", raw_readme(sim, reproduce))

    # ---- timeseries derivative -----------------------------------------------------------
    bidsio.write_dataset_description(
        deriv, f"xaibids simulated timeseries: {sim.kind}", "derivative", TOOL,
        f"Simulated '{sim.kind}' timeseries (XCP-D layout) with ground-truth masks.")
    bidsio.write_bidsignore(deriv, TIMESERIES_BIDSIGNORE)
    bidsio.write_json(deriv / "simulation.json", {
        "Kind": sim.kind, "Tool": TOOL, "Version": __version__, "CommandLine": reproduce,
        "Parameters": sim.params})
    bidsio.write_text(deriv / "README", derivative_readme(sim, reproduce))
    for name, table in sim.tables.items():
        bidsio.write_tsv(table, deriv / f"{name}.tsv")
    rows = []
    for i, lab in enumerate(labels):
        func = deriv / f"sub-{lab}" / "func"
        func.mkdir(parents=True, exist_ok=True)
        stem = f"sub-{lab}_task-{sim.task}_atlas-{sim.atlas}"
        ts_name = f"{stem}_stat-mean_timeseries.tsv"
        mask_name = f"{stem}_desc-groundtruth_mask.tsv"
        write_timeseries_tsv(sim.data[i], sim.feature_names, func / ts_name)
        bidsio.write_json(func / f"{stem}_stat-mean_timeseries.json", {
            "Description": f"Simulated '{sim.kind}' timeseries: one row per time step, one "
                           "column per feature.",
            "Sources": ["bids::simulation.json"],
            "Atlas": sim.atlas,
            "RepetitionTime": sim.repetition_time,
            "SamplingFrequency": 1.0 / sim.repetition_time,
            "GroundTruth": mask_name,
        })
        mask = pd.DataFrame(sim.truth[i].astype(np.int8), columns=sim.feature_names)
        bidsio.write_tsv(mask, func / mask_name)
        bidsio.write_json(func / f"{stem}_desc-groundtruth_mask.json", {
            "Description": "Ground truth of the timeseries beside it: 1 where the element "
                           "carries class information, 0 elsewhere (same rows and columns).",
            "Sources": [f"bids::sub-{lab}/func/{ts_name}"],
        })
        rows.append({"participant_id": f"sub-{lab}", "group": sim.group_levels[sim.labels[i]],
                     "onset": int(sim.onsets[i]), "duration": int(sim.durations[i]),
                     "relevant_features": ";".join(sim.relevant_features[i])})
    bidsio.write_tsv(pd.DataFrame(rows), deriv / "groundtruth.tsv")


def raw_readme(sim: TimeseriesSimulation, reproduce: str) -> str:
    n0 = int((sim.labels == 0).sum())
    return f"""# xaibids simulated dataset: `{sim.kind}`

Generated by `{TOOL}` (xaibids {__version__}) with

    {reproduce}

{sim.description}

## Layout

- `participants.tsv`: `participant_id` and the two-class column `group`
  (`{sim.group_levels[0]}`: {n0} participants, `{sim.group_levels[1]}`: {sim.n_subjects - n0};
  levels described in `participants.json`).
- `sub-<label>/sub-<label>_scans.tsv`: empty. This raw dataset has no imaging files; the
  simulated measurements are the timeseries in `derivatives/{TIMESERIES_DERIVATIVE}/`.
- `derivatives/{TIMESERIES_DERIVATIVE}/`: timeseries in XCP-D layout
  (`sub-<label>/func/sub-<label>_task-{sim.task}_atlas-{sim.atlas}_stat-mean_timeseries.tsv`)
  and the ground truth; see the README there.

Run xaibids on it with, e.g.,

    xaibids OUT_DIR OUT_DIR/derivatives/xaibids group \\
        -d {TIMESERIES_DERIVATIVE}=OUT_DIR/derivatives/{TIMESERIES_DERIVATIVE} --target group

The same command with the same seed gives byte-identical files.
"""


def derivative_readme(sim: TimeseriesSimulation, reproduce: str) -> str:
    tables = "".join(f"- `{name}.tsv`: {_TABLE_DOC.get(name, 'dataset-level table')}.\n"
                     for name in sim.tables)
    return f"""# Simulated timeseries (`{sim.kind}`) with ground truth

Generated by `{TOOL}` (xaibids {__version__}) with `{reproduce}`.

{sim.description}

## Files

- `sub-<label>/func/sub-<label>_task-{sim.task}_atlas-{sim.atlas}_stat-mean_timeseries.tsv`:
  the data, {sim.data.shape[1]} rows (time steps, `RepetitionTime` {sim.repetition_time:g} s in
  the JSON sidecar) × {sim.data.shape[2]} columns (features), XCP-D format.
- `sub-<label>/func/sub-<label>_task-{sim.task}_atlas-{sim.atlas}_desc-groundtruth_mask.tsv`:
  the ground truth of the same shape and header, `1` where the element carries class
  information (truly relevant), `0` elsewhere. Compare attribution maps with it.
- `groundtruth.tsv`: one row per participant: `participant_id`, `group`, `onset` (first
  relevant time step, 0-based row index), `duration` (number of relevant steps) and
  `relevant_features` (`;`-separated column names).
{tables}- `simulation.json`: every parameter, the seed and the command line.

Files that the BIDS schema does not know are listed in `.bidsignore`.
"""


_TABLE_DOC = {
    "groundtruth_features": "one row per feature: `feature`, `relevant` (1 = affected node, "
                            "the dataset-level ground truth) and the excitability of each group",
    "rnn_adjacency": "adjacency matrix of the small-world graph (row `node` → columns)",
    "var_A": "VAR transition matrix A of the background (rows and columns are features)",
    "var_B": "VAR transition matrix B of the window dynamics of group `class0`",
    "var_C": "VAR transition matrix C of the window dynamics of group `class1`",
}
