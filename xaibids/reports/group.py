"""The group report ``group.html``: the verdict and performance, importance and selection,
connectivity, reliability, validation against ground truth, and the subjects.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from xaibids.fileio import atomic_write_text
from xaibids.reports import collect, figures
from xaibids.reports.collect import read_json, read_square, read_tsv
from xaibids.reports.page import (
    TOP_K, Page, anchor, esc, fig_html, finish_page, fmt, kv_html, load_config, ordered_methods,
    render_page, sample_rows, stat_html, table_html,
)


# --------------------------------------------------------------------------- group report
def _predictions(subjects: list[collect.SubjectMaps]) -> pd.DataFrame:
    rows = []
    for subject in subjects:
        for run in subject.runs:
            sc = next(iter(run.maps.values())).sidecar
            probs = sc.get("Probabilities") or sc.get("probabilities")
            rows += [{"subject": subject.label, "run": run.label, **trial,
                      "probabilities": probs if isinstance(probs, dict) else None}
                     for trial in sample_rows(sc)]
    return pd.DataFrame(rows)


def _classes(group_dir: Path, methods: list[str], preds: pd.DataFrame) -> list[str]:
    for method in methods:
        if not (group_dir / f"desc-{method}_importance.tsv").exists():
            continue
        cols = read_tsv(group_dir / f"desc-{method}_importance.tsv", nrows=0).columns
        found = [c.removeprefix("mean_") for c in cols if c.startswith("mean_")]
        if len(found) >= 2:
            return found
    if len(preds):
        return sorted({str(v) for v in pd.concat([preds["true"], preds["pred"]]).dropna()})
    return []


def _positive_scores(preds: pd.DataFrame, positive: str) -> np.ndarray | None:
    scores = []
    for row in preds.itertuples(index=False):
        if isinstance(row.probabilities, dict) and positive in map(str, row.probabilities):
            scores.append(float({str(k): v for k, v in row.probabilities.items()}[positive]))
        elif row.probability is not None and pd.notna(row.probability) and row.pred is not None:
            p = float(row.probability)
            scores.append(p if str(row.pred) == positive else 1.0 - p)
        else:
            return None
    return np.asarray(scores)


def _fold_rows(perf: pd.DataFrame) -> pd.DataFrame:
    """The per-fold rows of ``desc-performance_metrics.tsv`` (without the verdict's ``all``)."""
    return perf[perf["fold"].astype(str) != "all"] if "fold" in perf else perf


def verdict_html(group_dir: Path) -> str:
    """The classifier's verdict in plain words (``desc-performance_metrics.json``), and what
    the selection rule selected per method: the first thing the group report says."""
    sidecar = read_json(group_dir / "desc-performance_metrics.json") or {}
    text = sidecar.get("Verdict")
    if not text:
        return ""
    perf = read_tsv(group_dir / "desc-performance_metrics.tsv")
    overall = perf[perf["fold"].astype(str) == "all"] if "fold" in perf else perf[:0]
    above = len(overall) and str(overall["above_chance"].iloc[0]).lower() in ("true", "1")
    parts = [f'<p class="{"ok" if above else "bad"}">{esc(text)}</p>']
    for path in sorted(group_dir.glob("desc-*_importance.json")):
        info = read_json(path) or {}
        rule = info.get("SelectionDescription")
        if not rule:
            continue
        method = path.name.removeprefix("desc-").removesuffix("_importance.json")
        table = read_tsv(path.with_suffix(".tsv"))
        chosen = table.loc[table["selected"].astype(str).str.lower().isin(["true", "1"]),
                           "feature"].astype(str).tolist() if "selected" in table else []
        if info.get("SelectionWithheld"):
            said = f"nothing selected: {info['SelectionWithheld']}"
        elif chosen:
            said = (f"{len(chosen)} of {len(table)} selected: {', '.join(chosen[:12])}"
                    + (" …" if len(chosen) > 12 else ""))
        else:
            said = f"none of the {len(table)} features is selected at this level"
        warning = (f' <span class="bad">{esc(info["SelectionWarning"])}</span>'
                   if info.get("SelectionWarning") else "")
        parts.append(f"<p><b>{esc(method)}</b>: {esc(said)}.{warning}<br>"
                     f'<span class="note">Rule: {esc(rule)}</span></p>')
    return "".join(parts)


def group_summary(output_dir: Path, subjects, preds, classes, methods, perf) -> str:
    tiles = [stat_html(len(subjects), "subjects with maps")]
    if classes:
        tiles.append(stat_html(" vs ".join(classes), "classes"))
    if methods:
        tiles.append(stat_html(", ".join(methods), "attribution methods"))
    if perf is not None and "balanced_accuracy" in perf:
        perf = _fold_rows(perf)
        ens = perf[perf["model"].astype(str) == "ensemble"] if "model" in perf else perf
        if len(ens):
            tiles.append(stat_html(f"{ens['balanced_accuracy'].astype(float).mean():.2f}",
                                   "mean balanced accuracy (ensemble)"))
            tiles.append(stat_html(ens["fold"].nunique(), "folds"))
        single = perf[perf["model"].astype(str) != "ensemble"] if "model" in perf else perf[:0]
        if len(single):
            tiles.append(stat_html(int(single.groupby("fold").size().max()), "models per fold"))
    config = load_config(output_dir)
    learning = config.get("learning", {})
    extra = {k: learning.get(k) for k in ("target", "model", "n_folds", "n_models", "epochs",
                                          "cv_group")}
    extra.update({k: (config.get("workflow") or {}).get(k) for k in ("features", "atlas")})
    extra.update({k: (config.get("attribution") or {}).get(k) for k in ("baseline", "stabilize")})
    return (verdict_html(output_dir / "group") + "<div>" + "".join(tiles) + "</div>"
            + (kv_html(extra) if any(extra.values()) else ""))


def performance_section(group_dir: Path, preds: pd.DataFrame, classes: list[str]) -> str:
    parts = []
    path = group_dir / "desc-performance_metrics.tsv"
    row = []
    everything = read_tsv(path) if path.exists() else None
    if everything is not None:
        perf = _fold_rows(everything)
        metric = "balanced_accuracy" if "balanced_accuracy" in perf else "accuracy"
        chance = 1.0 / len(classes) if classes else 0.5
        row.append(fig_html(figures.performance_figure(perf, metric, chance=chance),
                            f"{metric.replace('_', ' ').capitalize()} of each fold's ensemble "
                            "(bar) and of its single models (dots), on the fold's test subjects; "
                            "dashed: chance."))
    usable = preds.dropna(subset=["true", "pred"]) if len(preds) else preds
    labels = classes or sorted({str(v) for v in pd.concat([usable["true"], usable["pred"]])}) \
        if len(usable) else []
    if len(usable) and len(labels) >= 2:
        row.append(fig_html(figures.confusion_matrix_figure(usable["true"], usable["pred"],
                                                            classes or None),
                            "Out-of-fold ensemble predictions of every subject (map sidecars)."))
        if len(classes) == 2:
            scores = _positive_scores(usable, classes[1])
            if scores is not None:
                row.append(fig_html(figures.roc_figure(usable["true"], scores, classes[1]),
                                    "ROC of the out-of-fold ensemble probabilities."))
    if row:
        parts.append('<div class="row">' + "".join(row) + "</div>")
    if everything is not None:
        overall = everything[everything["fold"].astype(str) == "all"] \
            if "fold" in everything else everything[:0]
        if len(overall):
            parts.append("<h3>Out-of-fold, all subjects (the verdict)</h3>" + table_html(
                overall.drop(columns=[c for c in ("model", "loss") if c in overall])))
        perf = _fold_rows(everything)
        if "model" in perf:
            ens = perf[perf["model"].astype(str) == "ensemble"]
            single = perf[perf["model"].astype(str) != "ensemble"]
            if len(ens):
                cols = [c for c in ens.columns if c not in ("model",)]
                parts.append("<h3>Ensembles per fold</h3>" + table_html(ens[cols]))
            if len(single):
                parts.append("<details><summary>Single models per fold</summary>"
                             + table_html(single, scroll=True) + "</details>")
        else:
            parts.append(table_html(perf))
    return "".join(parts)


def _atlas_images(output_dir: Path, table: pd.DataFrame, config: dict, atlas_name=None):
    """``({column: image}, atlas path)`` of ``importance_norm`` and ``cohens_d`` painted into
    the atlas saved in the output folder whose region names match the features (or None)."""
    import nibabel as nb

    if atlas_name is None:
        atlas_name = (config.get("workflow") or {}).get("atlas")
    for nifti, labels_tsv in collect.find_atlases(
            output_dir, atlas_name if isinstance(atlas_name, str) else None):
        out = _paint(nb.load(nifti), read_tsv(labels_tsv), table)
        if out:
            return out, nifti
    return None


def _paint(img, labels: pd.DataFrame, table: pd.DataFrame) -> dict:
    import nibabel as nb

    data = np.asarray(img.dataobj)
    data = data[..., 0] if data.ndim == 4 else data
    index_of = {str(n): i for n, i in zip(labels["name"], labels["index"])}
    features = table["feature"].astype(str).tolist()
    if not any(f in index_of for f in features):
        return {}
    out = {}
    for column in ("importance_norm", "cohens_d"):
        if column not in table or table[column].isna().all():
            continue
        values = np.zeros(data.shape, dtype=np.float32)
        for name, value in zip(features, table[column].astype(float)):
            if name in index_of and np.isfinite(value):
                values[data == index_of[name]] = value
        out[column] = nb.Nifti1Image(values, img.affine)
    return out


def _bundled_atlas_images(table: pd.DataFrame, config: dict):
    """Fallback when the output folder holds no atlas: the configured atlas when it is one of
    the atlases installed with xaibids (or a path that still exists); nothing is downloaded."""
    spec = (config.get("workflow") or {}).get("atlas")
    if not isinstance(spec, str) or not spec:
        return None
    try:
        from xaibids.features.atlases import load_atlas

        atlas = load_atlas(spec)
    except Exception:  # noqa: BLE001 - an atlas that cannot be loaded just means no brain view
        return None
    out = _paint(atlas.img, atlas.labels, table)
    # a text, not a Path: the caption shows ``.name`` of a Path, i.e. the last part of ``spec``
    return (out, f"{atlas.name} (--atlas {spec})") if out else None


def importance_section(output_dir: Path, group_dir: Path, method: str,
                       classes: list[str], config: dict, atlas_name: str | None = None) -> str:
    table = read_tsv(group_dir / f"desc-{method}_importance.tsv")
    table["feature"] = table["feature"].astype(str)
    parts = []
    pair = (classes[1], classes[0]) if len(classes) >= 2 else None
    n_sel = int(table["selected"].astype(str).str.lower().isin(["true", "1"]).sum()) \
        if "selected" in table else None
    rule = (read_json(group_dir / f"desc-{method}_importance.json") or {}).get(
        "SelectionRule", "")
    lead = (f"{len(table)} features" + (f"; {n_sel} selected ({rule or 'selection'} rule, ★)"
                                       if n_sel is not None else "") + ".")
    parts.append(f'<p class="lead">{esc(lead)} Bars are coloured by the sign of Cohen\'s d '
                 + (f"({esc(pair[0])} minus {esc(pair[1])})" if pair else "") + ".</p>")
    shown = table
    if "reference_region" in table:  # numbered parcels (CC200, ...) with where they lie
        where = table["reference_region"].where(table["reference_region"].notna(), None)
        shown = table.assign(feature=[
            f"{f} · {w} ({100 * s:.0f} %)" if isinstance(w, str) else f
            for f, w, s in zip(table["feature"], where, table["reference_share"])])
    parts.append(fig_html(figures.importance_figure(shown, k=TOP_K, classes=pair),
                          f"Top {min(TOP_K, len(table))} features by group importance of the "
                          f"stabilized {esc(method)} maps"
                          + (" with bootstrap confidence intervals of Cohen's d."
                             if "cohens_d_ci_low" in table else ".")))
    painted = _atlas_images(output_dir, table, config, atlas_name) or \
        _bundled_atlas_images(table, config)
    if painted is not None:
        images, nifti = painted
        brain = []
        if "importance_norm" in images:
            brain += figures.brain_map_figures(images["importance_norm"], "importance (normalized)",
                                               kind="glass", symmetric=False, threshold=0.0)
        if "cohens_d" in images:
            brain += figures.brain_map_figures(images["cohens_d"], "Cohen's d", kind="glass",
                                               symmetric=True, threshold=0.0)
        parts.append("<h3>In the brain</h3><div class=\"row brain\">" + "".join(
            fig_html(i, f"{esc(i.alt.removeprefix('glass brain ').capitalize())} painted into the "
                        f"regions of <code>{esc(getattr(nifti, 'name', nifti))}</code>.")
            for i in brain) + "</div>")
    else:
        parts.append(_group_map_html(group_dir, method))
    cols = [c for c in ("feature", "reference_region", "reference_share", "group", "importance",
                        "importance_norm", "statistic", "p_value", "q_value", "selected",
                        "cohens_d", "cohens_d_ci_low",
                        "cohens_d_ci_high") if c in table]
    cols += [c for c in table.columns if c.startswith("mean_")]
    ranked = table.sort_values("importance_norm" if "importance_norm" in table else "importance",
                               ascending=False)[cols]
    parts.append(f"<details><summary>Table of all {len(table)} features</summary>"
                 + table_html(ranked, scroll=True) + "</details>")
    domains = group_dir / f"desc-{method}_domains.tsv"
    if domains.exists():
        dom = read_tsv(domains)
        label = "group" if "group" in dom else dom.columns[0]
        dom[label] = dom[label].astype(str)
        parts.append("<h3>Domains</h3>")
        if "importance_norm" in dom or "importance" in dom:
            parts.append(fig_html(figures.importance_figure(dom, k=TOP_K, classes=pair,
                                                            label_column=label),
                                  "Importance of feature domains (groups of features)."))
        parts.append(table_html(dom, scroll=True))
    perm = group_dir / f"desc-{method}_permutation.tsv"
    if perm.exists():
        ptab = read_tsv(perm)
        ptab["feature"] = ptab["feature"].astype(str)
        n_rep = int(ptab["reproducible"].astype(str).str.lower().isin(["true", "1"]).sum()) \
            if "reproducible" in ptab else 0
        parts.append("<h3>Permutation reproducibility</h3>"
                     f'<p class="lead">{n_rep} of {len(ptab)} features are reproducible beyond '
                     "the label-permutation null (Gotsopoulos et al. 2018).</p>"
                     + fig_html(figures.permutation_figure(ptab, k=TOP_K),
                                "Number of runs in which each feature exceeds its "
                                "permutation-derived significance threshold."))
    return "".join(parts)


def _group_map_html(group_dir: Path, method: str) -> str:
    """The written group importance map (``write_group_importance_map``: ICA components, or
    regions whose atlas the report cannot find) as a glass brain; empty when there is none."""
    maps = sorted(group_dir.glob(f"*desc-{method}_importance.nii*"))
    if not maps or (group_dir / f"desc-{method}_regions.tsv").exists():  # a voxel map (t1)
        return ""
    sidecar = collect.read_json(Path(str(maps[0]).replace(".nii.gz", ".json")))
    imgs = figures.brain_map_figures(maps[0], "importance (normalized)", kind="glass",
                                     symmetric=False, threshold=0.0)
    caption = esc(sidecar.get("Description", f"Group importance of {method} in the brain."))
    return ("<h3>In the brain</h3><div class=\"row brain\">"
            + "".join(fig_html(i, caption + f" (<code>{esc(maps[0].name)}</code>)") for i in imgs)
            + "</div>")


def voxel_map_section(group_dir: Path, method: str) -> str:
    """The group map of voxel attributions and Kan et al. 2020's region ranking (``--features t1``);
    empty for timecourse features (their importance map is shown with the importance). A
    voxel map on a grid in no template space (``--features trials`` of raw BOLD) has no
    regions: the map alone is shown."""
    plain = group_dir / f"desc-{method}_importance.nii.gz"
    if plain.exists() and not (group_dir / f"desc-{method}_importance.tsv").exists():
        sidecar = collect.read_json(group_dir / f"desc-{method}_importance.json")
        imgs = figures.brain_map_figures(plain, title=f"{method}, group mean")
        return ('<div class="row brain">'
                + "".join(fig_html(i, esc(sidecar.get("Description", "")) + " The MNI152 "
                                   "template is only a background." if k == len(imgs) - 1
                                   else "") for k, i in enumerate(imgs)) + "</div>")
    maps = sorted(group_dir.glob(f"space-*_desc-{method}_importance.nii*"))
    if not maps or not (group_dir / f"desc-{method}_regions.tsv").exists():
        return ""
    space = collect.parse_entities(maps[0].name)[0].get("space", "template")
    imgs = figures.brain_map_figures(maps[0], title=f"{method}, group mean")
    parts = ['<div class="row brain">'
             + "".join(fig_html(i, (f"Mean stabilized {esc(method)} map over subjects "
                                    f"({esc(space)} space).") if k == len(imgs) - 1 else "")
                       for k, i in enumerate(imgs)) + "</div>"]
    ranking = group_dir / f"desc-{method}_regions.tsv"
    table = read_tsv(ranking)
    sidecar = collect.read_json(ranking.with_suffix(".json"))
    parts.append(f"<h4>Regions holding the map (Kan et al. 2020, Table 2)</h4>"
                 f'<p class="note">Share of each {esc(sidecar.get("Atlas", "atlas"))} region '
                 f"in the group map thresholded at {sidecar.get('Threshold', 0.65)} of its "
                 "peak, normalized to sum to 1.</p>"
                 + table_html(table[table["share"] > 0].head(10)))
    return "".join(parts)


def _communities(group_dir: Path, desc: str) -> pd.DataFrame | None:
    path = group_dir / f"desc-{desc}_communities.tsv"
    if not path.exists():
        return None
    table = read_tsv(path)
    table["feature"] = table["feature"].astype(str)
    table["class"] = table["class"].astype(str)
    return table


def _comm_of(table: pd.DataFrame | None, cls: str) -> pd.Series | None:
    if table is None:
        return None
    rows = table[table["class"] == cls]
    return rows.set_index("feature")["community"] if len(rows) else None


def _edges_summary(group_dir: Path, desc: str, label: str) -> str:
    path = group_dir / f"desc-{desc}_edges.tsv"
    if not path.exists():
        return ""
    edges = read_tsv(path)
    sig = edges[edges["significant"].astype(str).str.lower().isin(["true", "1"])] \
        if "significant" in edges else edges[:0]
    text = (f"<h4>{esc(label)}: {len(sig)} of {len(edges)} edges differ significantly between "
            "classes (FDR)</h4>")
    if len(sig):
        order = sig.sort_values("p" if "p" in sig else sig.columns[0])
        cols = [c for c in ("feature_a", "feature_b", "t", "p", "p_fdr") if c in order]
        cols += [c for c in order.columns if c.startswith("mean_")]
        text += table_html(order[cols], scroll=True, max_rows=50)
        if len(sig) > 50:
            text += f'<p class="note">Showing the 50 strongest of {len(sig)}.</p>'
    return text


def connectivity_section(group_dir: Path, methods: list[str]) -> str:
    parts = []
    sfnc = collect.relmat_classes(group_dir, "sFNC")
    sfnc_comm = _communities(group_dir, "sFNC")
    shown_sfnc = False
    for method in methods + [m for m in _cosal_methods(group_dir) if m not in methods]:
        cosal = collect.relmat_classes(group_dir, f"{method}Cosaliency")
        if not cosal:
            continue
        cosal_comm = _communities(group_dir, f"{method}Cosaliency")
        parts.append(f"<h3>Co-saliency of {esc(method)} maps vs static FNC</h3>")
        for cls in sorted(set(cosal) | set(sfnc)):
            panels = []
            if cls in cosal:
                panels.append((f"co-saliency ({method})", read_square(cosal[cls]),
                               _comm_of(cosal_comm, cls)))
            if cls in sfnc:
                panels.append(("sFNC", read_square(sfnc[cls]), _comm_of(sfnc_comm, cls)))
            parts.append(fig_html(figures.matrix_panels_figure(panels, title=f"class {cls}"),
                                  f"Class <b>{esc(cls)}</b>: matrices ordered by their greedy "
                                  "modularity communities (black boxes), as Lewis et al. 2023 Fig. 8; "
                                  "diagonal left blank."))
        shown_sfnc = shown_sfnc or bool(sfnc)
        parts.append(_edges_summary(group_dir, f"{method}Cosaliency", f"Co-saliency ({method})"))
    if sfnc and not shown_sfnc:
        parts.append("<h3>Static FNC</h3>")
        for cls, path in sfnc.items():
            parts.append(fig_html(figures.matrix_panels_figure(
                [("sFNC", read_square(path), _comm_of(sfnc_comm, cls))], title=f"class {cls}")))
    if parts:
        parts.append(_edges_summary(group_dir, "sFNC", "sFNC"))
    mod = group_dir / "desc-modularity_metrics.tsv"
    if mod.exists():
        table = read_tsv(mod)
        table["class"] = table["class"].astype(str)
        parts.append("<h3>Modularity</h3><div class=\"row\">"
                     + fig_html(figures.modularity_figure(table),
                                "Greedy (Clauset–Newman–Moore) modularity per class.")
                     + f"<div>{table_html(table)}</div></div>")
    return "".join(parts)


def _cosal_methods(group_dir: Path) -> list[str]:
    found = set()
    for path in group_dir.glob("desc-*Cosaliency_class-*_relmat.tsv"):
        m = re.fullmatch(r"desc-([a-zA-Z0-9]+)Cosaliency_class-.*", path.name)
        if m:
            found.add(m.group(1))
    return sorted(found)


def reliability_section(group_dir: Path) -> str:
    parts = []
    path = group_dir / "desc-reliability_metrics.tsv"
    if path.exists():
        table = read_tsv(path)
        parts.append('<p class="lead">How far the maps can be trusted (Thibeau-Sutre et al. 2023): agreement '
                     "across seeds, methods and baselines, and sensitivity to the model's "
                     "parameters.</p>")
        if {"method", "metric", "value"} <= set(table.columns) and \
                not table.duplicated(["method", "metric"]).any():
            wide = table.pivot(index="metric", columns="method", values="value").reset_index()
            parts.append(table_html(wide))
            extra = [c for c in table.columns if c not in ("method", "metric", "value")]
            if extra:
                parts.append("<details><summary>All reliability metrics</summary>"
                             + table_html(table, scroll=True) + "</details>")
        else:
            parts.append(table_html(table, scroll=True))
    mats = []
    for desc, label in (("methodAgreement", "Agreement between methods"),
                        ("methodDice", "Dice of thresholded maps between methods"),
                        ("baselineAgreement", "Agreement between baselines")):
        p = group_dir / f"desc-{desc}_relmat.tsv"
        if p.exists():
            mats.append(fig_html(figures.agreement_matrix_figure(read_square(p), title=label),
                                 esc(label) + "."))
    if mats:
        parts.append('<div class="row">' + "".join(mats) + "</div>")
    parts.append(convergence_html(group_dir))
    rand = group_dir / "desc-randomization_metrics.tsv"
    if rand.exists():
        table = read_tsv(rand)
        table["method"] = table["method"].astype(str)
        parts.append("<h3>Model-parameter randomization</h3>"
                     + fig_html(figures.randomization_figure(table),
                                "Spearman correlation between the map of the trained model and "
                                "the maps after randomizing its layers one by one from the "
                                "output (cascading); a method that explains the model should "
                                "fall towards 0."))
    return "".join(parts)


def convergence_html(group_dir: Path) -> str:
    """How converged the maps are numerically: the IG step counts or adaptive points and their
    completeness error per fold (``--ig-steps auto|adaptive``), and the ensemble sizes compared
    (``--n-models auto``)."""
    parts = []
    path = group_dir / "desc-igConvergence_metrics.tsv"
    if path.exists():
        table = read_tsv(path)
        used = table[table["chosen"].astype(str) == "True"].drop(columns=["chosen"])
        parts.append("<h3>IG convergence</h3><p>Per fold and baseline: the integration points "
                     "used (with adaptive IG, the mean gradient evaluations per map) and the "
                     "completeness error of the path integral, summed |convergence delta| over "
                     "summed |change of the target logit|.</p>" + table_html(used))
        if len(used) < len(table):
            parts.append("<details><summary>Every step count tried</summary>"
                         + table_html(table, scroll=True) + "</details>")
    path = group_dir / "desc-ensembleSize_metrics.tsv"
    if path.exists():
        parts.append("<h3>Ensemble size</h3><p>Correlation of the stabilized maps of fold 1's "
                     "ensembles as they doubled; the size chosen is marked.</p>"
                     + table_html(read_tsv(path)))
    return "".join(parts)


def validation_section(group_dir: Path) -> str:
    path = group_dir / "desc-validation_metrics.tsv"
    if not path.exists():
        return ""
    table = read_tsv(path)
    if "subject" in table:
        table = table[table["subject"].isna()].drop(columns=["subject"])
    if table.empty:
        return ""
    return ('<p class="lead">Agreement of the stabilized maps with the ground truth of the '
            "simulated data, over the whole dataset.</p>" + table_html(table))


def subjects_section(output_dir: Path, preds: pd.DataFrame) -> str:
    if preds.empty:
        return ""
    if preds.duplicated(["subject", "run"]).any():  # single trials: accuracy per subject
        return trials_subjects_section(preds)
    per = preds.groupby("subject", sort=True).first().reset_index()
    rows = []
    for r in per.itertuples(index=False):
        link = f'<a href="sub-{esc(r.subject)}.html">sub-{esc(r.subject)}</a>'
        ok = ""
        if r.true is not None and r.pred is not None and pd.notna(r.true) and pd.notna(r.pred):
            good = str(r.true) == str(r.pred)
            ok = f'<span class="{"ok" if good else "bad"}">{"✓" if good else "✗"}</span>'
        rows.append(f"<tr><td>{link}</td><td>{esc(fmt(r.fold))}</td><td>{esc(fmt(r.true))}</td>"
                    f"<td>{esc(fmt(r.pred))}</td><td class=\"num\">{esc(fmt(r.probability))}</td>"
                    f"<td>{ok}</td></tr>")
    return ('<p class="lead">One report per subject with its timecourses and maps.</p>'
            '<div class="scroll"><table><thead><tr><th>subject</th><th>fold</th><th>true label</th>'
            "<th>prediction</th><th>probability</th><th>correct</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></div>")


def trials_subjects_section(preds: pd.DataFrame) -> str:
    rows = []
    for subject, trials in preds.groupby("subject", sort=True):
        link = f'<a href="sub-{esc(subject)}.html">sub-{esc(subject)}</a>'
        usable = trials.dropna(subset=["true", "pred"])
        correct = int((usable["true"].astype(str) == usable["pred"].astype(str)).sum())
        rows.append(f"<tr><td>{link}</td><td>{esc(fmt(trials['fold'].iloc[0]))}</td>"
                    f'<td class="num">{len(usable)}</td><td class="num">{correct}</td>'
                    f'<td class="num">{correct / max(len(usable), 1):.2f}</td></tr>')
    return ('<p class="lead">One report per subject with its trial maps; the accuracy is over '
            "its trials, classified by the fold that held the subject out.</p>"
            '<div class="scroll"><table><thead><tr><th>subject</th><th>fold</th><th>trials</th>'
            "<th>correct</th><th>accuracy</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></div>")


def build_group_report(output_dir: str | Path, subjects: list[collect.SubjectMaps] | None = None,
                       strict: bool = False) -> Path:
    """Write ``OUTPUT_DIR/group.html``; returns its path."""
    output_dir = Path(output_dir)
    group_dir = output_dir / "group"
    if subjects is None:
        subjects = collect.find_subject_maps(output_dir)
    config = load_config(output_dir)
    methods = ordered_methods(collect.group_methods(group_dir) if group_dir.exists() else [], config)
    preds = _predictions(subjects)
    classes = _classes(group_dir, methods, preds) if group_dir.exists() else []
    perf_path = group_dir / "desc-performance_metrics.tsv"
    perf = read_tsv(perf_path) if perf_path.exists() else None
    atlas_name = next((m.sidecar.get("Atlas") for s in subjects for r in s.runs
                       for m in r.maps.values() if m.sidecar.get("Atlas")), None)
    page = Page(strict)
    page.add("summary", "Summary", group_summary, output_dir, subjects, preds, classes, methods,
             perf)
    page.add("performance", "Classification performance", performance_section, group_dir, preds,
             classes, nav="Performance")
    for method in methods:
        if (group_dir / f"desc-{method}_importance.tsv").exists():
            page.add(anchor(f"importance-{method}"), f"Feature importance: {method}",
                     importance_section, output_dir, group_dir, method, classes, config,
                     atlas_name, nav=f"Importance ({method})")
        page.add(anchor(f"voxels-{method}"), f"Voxel map: {method}", voxel_map_section,
                 group_dir, method, nav=f"Voxel map ({method})")
    if group_dir.exists():
        page.add("connectivity", "Co-saliency and static FNC", connectivity_section, group_dir,
                 methods, nav="Co-saliency")
        page.add("reliability", "Reliability", reliability_section, group_dir)
        page.add("validation", "Validation against ground truth", validation_section, group_dir,
                 nav="Validation")
    page.add("subjects", "Subjects", subjects_section, output_dir, preds)
    finish_page(page, output_dir)
    return atomic_write_text(output_dir / "group.html", render_page(
        "Group report", f"{len(subjects)} subject(s); generated from {output_dir}", page))
