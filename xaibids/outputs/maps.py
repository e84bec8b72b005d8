"""Attribution maps written as BIDS derivatives.

Each stabilized subject map is written with niworkflows' ``DerivativesDataSink`` (BIDS names and
JSON sidecars from the source timecourse) as a TSV (rows time points, columns features) and, where
the features live in a brain space (atlas regions, ICA components), as a NIfTI image of each
feature's time-summed value painted into the brain in its template space. The group importance
of the features is painted the same way (:func:`write_group_importance_map`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd

from xaibids.fileio import atomic_path, atomic_write_text, jsonable, write_timeseries_tsv
from xaibids.outputs.derivatives import source_uri

LOGGER = logging.getLogger("xaibids")


def sink(output_dir: Path, source: str, in_file: Path, meta: dict, **entities) -> str:
    """Write ``in_file`` under ``output_dir`` named from ``source`` with niworkflows' sink."""
    from xaibids.interfaces.bids import DerivativesDataSink

    node = DerivativesDataSink(base_directory=str(output_dir), source_file=source,
                               in_file=str(in_file), dismiss_entities=("statistic",),
                               meta_dict=jsonable(meta), **entities)
    return node.run(cwd=str(in_file.parent)).outputs.out_file


def fresh(path: Path) -> Path:
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
    code = 4 if atlas.space else 2
    img.header.set_qform(atlas.img.affine, code=code)
    img.header.set_sform(atlas.img.affine, code=code)
    return img


