"""Group level: assemble timecourses, train seeded ensembles, write stabilized attributions,
group statistics, the reliability report card and the HTML reports.

ROI timecourses come from the derivatives datasets given with ``-d`` or from earlier
participant runs in OUTPUT_DIR; subjects that have neither are extracted first (participant
step). ICA timecourses come from group ICA run here on every selected subject, or from template
ICA per participant (:class:`~xaibids.levels.sources.FeatureSource`). The science lives in the packages this module
calls; it only wires them and writes the files.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from xaibids.errors import XaibidsError
from xaibids.levels.participant import prepare_output
from xaibids.inputs.checks import read_participants
from xaibids.outputs.completion import (
    CompletionRecord, fingerprints, is_finished, record_completion, snapshot, written_since,
)
from xaibids.fileio import atomic_write_text
from xaibids.stats.selection import SelectionRule
from xaibids.levels.sources import (
    group_ica_subjects, ica_source, roi_source, t1_source, trials_source,
)

LOGGER = logging.getLogger("xaibids")


def ensemble_config(config, dataset=None, atlas=None):
    """The :class:`~xaibids.learning.ensemble.EnsembleConfig` of a run's configuration.

    For volumes (a ``dataset`` with a ``grid``) the grid goes to the model (``cnn3d``) and,
    with an ``atlas``, region ablation gets the atlas on the grid as its feature groups.
    """
    from xaibids.learning.ensemble import EnsembleConfig

    lc, ac = config.learning, config.attribution
    params = {method: dict(values) for method, values in ac.attribution_params.items()}
    if ac.ig_multiply_by_inputs:
        params.setdefault("ig", {})["multiply_by_inputs"] = True
    model_kwargs, batch_size = {}, lc.batch_size
    if lc.model == "region-cnn":
        model_kwargs["sparsity"] = lc.sparsity
    if dataset is not None and dataset.grid is not None:
        if lc.model == "cnn3d":
            model_kwargs["grid"] = list(dataset.grid)
        if atlas is not None and "ablation" in ac.attribution:
            params.setdefault("ablation", {}).setdefault(
                "feature_mask", str(atlas_on_grid(config, atlas, dataset)))
        for method in {"gradcam", "guidedgradcam"} & set(ac.attribution):
            # Kan et al. 2020's Eq. 7 keeps only positive evidence; a class that differs by *lower*
            # intensity (atrophy) shows as missing activation, i.e. negative evidence, which the
            # ReLU erases: the signed map is kept and --positive applies, as for every method
            params.setdefault(method, {}).setdefault("relu_attributions", False)
        rows = volume_rows(dataset.grid, config.nipype.mem_gb)
        if "ig" in ac.attribution:
            params.setdefault("ig", {}).setdefault("internal_batch_size", rows)
        if batch_size > rows:
            LOGGER.info("Training batches of %d volumes (not %d) fit the memory.", rows,
                        batch_size)
            batch_size = rows
    return EnsembleConfig(
        model=lc.model, n_folds=lc.n_folds, n_models=lc.n_models or lc.max_models,
        epochs=lc.epochs,
        batch_size=batch_size, learning_rate=lc.learning_rate, weight_decay=lc.weight_decay,
        patience=lc.patience, val_fraction=lc.val_fraction, device=lc.device,
        random_seed=config.seeds.random_seed, attribution=tuple(ac.attribution),
        ig_steps=ac.ig_steps, baseline=tuple(ac.baseline), stabilize=ac.stabilize,
        positive=ac.positive, attribution_batch_size=ac.attribution_batch_size,
        ig_method=ac.ig_rule, attribution_params=params, ig_tolerance=ac.ig_tolerance,
        model_kwargs=model_kwargs, batched_training=lc.batched_training,
    )


#: Bytes one volume voxel costs in a forward and backward pass of ``cnn3d`` (its activations
#: kept for the gradient; measured: about 55 MB per 57 x 69 x 60 volume at the default widths).
VOXEL_BYTES = 240


def volume_rows(grid, mem_gb: float = 0.0) -> int:
    """How many volumes go through ``cnn3d`` with gradients at once: a quarter of ``--mem`` (or
    of the memory available now) divided by the cost of one volume, at least 1."""
    budget = mem_gb * 2**30 if mem_gb else (
        os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return max(1, int(budget / 4 // (VOXEL_BYTES * int(np.prod(grid)))))


def atlas_on_grid(config, atlas, dataset) -> Path:
    """The ``--atlas`` label image resampled (nearest neighbour) onto the volumes' grid, in the
    work folder (``ablation``'s regions and the region statistics of ``--features t1``)."""
    from nilearn.image import resample_img

    import nibabel as nb

    grid = "x".join(map(str, dataset.grid))
    path = Path(config.execution.work_dir) / "atlas" / f"atlas-{atlas.name}_grid-{grid}_dseg.nii.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    img = resample_img(atlas.img, target_affine=dataset.affine, target_shape=dataset.grid,
                       interpolation="nearest", force_resample=True, copy_header=True)
    nb.Nifti1Image(np.asarray(img.dataobj).astype(np.int16), dataset.affine).to_filename(path)
    return path


