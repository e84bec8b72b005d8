"""Group level: assemble timecourses, train seeded ensembles, write stabilized attributions.

Timecourses come from the derivatives datasets given with ``-d`` or from earlier participant
runs in OUTPUT_DIR; subjects that have neither are extracted first (participant step).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd

from xaibids.errors import XaibidsError
from xaibids.features.io import write_timeseries_tsv
from xaibids.inputs.layout import build_layout, collect_timeseries, read_participants
from xaibids.outputs.derivatives import atomic_write_text, source_uri

LOGGER = logging.getLogger("xaibids")


def _atlas_of(path: str) -> str | None:
    match = re.search(r"_atlas-([A-Za-z0-9]+)_", Path(path).name)
    return match.group(1) if match else None


def gather_timeseries(config, atlas, subjects) -> tuple[list[tuple[str, str]], str]:
    """Timeseries files of every selected subject, all of one atlas; returns (runs, atlas label).

    The atlas given with ``--atlas`` is used when its files exist; otherwise the one atlas the
    derivatives provide (several → error asking to choose).
    """
    ex = config.execution
    derivatives = dict(ex.derivatives)
    if (Path(ex.output_dir) / "dataset_description.json").exists():
        derivatives.setdefault("xaibids", ex.output_dir)
    layout = build_layout(Path(ex.bids_dir), derivatives, Path(ex.work_dir))
    files = {s.subject: collect_timeseries(layout, s.subject, ex.bids_filters, ex.session_label,
                                           ex.task_id) for s in subjects}
    labels = sorted({_atlas_of(f) for fs in files.values() for f in fs} - {None})
    if atlas.name in labels:
        chosen = atlas.name
    elif len(labels) == 1:
        chosen = labels[0]
        LOGGER.info("Using the %s timeseries found in the derivatives (--atlas %s has none).",
                    chosen, config.workflow.atlas)
    elif not labels:
        raise XaibidsError("No timeseries TSVs (*_stat-mean_timeseries.tsv) were found or made.")
    else:
        raise XaibidsError(
            f"The derivatives hold timeseries of several atlases ({', '.join(labels)}); choose "
            "one with --atlas (a bundled name, or the atlas file)."
        )
    runs = []
    for subject, paths in files.items():
        chosen_paths = [p for p in paths if _atlas_of(p) == chosen]
        # one file per run: the first dataset listed wins over duplicates in OUTPUT_DIR
        seen = set()
        for path in chosen_paths:
            key = Path(path).name
            if key not in seen:
                seen.add(key)
                runs.append((f"sub-{subject}", path))
    return runs, chosen


def _jsonable(obj):
    """Plain Python types for JSON sidecars (numpy scalars and arrays converted)."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def sink(output_dir: Path, source: str, in_file: Path, meta: dict, **entities) -> str:
    """Write ``in_file`` under ``output_dir`` named from ``source`` with niworkflows' sink."""
    from xaibids.interfaces.bids import DerivativesDataSink

    node = DerivativesDataSink(base_directory=str(output_dir), source_file=source,
                               in_file=str(in_file), dismiss_entities=("statistic",),
                               meta_dict=_jsonable(meta), **entities)
    return node.run(cwd=str(in_file.parent)).outputs.out_file


def _fresh(path: Path) -> Path:
    """``path`` with any old file removed first.

    DerivativesDataSink hard-links a file it does not need to change into OUTPUT_DIR, so
    rewriting a scratch file in place would also rewrite every output linked to it.
    """
    path.unlink(missing_ok=True)
    return path


def paint_regions(atlas, values: pd.Series) -> nb.Nifti1Image:
    """A float image on the atlas grid holding each region's value (0 elsewhere)."""
    data = np.asarray(atlas.img.dataobj)
    out = np.zeros(data.shape, dtype=np.float32)
    index_of = dict(zip(atlas.labels["name"], atlas.labels["index"]))
    for name, value in values.items():
        if name in index_of and np.isfinite(value):
            out[data == index_of[name]] = value
    img = nb.Nifti1Image(out, atlas.img.affine)
    img.header.set_xyzt_units("mm")
    img.header.set_qform(atlas.img.affine, code=4 if atlas.space else 2)
    img.header.set_sform(atlas.img.affine, code=4 if atlas.space else 2)
    return img