def write_subject_maps(output_dir: Path, scratch: Path, roots: dict, source, dataset, result,
                       ens_config, method_params: dict) -> int:
    """Write every stabilized map of ``result`` (all methods); returns the number of maps.

    Parameters
    ----------
    output_dir : Path
        OUTPUT_DIR.
    scratch : Path
        Work folder for the files handed to the sink.
    roots : dict
        Dataset name → root, for the BIDS URIs of the sidecars' ``Sources``.
    source : :class:`xaibids.levels.sources.FeatureSource`
        The features: its ``painter`` turns time-summed values into a NIfTI image (None: no
        NIfTI maps), in template ``space``.
    dataset : TimeseriesDataset
    result : EnsembleResult
    ens_config : EnsembleConfig
    method_params : dict
        Map key → parameters recorded in the sidecar.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    if getattr(source, "trials", False):
        return _write_trial_maps(output_dir, scratch, roots, source, dataset, result, ens_config,
                                 method_params)
    written = 0
    for method, maps in result.maps.items():
        for i, info in enumerate(result.map_info):
            src = dataset.sources[i]
            meta = {
                "Sources": [source_uri(src, roots)],
                "Description": f"Out-of-fold {method} attribution, stabilized across the "
                               f"{ens_config.n_models} models of fold {info['fold']} "
                               f"({ens_config.stabilize}); rows are time points, columns "
                               "features.",
                "MethodParameters": _fold_parameters(method_params.get(method, {}), info, method),
                "Model": ens_config.model,
                "Fold": info["fold"],
                "ModelSeeds": info["model_seeds"],
                "SelectedModelSeed": (info.get("selected_model_seed") or {}).get(method),
                "Stabilization": ens_config.stabilize,
                "Positive": ens_config.positive,
                "Prediction": info["prediction"],
                "Probability": info["probability"],
                "TrueLabel": info["true_label"],
                "Features": source.label,
            }
            if source.atlas:
                meta["Atlas"] = source.atlas
            if source.volumes:
                meta["Description"] = (
                    f"Out-of-fold {method} attribution of the voxels of the input volume, "
                    f"stabilized across the {ens_config.n_models} models of fold "
                    f"{info['fold']} ({ens_config.stabilize}), on the input's grid and affine "
                    f"(template space {source.space or 'unknown'}), 0 outside the brain mask.")
                tmp = fresh(scratch / "map.nii.gz")
                source.painter(pd.Series(maps[i][0], index=dataset.feature_names)).to_filename(tmp)
                sink(output_dir, src, tmp, meta, desc=method, suffix="attribution",
                     space=source.space)
                written += 1
                continue
            if source.painter is not None:
                meta["Description"] += (
                    " The NIfTI image of the same name holds each feature's time-summed value "
                    f"painted into the brain ({source.label}, template space "
                    f"{source.space or 'unknown'})."
                )
                values = pd.Series(maps[i].sum(axis=0), index=dataset.feature_names)
                tmp = fresh(scratch / "map.nii.gz")
                source.painter(values).to_filename(tmp)
                # one sidecar serves both files (same name), written with the TSV below
                sink(output_dir, src, tmp, {}, desc=method, suffix="attribution",
                     space=source.space)
            tmp = write_timeseries_tsv(maps[i], dataset.feature_names, fresh(scratch / "map.tsv"))
            sink(output_dir, src, tmp, meta, desc=method, suffix="attribution")
            written += 1
    return written


def _write_trial_maps(output_dir: Path, scratch: Path, roots: dict, source, dataset, result,
                      ens_config, method_params: dict) -> int:
    """Single trials (``--features trials``): one 4D map per run and method, a volume per
    classified trial in the order of the run's trial maps; the sidecar lists each volume's
    trial, fold, prediction and true label."""
    sources = np.asarray(dataset.sources, dtype=object)
    written = 0
    for method, maps in result.maps.items():
        for src in dict.fromkeys(dataset.sources):
            rows = np.flatnonzero(sources == src)
            infos = [result.map_info[i] for i in rows]
            images = [source.painter(pd.Series(maps[i][0], index=dataset.feature_names))
                      for i in rows]
            img = nb.Nifti1Image(np.stack([np.asarray(im.dataobj) for im in images], axis=-1),
                                 images[0].affine, images[0].header)
            tmp = fresh(scratch / "map.nii.gz")
            img.to_filename(tmp)
            meta = {
                "Sources": [source_uri(src, roots)],
                "Description": (
                    f"Out-of-fold {method} attribution of every classified trial of the run "
                    f"(one volume each, in the order of the column TrialVolume: the volume of "
                    f"the source trial maps), stabilized across the {ens_config.n_models} "
                    f"models of each trial's fold ({ens_config.stabilize}), 0 outside the "
                    "brain mask."),
                "MethodParameters": _fold_parameters(method_params.get(method, {}), infos, method),
                "Model": ens_config.model,
                "Stabilization": ens_config.stabilize,
                "Positive": ens_config.positive,
                "Features": source.label,
                "TrialVolume": [int(dataset.sample_index[i]) for i in rows],
                "Fold": [info["fold"] for info in infos],
                "Prediction": [info["prediction"] for info in infos],
                "Probability": [info["probability"] for info in infos],
                "TrueLabel": [info["true_label"] for info in infos],
                "ModelSeeds": infos[0]["model_seeds"],
            }
            sink(output_dir, src, tmp, meta, desc=method, suffix="attribution",
                 space=source.space)
            written += 1
    return written


def write_group_importance_map(group_dir: Path, method: str, importance: pd.DataFrame,
                               source) -> Path:
    """The group importance of every feature painted into the brain.

    Writes ``space-<tpl>_desc-<method>_importance.nii.gz`` (``desc-<method>_importance.nii.gz``
    when the template space is unknown) and its JSON sidecar under ``group_dir``. The values are
    the ``importance_norm`` column of ``desc-<method>_importance.tsv`` (Lewis et al. 2023 §2.7, max
    normalized to 1): for atlas regions each region's value fills its voxels; for ICA
    components the image is ``Σ_k importance_norm_k · map_k`` with every spatial map scaled to
    a peak of 1 (:func:`xaibids.features.ica.paint_components`), so voxels shared by important
    networks are bright.

    Parameters
    ----------
    group_dir : Path
        ``OUTPUT_DIR/group``.
    method : str
        Attribution key (``ig``, …).
    importance : DataFrame
        The group importance table (columns ``feature`` and ``importance_norm``).
    source : :class:`xaibids.levels.sources.FeatureSource`
        The features; its ``painter`` makes the image (it must not be None).
    """
    values = importance.set_index(importance["feature"].astype(str))["importance_norm"]
    values = values.astype(float).fillna(0.0)  # features without importance weigh nothing
    space = f"space-{source.space}_" if source.space else ""
    path = Path(group_dir) / f"{space}desc-{method}_importance.nii.gz"
    if source.atlas:
        how = (f"each region's normalized group importance painted into its voxels of the "
               f"{source.atlas} atlas")
    else:
        how = ("the spatial maps of the ICA components, each scaled to a peak of 1, weighted by "
               "their normalized group importance and summed")
    meta = {
        "Description": f"Group importance of the stabilized {method} attributions in the "
                       f"brain: {how} (values of desc-{method}_importance.tsv, column "
                       "importance_norm).",
        "Features": source.label,
        "Space": source.space,
        "Values": "importance_norm",
    }
    with atomic_path(path, suffix=".nii.gz") as tmp:
        source.painter(values).to_filename(tmp)
    atomic_write_text(path.with_name(path.name.replace(".nii.gz", ".json")),
                      json.dumps(jsonable(meta), indent=2) + "\n")
    return path


def _fold_parameters(params: dict, info: dict | list[dict], key: str) -> dict:
    """A map's method parameters with IG's step count as used in the subject's fold (the
    configuration says ``auto`` when it was chosen per fold by the completeness check) or, with
    adaptive IG, the mean gradient evaluations its models spent (``mean_points``; over the run's
    trials when ``info`` lists several)."""
    infos = info if isinstance(info, list) else [info]
    if params.get("n_steps") == "auto" and infos[0].get("ig_steps") is not None:
        return {**params, "n_steps": infos[0]["ig_steps"]}
    if params.get("n_steps") == "adaptive" and "ig_points" in infos[0]:
        return {**params, "mean_points": float(np.mean([i["ig_points"][key] for i in infos]))}
    return params