def group_methods(config, ens_config, dataset, feature_kind: str, trials: bool = False,
                  target_in_events: bool = False, volume_atlas: str | None = None) -> str:
    """Methods text of the group level (``boilerplate/group.md``) for this configuration;
    ``trials``: the samples are single trials (``--features trials``), labelled from the
    events when ``target_in_events``; ``volume_atlas``: the atlas whose regions summarize voxel
    maps (None: no region statistics)."""
    from xaibids.attribution.ig import INITIAL_PANELS, PANEL_POINTS
    from xaibids.learning.ensemble import resolve_device, uses_batched_training
    from xaibids.models import model_options
    from xaibids.outputs.methods import describe_methods, render_template
    from xaibids.stats.verdict import N_PERMUTATIONS

    st = config.statistics
    return render_template(
        "group.md", classes=dataset.classes, target=config.learning.target,
        n_subjects=len(set(dataset.subjects)), n_runs=len(dataset.subjects),
        n_timepoints=dataset.X.shape[1], n_features=dataset.X.shape[2], grid=dataset.grid,
        censored_out=dataset.censored_out, max_censored=config.learning.max_censored,
        cropped_from=dataset.cropped_from,
        feature_kind=feature_kind, cv_group=config.learning.cv_group, ens=ens_config,
        model=model_options(ens_config.model, **ens_config.model_kwargs),
        trials=trials, target_in_events=target_in_events, volume_atlas=volume_atlas,
        batched=uses_batched_training(ens_config, resolve_device(ens_config.device)),
        methods=describe_methods(ens_config),
        adaptive_ig={"panels": INITIAL_PANELS, "points": PANEL_POINTS},
        stats={"ci_level": st.ci_level, "n_bootstrap": st.n_bootstrap,
               "fdr_alpha": st.fdr_alpha,
               "feature_groups": Path(st.feature_groups).name if st.feature_groups else ""},
        selection=SelectionRule(st.selection, st.selection_alpha),
        verdict={"n_permutations": N_PERMUTATIONS},
        reliability=config.attribution.reliability_samples,
        permutations=config.attribution.permutations,
        ensemble_size=({"threshold": config.learning.ensemble_stability,
                        "max": config.learning.max_models}
                       if config.learning.n_models == 0 else None),
    )


def group_inputs(config, paths) -> dict[str, str]:
    """Fingerprints of what the group results are computed from: the given files, the
    participants table and the ``--feature-groups`` table."""
    ex, st = config.execution, config.statistics
    return fingerprints([*paths, Path(ex.bids_dir) / "participants.tsv", st.feature_groups])