def group_description(ens_config, dataset, cv_group: str) -> str:
    """Methods paragraph of the group level, from the configuration actually used."""
    model_text = {
        "stdnn": "a spatiotemporal deep neural network (two 1D convolution blocks with ReLU and "
                 "pooling, adaptive average pooling over time and a linear classifier)",
        "lstm-attn": "a bidirectional LSTM with additive attention over time steps and a linear "
                     "classifier",
        "linear": "a linear softmax classifier on the flattened timecourses",
    }[ens_config.model]
    folds = f"{ens_config.n_folds}-fold stratified cross-validation" + (
        f" keeping each value of '{cv_group}' within one fold" if cv_group else "")
    stab = {
        "closest": "for each test subject, the map of the model closest (Euclidean distance "
                   "weighted by the model's loss on that subject) to the mean map over the "
                   "fold's models was selected",
        "mean": "the maps of the fold's models were averaged",
        "median": "the element-wise median of the fold's models' maps was taken",
        "none": "the map of the fold's first model was used (no stabilization)",
    }[ens_config.stabilize]
    return (
        f"The {len(dataset.classes)} classes ({', '.join(dataset.classes)}) of "
        f"{len(set(dataset.subjects))} subjects were classified from their regional timecourses "
        f"({dataset.X.shape[1]} time points × {dataset.X.shape[2]} features, each feature "
        f"standardized with the mean and standard deviation of the training subjects) with "
        f"{model_text}, implemented in PyTorch [@pytorch]. Within {folds}, an ensemble of "
        f"{ens_config.n_models} models with different random initializations (seeds derived from "
        f"master seed {ens_config.random_seed}) was trained per fold with Adam (learning rate "
        f"{ens_config.learning_rate:g}, batch size {ens_config.batch_size}, at most "
        f"{ens_config.epochs} epochs, early stopping with patience {ens_config.patience} on a "
        f"{ens_config.val_fraction:.0%} validation split). Feature attributions of each test "
        f"subject were computed out of fold with Integrated Gradients [@sundararajan2017] in "
        f"Captum [@captum] ({ens_config.ig_steps} steps, {ens_config.baseline} baseline, no "
        f"multiplication by the input, for the true class); {stab}. The resulting map was made "
        f"non-negative ({ens_config.positive}) and normalized to sum to one. Group importance "
        "of a feature is its time-summed attribution averaged over subjects, max-normalized; "
        "features at or above 0.5 are reported as selected, and Cohen's d compares the "
        "time-summed attributions of the two classes."
    )


def run_group(config, atlas, subjects) -> int:
    """Run the group level; returns the exit code."""
    from xaibids.cli.participant import prepare_output, run_participant, write_atlas_files
    from xaibids.learning.dataset import assemble_dataset
    from xaibids.learning.ensemble import EnsembleConfig, run_ensemble
    from xaibids.outputs.boilerplate import workflow_description, write_boilerplate
    from xaibids.stats.importance import group_importance
    from xaibids.workflows.base import init_xaibids_participant_wf

    ex, lc, ac = config.execution, config.learning, config.attribution
    out = Path(ex.output_dir)
    participants = read_participants(Path(ex.bids_dir))
    if lc.target not in participants.columns:
        raise XaibidsError(
            f"--target {lc.target!r} is not a column of {Path(ex.bids_dir) / 'participants.tsv'}; "
            f"its columns are {', '.join(participants.columns)}."
        )
    existing = {p.name.split("_")[0][4:] for p in out.glob(
        f"sub-*/**/*_atlas-{atlas.name}_stat-mean_timeseries.tsv")}
    to_extract = [s for s in subjects
                  if s.bold_runs and not s.timeseries and s.subject not in existing]
    if to_extract:
        LOGGER.info("Running the participant step for %d subject(s) without timecourses.",
                    len(to_extract))
        if run_participant(config, atlas, to_extract) != 0:
            raise XaibidsError("The participant step failed for some subjects (see above); "
                               "fix them or leave them out with --participant-label.")
    else:
        prepare_output(config, atlas)

    runs, atlas_label = gather_timeseries(config, atlas, subjects)
    extracted = [s for s in subjects if s.bold_runs and not s.timeseries]
    participant_text = (
        workflow_description(init_xaibids_participant_wf(
            config, extracted, atlas, write_atlas_files(config, atlas),
            {s.subject: "" for s in extracted}))
        if extracted else
        f"Regional timecourses ({atlas_label} atlas) were read from the derivatives dataset(s) "
        f"{', '.join(config.execution.derivatives)} and analysed with xaibids "
        f"{config.execution.version}."
    )
    try:
        dataset = assemble_dataset(runs, participants, lc.target, lc.cv_group or None,
                                   lc.length_policy)
    except ValueError as err:
        raise XaibidsError(str(err)) from None
    LOGGER.info("Group level: %d run(s) of %d subject(s), %d time points × %d features, "
                "classes %s.", len(dataset.subjects), len(set(dataset.subjects)),
                dataset.X.shape[1], dataset.X.shape[2], ", ".join(dataset.classes))
    ens_config = EnsembleConfig(
        model=lc.model, n_folds=lc.n_folds, n_models=lc.n_models, epochs=lc.epochs,
        batch_size=lc.batch_size, learning_rate=lc.learning_rate, weight_decay=lc.weight_decay,
        patience=lc.patience, val_fraction=lc.val_fraction, device=lc.device,
        random_seed=config.seeds.random_seed, attribution=tuple(ac.attribution),
        ig_steps=ac.ig_steps, baseline=ac.baseline, stabilize=ac.stabilize,
        positive=ac.positive, attribution_batch_size=ac.attribution_batch_size,
    )
    write_boilerplate(participant_text + "\n\n" + group_description(ens_config, dataset,
                                                                      lc.cv_group),
                      out / "logs")
    if ex.boilerplate_only:
        LOGGER.info("Boilerplate written to %s", out / "logs" / "CITATION.md")
        return 0
    import torch

    torch.set_num_threads(max(1, config.nipype.omp_nthreads))
    group_dir = out / "group"
    result = run_ensemble(dataset, ens_config, group_dir / "checkpoints", progress=True)
    if atlas.name != atlas_label:
        LOGGER.warning(
            "The timecourses are of the %s atlas but --atlas gives %s: no NIfTI maps are "
            "written. Pass --atlas with the %s atlas image (and its labels TSV) to get them.",
            atlas_label, atlas.name, atlas_label)
    write_group_outputs(config, atlas if atlas.name == atlas_label else None, dataset, result,
                        ens_config, group_importance)
    ens = result.performance[result.performance["model"].astype(str) == "ensemble"]
    LOGGER.info("Balanced accuracy per fold: %s (mean %.3f).",
                ", ".join(f"{v:.3f}" for v in ens["balanced_accuracy"]),
                ens["balanced_accuracy"].mean())
    return 0