def run_group(config, atlas, subjects, option_names: dict[str, str]) -> int:
    """Run the group level; returns the exit code. ``option_names`` maps config fields to the
    command line's options, for the methods text (:func:`xaibids.cli.parser.option_names`)."""
    from xaibids.learning.dataset import (
        assemble_dataset, assemble_trial_dataset, assemble_volume_dataset,
    )
    from xaibids.outputs.boilerplate import write_boilerplate
    from xaibids.outputs.methods import parameters_text
    from xaibids.reports import build_reports
    from xaibids.workflows.group import run_group_ensemble

    ex, lc = config.execution, config.learning
    out = Path(ex.output_dir)
    participants = read_participants(Path(ex.bids_dir))  # --target checked before the run
    settings = config.result_settings()
    if config.workflow.features == "ica" and not config.workflow.ica_template:
        # group ICA is part of this level: check before it runs, on the BOLD runs it reads
        inputs = group_inputs(config, [path for s in group_ica_subjects(subjects)
                                       for run in s.bold_runs for path in (run.bold, run.mask)])
        if _finished(config, settings, inputs):
            return 0
        before = snapshot(out)
        prepare_output(config, None)
        source = ica_source(config, subjects, option_names)
    else:
        source = {"ica": lambda: ica_source(config, subjects, option_names),
                  "t1": lambda: t1_source(config, atlas, subjects, option_names),
                  "trials": lambda: trials_source(config, subjects, option_names),
                  "roi": lambda: roi_source(config, atlas, subjects, option_names),
                  }[config.workflow.features]()
        settings = config.result_settings()  # with the cleaning recorded in the features
        inputs = group_inputs(config, [path for _, path in source.runs])
        if _finished(config, settings, inputs):
            return 0
        before = snapshot(out)
        prepare_output(config, atlas)
    try:
        dataset = (assemble_trial_dataset(source.runs, participants, lc.target,
                                          lc.cv_group or None, mask=source.mask)
                   if source.trials else
                   assemble_volume_dataset(source.runs, participants, lc.target,
                                           lc.cv_group or None) if source.volumes else
                   assemble_dataset(source.runs, participants, lc.target, lc.cv_group or None,
                                    lc.length_policy, lc.max_censored))
    except ValueError as err:
        raise XaibidsError(str(err)) from None
    feature_groups = (None if source.volumes else
                      _feature_groups(config, dataset.feature_names) or source.domains or None)
    if atlas is not None and source.painter is not None and not source.volumes:
        unknown = sorted(set(dataset.feature_names) - set(atlas.labels["name"]))
        if unknown:
            LOGGER.warning("%d feature(s) are not regions of the %s atlas (e.g. %s); they stay "
                           "0 in the NIfTI maps.", len(unknown), atlas.name, unknown[0])
    LOGGER.info("Group level: %d sample(s) of %d subject(s), %s, classes %s.",
                len(dataset.subjects), len(set(dataset.subjects)),
                (f"volumes of {' x '.join(map(str, dataset.grid))} voxels" if source.volumes
                 else f"{dataset.X.shape[1]} time points x {dataset.X.shape[2]} features"),
                ", ".join(dataset.classes))
    # an atlas only means something on a grid in its template space
    ens_config = ensemble_config(config, dataset,
                                 None if source.trials and source.space is None else atlas)
    nip = config.nipype
    if lc.n_models == 0 and not ex.boilerplate_only:
        ens_config = _choose_ensemble_size(config, dataset, ens_config, out / "group")
    write_boilerplate("\n\n".join([
        source.methods_text,
        group_methods(config, ens_config, dataset, source.kind_text, trials=source.trials,
                      target_in_events=lc.target not in participants.columns,
                      volume_atlas=(atlas.name if source.volumes and source.space and atlas
                                    else None)),
        parameters_text(config, option_names),
    ]), out / "logs")
    if ex.boilerplate_only:
        LOGGER.info("Boilerplate written to %s", out / "logs" / "CITATION.md")
        return 0
    # training chunks (fold x seeds) and per-fold attribution as Nipype nodes, so a cluster
    # plugin runs them in parallel; the result equals run_ensemble's
    result = run_group_ensemble(
        dataset, ens_config, out / "group" / "checkpoints", ex.work_dir, plugin=nip.plugin,
        plugin_args=nip.plugin_args, node_plugin_args=nip.training_plugin_args or None,
        num_threads=max(1, nip.omp_nthreads))
    verdict = write_group_outputs(config, source, dataset, result, ens_config, feature_groups)
    write_reliability_outputs(config, source, dataset, result, ens_config, out / "group")
    ens = result.performance[result.performance["model"].astype(str) == "ensemble"]
    LOGGER.info("Balanced accuracy per fold: %s (mean %.3f).",
                ", ".join(f"{v:.3f}" for v in ens["balanced_accuracy"]),
                ens["balanced_accuracy"].mean())
    reports = build_reports(out, n_procs=config.nipype.nprocs)
    record_completion(out, GROUP_RECORD, settings, inputs, written_since(before, snapshot(out)),
                      ex.run_uuid, ex.version)
    LOGGER.info("Reports: %s", out / "group.html" if (out / "group.html").exists() else
                ", ".join(map(str, reports)))
    # the verdict last, where the user looks; a warning when the maps are not to be read
    (LOGGER.info if verdict.above_chance else LOGGER.warning)(verdict.sentence())
    return 0