def write_group_outputs(config, atlas, dataset, result, ens_config, group_importance) -> None:
    """Per-subject maps (TSV, and NIfTI where features are atlas regions) and group tables."""
    out = Path(config.execution.output_dir)
    group_dir = out / "group"
    group_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(config.execution.work_dir) / "group_outputs"
    scratch.mkdir(parents=True, exist_ok=True)
    atomic_write_text(group_dir / "desc-performance_metrics.tsv",
                      result.performance.to_csv(sep="\t", index=False, na_rep="n/a"))
    roots = {"": str(out), "raw": config.execution.bids_dir, **config.execution.derivatives}
    if atlas is not None:
        unknown = sorted(set(dataset.feature_names) - set(atlas.labels["name"]))
        if unknown:
            LOGGER.warning("%d feature(s) are not regions of the %s atlas (e.g. %s); they stay 0 "
                           "in the NIfTI maps.", len(unknown), atlas.name, unknown[0])
    for method, maps in result.maps.items():
        for i, info in enumerate(result.map_info):
            source = dataset.sources[i]
            meta = {
                "Sources": [source_uri(source, roots)],
                "Description": f"Out-of-fold {method} attribution, stabilized across the "
                               f"{ens_config.n_models} models of fold {info['fold']} "
                               f"({ens_config.stabilize}); rows are time points, columns "
                               "features.",
                "Model": ens_config.model,
                "Fold": info["fold"],
                "ModelSeeds": info["model_seeds"],
                "SelectedModelSeed": (info.get("selected_model_seed") or {}).get(method),
                "Stabilization": ens_config.stabilize,
                "Positive": ens_config.positive,
                "Baseline": ens_config.baseline,
                "Steps": ens_config.ig_steps,
                "Prediction": info["prediction"],
                "Probability": info["probability"],
                "TrueLabel": info["true_label"],
            }
            if atlas is not None:
                meta["Description"] += (
                    " The NIfTI image of the same name holds each region's time-summed value "
                    f"painted into the {atlas.name} atlas in its template space."
                )
                meta["Atlas"] = atlas.name
                region = pd.Series(maps[i].sum(axis=0), index=dataset.feature_names)
                tmp = _fresh(scratch / "map.nii.gz")
                paint_regions(atlas, region).to_filename(tmp)
                # one sidecar serves both files (same name), written with the TSV below
                sink(out, source, tmp, {}, desc=method, suffix="attribution", space=atlas.space)
            tmp = write_timeseries_tsv(maps[i], dataset.feature_names,
                                       _fresh(scratch / "map.tsv"))
            sink(out, source, tmp, meta, desc=method, suffix="attribution")
        table = group_importance(maps, dataset.y, dataset.classes, dataset.feature_names)
        atomic_write_text(group_dir / f"desc-{method}_importance.tsv",
                          table.to_csv(sep="\t", index=False, na_rep="n/a"))
        top = table.sort_values("importance_norm", ascending=False).head(5)
        LOGGER.info("%s: top features %s.", method,
                    ", ".join(f"{r.feature} ({r.importance_norm:.2f})" for r in top.itertuples()))