#: Key of the group level's completion record (one group result per OUTPUT_DIR).
GROUP_RECORD = "group"


def _finished(config, settings: dict, inputs: dict) -> bool:
    """Whether the group level already finished in OUTPUT_DIR with these settings and inputs
    (then nothing is done); raises when it finished with others and --overwrite is not given."""
    ex = config.execution
    if ex.boilerplate_only:
        return False
    done = is_finished(ex.output_dir, GROUP_RECORD, "group-level results", settings, inputs,
                       ex.overwrite)
    if done:
        LOGGER.info("Nothing to do: %s holds the group-level results of these settings and "
                    "inputs (%s); --overwrite computes them again.", ex.output_dir,
                    CompletionRecord.path(ex.output_dir, GROUP_RECORD))
    return done


def _choose_ensemble_size(config, dataset, ens_config, group_dir: Path):
    """``--n-models auto``: the ensemble size chosen on fold 1 (its models are checkpointed and
    reused), recorded in ``group/desc-ensembleSize_metrics.tsv``; returns the config to run."""
    from dataclasses import replace

    from xaibids.learning.ensemble import choose_ensemble_size

    lc = config.learning
    LOGGER.info("--n-models auto: doubling fold 1's ensemble from 2 models (at most %d) until "
                "its stabilized maps stop changing (r >= %g).", lc.max_models,
                lc.ensemble_stability)
    if lc.max_models < 8:
        LOGGER.warning("--n-models auto needs the maps of 2, 4 and 8 models (n, 2n, 4n) to "
                       "agree before it stops; with --max-models %d it uses %d models. Give "
                       "--max-models 8 or more to let it choose.", lc.max_models, lc.max_models)
    n_models, table = choose_ensemble_size(dataset, ens_config, group_dir / "checkpoints",
                                           threshold=lc.ensemble_stability)
    group_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(group_dir / "desc-ensembleSize_metrics.tsv",
                      table.to_csv(sep="\t", index=False, na_rep="n/a"))
    LOGGER.info("--n-models auto: %d models per fold.", n_models)
    return replace(ens_config, n_models=n_models)


def _feature_groups(config, feature_names):
    """``--feature-groups`` read and checked against the features (None when not given)."""
    from xaibids.stats import load_feature_groups

    path = config.statistics.feature_groups
    if not path:
        return None
    try:
        return load_feature_groups(path, feature_names)
    except ValueError as err:
        raise XaibidsError(str(err)) from None


def write_group_outputs(config, source, dataset, result, ens_config, feature_groups):
    """Per-subject maps, group tables and statistics of every method; returns the classifier's
    :class:`~xaibids.stats.verdict.Verdict` (no feature is selected when it is not above
    chance)."""
    from xaibids.outputs.maps import write_group_importance_map, write_subject_maps
    from xaibids.outputs.methods import method_parameters
    from xaibids.stats import compute_group_statistics, write_group_statistics

    ex, st = config.execution, config.statistics
    out = Path(ex.output_dir)
    group_dir = out / "group"
    group_dir.mkdir(parents=True, exist_ok=True)
    verdict = write_verdict(config, dataset, result, group_dir)
    selection = {"selection": SelectionRule(st.selection, st.selection_alpha),
                 "withheld": None if verdict.above_chance else
                 "the classifier is not above chance (desc-performance_metrics.tsv)."}
    if len(result.ig_convergence):
        atomic_write_text(group_dir / "desc-igConvergence_metrics.tsv",
                          result.ig_convergence.to_csv(sep="\t", index=False, na_rep="n/a"))
    roots = {"": str(out), "raw": ex.bids_dir, **ex.derivatives}
    n_maps = write_subject_maps(out, Path(ex.work_dir) / "group_outputs", roots, source, dataset,
                                result, ens_config, method_parameters(ens_config))
    LOGGER.info("Wrote %d subject map(s).", n_maps)
    if source.volumes:
        write_volume_outputs(config, source, dataset, result, group_dir, selection)
        return verdict
    for method, maps in result.maps.items():
        stats = compute_group_statistics(
            maps, dataset.X, dataset.y, dataset.classes, dataset.feature_names,
            subjects=dataset.subjects, feature_groups=feature_groups, alpha=st.fdr_alpha,
            n_boot=st.n_bootstrap, ci_level=st.ci_level, random_state=config.seeds.random_seed,
            selection_importance=result.mean_model_importance.get(method), **selection)
        if source.reference is not None:  # where each region lies, by Harvard-Oxford's names
            table = stats.importance.merge(source.reference, how="left", left_on="feature",
                                           right_on="name").drop(columns="name")
            order = ["feature", "reference_region", "reference_share"]
            stats.importance = table[order + [c for c in table.columns if c not in order]]
        write_group_statistics(stats, group_dir, method)
        if source.painter is not None:
            write_group_importance_map(group_dir, method, stats.importance, source)
        top = stats.importance.sort_values("importance_norm", ascending=False).head(5)
        LOGGER.info("%s: top features %s.", method, ", ".join(
            f"{r.feature}{_where(r)} ({r.importance_norm:.2f})" for r in top.itertuples()))
        _log_selection(method, stats.importance, "features", st.selection)
    return verdict


def write_verdict(config, dataset, result, group_dir: Path):
    """Test the out-of-fold predictions against chance and write ``desc-performance_metrics.tsv``
    (per fold, and the verdict in the row ``fold = all``) with its sidecar."""
    import json

    from xaibids.stats.verdict import (
        out_of_fold_verdict, performance_with_verdict, verdict_sidecar,
    )

    verdict = out_of_fold_verdict(result.map_info, len(dataset.classes),
                                  alpha=config.statistics.selection_alpha,
                                  random_state=config.seeds.random_seed)
    atomic_write_text(group_dir / "desc-performance_metrics.tsv",
                      performance_with_verdict(result.performance, verdict).to_csv(
                          sep="\t", index=False, na_rep="n/a"))
    atomic_write_text(group_dir / "desc-performance_metrics.json",
                      json.dumps(verdict_sidecar(verdict), indent=2) + "\n")
    return verdict


def _log_selection(method: str, table: pd.DataFrame, what: str, rule: str) -> None:
    """One line on what the selection ``rule`` selected (the first ten names)."""
    chosen = [str(f) for f in table.loc[table["selected"].astype(bool), "feature"]]
    names = ", ".join(chosen[:10]) + (" ..." if len(chosen) > 10 else "")
    LOGGER.info("%s: %d of %d %s selected (%s rule)%s.", method, len(chosen), len(table), what,
                rule, f": {names}" if chosen else "")


def _where(row) -> str:
    """`` [<Harvard-Oxford region> <share> %]`` for a row of an importance table that has one."""
    region = getattr(row, "reference_region", None)
    return f" [{region} {100 * row.reference_share:.0f} %]" if isinstance(region, str) else ""


def write_volume_outputs(config, source, dataset, result, group_dir: Path,
                         selection: dict) -> None:
    """Group statistics of voxel maps (:mod:`xaibids.stats.volumes`) with the ``--atlas``
    regions: region importance with Cohen's d and the ``selection`` rule (``selection`` and
    ``withheld`` of :func:`~xaibids.stats.volumes.compute_volume_statistics`), the group map,
    Kan et al. 2020's region ranking."""
    import nibabel as nb

    from xaibids.features.atlases import load_atlas
    from xaibids.stats._common import statistical_units
    from xaibids.stats.volumes import (
        class_mean_maps, compute_volume_statistics, subject_mean_map, write_class_maps,
        write_group_mean_map, write_volume_statistics,
    )

    st = config.statistics
    mask = source.mask
    units = statistical_units(dataset.subjects, dataset.y)
    for method, maps in result.maps.items():
        write_class_maps(class_mean_maps(maps, dataset.y, len(dataset.classes), units),
                         dataset.classes, group_dir, method, dataset.affine, dataset.grid,
                         source.space, mask=mask)
    if source.space is None:  # a grid in no template space: no atlas regions to rank
        for method, maps in result.maps.items():
            path = write_group_mean_map(
                subject_mean_map(maps, dataset.y, units).reshape(dataset.grid),
                group_dir, method, dataset.affine, mask=mask)
            LOGGER.info("%s: group map %s (the grid is in no template space: no region "
                        "statistics).", method, path.name)
        return
    atlas = load_atlas(config.workflow.atlas)
    labels = np.asarray(nb.load(atlas_on_grid(config, atlas, dataset)).dataobj).astype(int)
    for method, maps in result.maps.items():
        stats = compute_volume_statistics(
            maps, dataset.y, dataset.classes, dataset.grid, labels, atlas.labels,
            subjects=units, n_boot=st.n_bootstrap, ci_level=st.ci_level,
            random_state=config.seeds.random_seed,
            selection_importance=result.mean_model_importance.get(method), **selection)
        write_volume_statistics(stats, group_dir, method, dataset.affine, source.space or "",
                                mask=mask, atlas=atlas.name)
        top = stats.ranking.head(5)
        LOGGER.info("%s: top %s regions %s.", method, atlas.name,
                    ", ".join(f"{r.region} ({r.share:.2f})" for r in top.itertuples()))
        _log_selection(method, stats.importance, f"{atlas.name} regions", st.selection)


def write_reliability_outputs(config, source, dataset, result, ens_config,
                              group_dir: Path) -> list[Path]:
    """The reliability report card of the maps (the method papers (Strock et al. 2025, Kan et al. 2020, Thibeau-Sutre et al. 2023, Gotsopoulos et al. 2018)) under ``group/``.

    Stability across seeds comes with the ensemble; agreement between methods and between IG
    baselines is computed from the stabilized maps when there are several; the cascading
    randomization check and infidelity/max-sensitivity run on the first model of fold 1 with
    ``--reliability-samples`` of its test subjects; ``--permutations`` adds the permutation
    test of Gotsopoulos et al. 2018.
    """
    import torch

    from xaibids.attribution.reliability import (
        baseline_agreement, faithfulness, method_agreement, method_dice, randomization_check,
        write_reliability,
    )
    from xaibids.learning.ensemble import fold_method_params, load_fold_models, permutation_test

    ac = config.attribution
    tables, metrics = {}, [result.stability]
    brain = None
    if source.mask is not None:  # voxel maps: compare the brain's voxels only (Kan et al. 2020)
        brain = np.asarray(source.mask).ravel()
    if len(result.maps) > 1:
        tables["method_agreement"] = method_agreement(result.maps, mask=brain)
        tables["method_dice"] = method_dice(result.maps, mask=brain)
    if len(ens_config.baselines) > 1 and "ig" in ens_config.attribution:
        tables["baseline_agreement"] = baseline_agreement(result.maps)
    if ac.reliability_samples:
        models, X_test, y_test, baselines = load_fold_models(
            dataset, ens_config, group_dir / "checkpoints", fold=1)
        n = min(ac.reliability_samples, len(y_test))
        inputs = torch.as_tensor(X_test[:n], dtype=torch.float32)
        target = torch.as_tensor(y_test[:n], dtype=torch.long)
        common = {"methods": ens_config.attribution,
                  "baseline": baselines[ens_config.baselines[0]],
                  "method_params": fold_method_params(ens_config, result, fold=1),
                  "seed": config.seeds.random_seed}
        LOGGER.info("Reliability checks on %d test subject(s) of fold 1 (model randomization, "
                    "infidelity, max-sensitivity).", n)
        tables["randomization"] = randomization_check(models[0], inputs, target, **common)
        metrics.append(faithfulness(models[0], inputs, target, **common))
    if ac.permutations:
        LOGGER.info("Permutation test: %d label-shuffled run(s) plus %d for the "
                    "reproducibility threshold.", ac.permutations, ens_config.n_models)
        perm = permutation_test(dataset, ens_config, ac.permutations,
                                group_dir / "checkpoints" / "permutations", real=result,
                                progress=True)
        tables["permutation"] = perm.tables
        metrics.append(pd.DataFrame(
            [{"method": "ensemble", "metric": "permutation_p_value", "value": perm.p_value,
              "n_samples": len(dataset.y)}]
            + [{"method": key, "metric": "reproducibility_threshold", "value": value,
                "n_samples": len(dataset.y)} for key, value in perm.thresholds.items()]))
    tables["metrics"] = pd.concat([m for m in metrics if len(m)], ignore_index=True)
    return write_reliability(group_dir, tables)
