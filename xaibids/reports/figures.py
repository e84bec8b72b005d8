"""Figures of the HTML reports, each rendered to an :class:`Image` (SVG or PNG bytes).

Every function takes plain tables/arrays read from an output folder and returns an
:class:`Image` that the templates embed as a ``data:`` URI, so a report needs no other file.
Line and bar charts are SVG (sharp at any zoom, small); heatmaps and brain views are PNG (a raster
inside an SVG would be as large and slower to draw).

Matplotlib runs on the Agg backend; nilearn's plotting uses its bundled MNI152 template only —
nothing is fetched.
"""

from __future__ import annotations

import functools

import base64
import io
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

#: Above this many features, matrices and heatmaps drop their per-tick labels.
MAX_TICK_LABELS = 40
#: Colours of the two directions of Cohen's d (class A > class B, class A < class B).
POSITIVE_COLOR = "#c0392b"
NEGATIVE_COLOR = "#2e6da4"
NEUTRAL_COLOR = "#8c8c8c"
PNG_DPI = 110

plt.rcParams.update({
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.fonttype": "none",  # text stays text: smaller files, selectable labels
    "svg.hashsalt": "xaibids",  # deterministic ids
})


@dataclass(frozen=True)
class Image:
    """One rendered figure: its MIME type, bytes and alternative text."""

    mime: str
    data: bytes
    alt: str = ""

    @property
    def data_uri(self) -> str:
        return f"data:{self.mime};base64," + base64.b64encode(self.data).decode("ascii")

    @property
    def is_svg(self) -> bool:
        return self.mime == "image/svg+xml"


def _save(fig, fmt: str, alt: str, tight: bool = False) -> Image:
    """Render and close ``fig``. Figures use constrained layout, so no tight bounding box
    (which would draw them twice) is needed unless ``tight``."""
    buf = io.BytesIO()
    kwargs = {"dpi": PNG_DPI} if fmt == "png" else {"metadata": {"Date": None}}
    if tight:
        kwargs["bbox_inches"] = "tight"
    fig.savefig(buf, format=fmt, **kwargs)
    plt.close(fig)
    mime = "image/svg+xml" if fmt == "svg" else "image/png"
    return Image(mime, buf.getvalue(), alt)


def _shorten(label: str, width: int = 38) -> str:
    label = str(label)
    return label if len(label) <= width else label[: width - 1] + "…"


def _feature_ticks(ax, names, axis: str = "y") -> None:
    """Label every feature when few, otherwise only a handful of positions."""
    n = len(names)
    if n <= MAX_TICK_LABELS:
        ticks, labels = np.arange(n), [_shorten(x, 28) for x in names]
        fontsize = 8 if n <= 20 else 6
    else:
        ticks = np.linspace(0, n - 1, 6).round().astype(int)
        labels = [str(t + 1) for t in ticks]
        fontsize = 8
    if axis == "y":
        ax.set_yticks(ticks, labels, fontsize=fontsize)
    else:
        ax.set_xticks(ticks, labels, fontsize=fontsize, rotation=90)


def _symmetric_limit(values) -> float:
    values = np.asarray(values, dtype=float)
    finite = np.abs(values[np.isfinite(values)])
    if finite.size == 0:
        return 1.0
    vmax = float(np.percentile(finite, 99)) or float(finite.max())
    return vmax if vmax > 0 else 1.0


# --------------------------------------------------------------------------- subject figures
def timeseries_attribution_figure(attribution: pd.DataFrame, timeseries: pd.DataFrame | None = None,
                                  title: str = "") -> Image:
    """Input timecourses beside the attribution heatmap, time × feature (Lewis et al. 2023, Fig. 2).

    Both panels share the feature axis; the timecourses are z-scored per feature. With no
    timecourses only the map is drawn.
    """
    features = list(attribution.columns)
    n_feat = len(features)
    panels = [("Attribution", attribution)]
    if timeseries is not None:
        ts = timeseries.reindex(columns=features)
        std = ts.std(axis=0).replace(0, np.nan)
        panels.insert(0, ("Input timecourses (z-scored)", (ts - ts.mean(axis=0)) / std))
    height = float(np.clip(1.2 + 0.16 * min(n_feat, MAX_TICK_LABELS), 2.6, 7.5))
    if n_feat > MAX_TICK_LABELS:
        height = 5.5
    fig, axes = plt.subplots(1, len(panels), figsize=(5.4 * len(panels) + 1.2, height),
                             sharey=True, squeeze=False, layout="constrained")
    for ax, (label, frame) in zip(axes[0], panels):
        values = frame.to_numpy(dtype=float).T  # features × time
        if label == "Attribution":
            if np.nanmin(values) >= 0:  # 99.5th percentile: one outlier must not black out the rest
                finite = values[np.isfinite(values)]
                vmax = float(np.percentile(finite, 99.5)) if finite.size else 1.0
                cmap, vmin, vmax = "inferno", 0.0, vmax or float(np.nanmax(values)) or 1.0
            else:
                vmax = _symmetric_limit(values)
                cmap, vmin = "RdBu_r", -vmax
        else:
            cmap, vmin, vmax = "RdBu_r", -2.5, 2.5
        im = ax.imshow(np.ma.masked_invalid(values), aspect="auto", interpolation="nearest",
                       cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_title(label)
        ax.set_xlabel("time point")
        fig.colorbar(im, ax=ax, shrink=0.85, pad=0.01)
    _feature_ticks(axes[0][0], features)
    axes[0][0].set_ylabel("feature" if n_feat <= MAX_TICK_LABELS else "feature (index)")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, "png", title or "timecourses and attribution map")


def top_features_figure(values: pd.Series, k: int = 15, title: str = "",
                        xlabel: str = "share of attribution") -> Image:
    """Horizontal bars of the ``k`` largest values (feature names on the axis)."""
    top = values.dropna().sort_values(ascending=False).head(k)[::-1]
    fig, ax = plt.subplots(figsize=(5.2, 0.9 + 0.22 * max(len(top), 1)), layout="constrained")
    colors = [POSITIVE_COLOR if v >= 0 else NEGATIVE_COLOR for v in top.to_numpy()]
    ax.barh(np.arange(len(top)), top.to_numpy(), color=colors)
    ax.set_yticks(np.arange(len(top)), [_shorten(x) for x in top.index], fontsize=8)
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    return _save(fig, "svg", title or "top features")


@functools.lru_cache(maxsize=1)
def _mni152_template():
    """nilearn's bundled 2 mm MNI152 template (local; loaded once per process: ~1 s)."""
    from nilearn import datasets

    return datasets.load_mni152_template(resolution=2)


def brain_map_figures(img, title: str = "", kind: str = "both", symmetric: bool | None = None,
                      threshold: float | None = None) -> list[Image]:
    """Glass brain and orthogonal slices of a 3D map on nilearn's bundled MNI152 template
    (of a 4D map, e.g. one volume per trial: of the mean over its volumes)."""
    import nibabel as nb
    from nilearn import image, plotting

    img = nb.load(img) if not hasattr(img, "get_fdata") else img
    if img.ndim == 4:
        img = image.mean_img(img, copy_header=True)
    data = np.asarray(img.get_fdata(), dtype=float)
    finite = data[np.isfinite(data)]
    if symmetric is None:
        symmetric = bool(finite.size and finite.min() < 0)
    vmax = float(np.abs(finite).max()) if finite.size else 1.0
    vmax = vmax or 1.0
    if threshold is None:
        threshold = 0.05 * vmax
    out = []
    common = dict(threshold=threshold, vmax=vmax, colorbar=True, title=title or None,
                  black_bg=False)
    if kind in ("both", "glass"):
        fig = plt.figure(figsize=(8, 2.8))
        if symmetric:
            plotting.plot_glass_brain(img, figure=fig, plot_abs=False, cmap="RdBu_r",
                                      vmin=-vmax, **common)
        else:
            plotting.plot_glass_brain(img, figure=fig, plot_abs=False, cmap="YlOrRd", vmin=0,
                                      **common)
        out.append(_save(fig, "png", f"glass brain {title}".strip(), tight=True))
    if kind in ("both", "slices"):
        bg = _mni152_template()
        fig = plt.figure(figsize=(8, 2.8))
        cmap = "RdBu_r" if symmetric else "YlOrRd"
        plotting.plot_stat_map(img, bg_img=bg, figure=fig, display_mode="ortho", cmap=cmap,
                               symmetric_cbar=symmetric, dim=-0.3, draw_cross=False,
                               cut_coords=_peak_coords(img), **common)
        out.append(_save(fig, "png", f"slices {title}".strip(), tight=True))
    return out


def _peak_coords(img) -> tuple[float, float, float] | None:
    data = np.nan_to_num(np.asarray(img.get_fdata(), dtype=float))
    if not np.any(data):
        return None
    ijk = np.unravel_index(np.argmax(np.abs(data)), data.shape)
    return tuple(float(v) for v in (img.affine @ np.r_[ijk, 1])[:3])


# --------------------------------------------------------------------------- group figures
def performance_figure(perf: pd.DataFrame, metric: str = "balanced_accuracy",
                       chance: float | None = 0.5) -> Image:
    """Per-fold metric of every model (dots) and of the ensemble (bar)."""
    perf = perf.copy()
    perf["fold"] = perf["fold"].astype(str)
    folds = list(dict.fromkeys(perf["fold"]))
    model = perf["model"].astype(str) if "model" in perf else pd.Series("ensemble", perf.index)
    ens = perf[model == "ensemble"].set_index("fold")[metric] if (model == "ensemble").any() \
        else None
    single = perf[model != "ensemble"]
    fig, ax = plt.subplots(figsize=(1.6 + 0.8 * len(folds), 3.0), layout="constrained")
    x = np.arange(len(folds))
    if ens is not None:
        ax.bar(x, [ens.get(f, np.nan) for f in folds], width=0.6, color="#9ecae1",
               label="ensemble", zorder=1)
    if len(single):
        rng = np.random.default_rng(0)
        xs = [folds.index(f) + rng.uniform(-0.15, 0.15) for f in single["fold"]]
        ax.scatter(xs, single[metric].astype(float), s=18, color="#08519c", zorder=3,
                   label="single models")
    if chance is not None:
        ax.axhline(chance, color="k", ls="--", lw=0.8, label="chance")
    ax.set_xticks(x, folds)
    ax.set_xlabel("fold")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_ylim(0, 1.05)
    fig.legend(fontsize=7, loc="outside lower center", ncols=3, frameon=False)
    return _save(fig, "svg", f"{metric} per fold")


def confusion_matrix_figure(y_true, y_pred, labels=None) -> Image:
    """Counts of true × predicted labels (with row percentages)."""
    from sklearn.metrics import confusion_matrix

    y_true = [str(v) for v in y_true]
    y_pred = [str(v) for v in y_pred]
    labels = [str(v) for v in (labels if labels is not None else sorted(set(y_true) | set(y_pred)))]
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    size = 1.6 + 0.7 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 0.6, size), layout="constrained")
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{cm[i, j]}\n({share[i, j]:.0%})", ha="center", va="center",
                    color="white" if share[i, j] > 0.6 else "black", fontsize=8)
    ax.set_xticks(range(len(labels)), [_shorten(v, 14) for v in labels])
    ax.set_yticks(range(len(labels)), [_shorten(v, 14) for v in labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix")
    return _save(fig, "svg", "confusion matrix")


def roc_figure(y_true, scores, pos_label) -> Image:
    """ROC curve of the out-of-fold probabilities of ``pos_label``."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.asarray([str(v) == str(pos_label) for v in y_true], dtype=int)
    scores = np.asarray(scores, dtype=float)
    fig, ax = plt.subplots(figsize=(3.3, 3.2), layout="constrained")
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=0.8)
    if len(np.unique(y)) == 2:
        fpr, tpr, _ = roc_curve(y, scores)
        auc = roc_auc_score(y, scores)
        ax.plot(fpr, tpr, color="#08519c", lw=1.8, label=f"AUC = {auc:.2f}")
        ax.legend(loc="lower right", frameon=False)
    else:
        ax.text(0.5, 0.5, "one class only", ha="center")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC ({_shorten(pos_label, 16)} positive)")
    ax.set_aspect("equal")
    return _save(fig, "svg", "ROC curve")


def importance_figure(table: pd.DataFrame, k: int = 20, classes: tuple[str, str] | None = None,
                      label_column: str = "feature") -> Image:
    """Top-``k`` features by normalized importance, coloured by the sign of Cohen's d, beside
    Cohen's d with its confidence interval when the table has one."""
    value = "importance_norm" if "importance_norm" in table else "importance"
    top = table.dropna(subset=[value]).sort_values(value, ascending=False).head(k)[::-1]
    y = np.arange(len(top))
    has_d = "cohens_d" in top and top["cohens_d"].notna().any()
    has_ci = has_d and {"cohens_d_ci_low", "cohens_d_ci_high"} <= set(top.columns)
    ncols = 2 if has_d else 1
    fig, axes = plt.subplots(1, ncols, figsize=(4.6 + 2.6 * (ncols - 1), 1.0 + 0.24 * len(top)),
                             sharey=True, squeeze=False, layout="constrained",
                             gridspec_kw={"width_ratios": [1.4, 1][:ncols]})
    d = top["cohens_d"].astype(float).to_numpy() if has_d else np.zeros(len(top))
    colors = [POSITIVE_COLOR if v > 0 else NEGATIVE_COLOR if v < 0 else NEUTRAL_COLOR for v in d]
    ax = axes[0][0]
    ax.barh(y, top[value].astype(float), color=colors)
    if "selected" in top:
        sel = top["selected"].astype(str).str.lower().isin(["true", "1"]).to_numpy()
        for yi, s, v in zip(y, sel, top[value].astype(float)):
            if s:
                ax.text(v, yi, " ★", va="center", fontsize=7, color="0.2")
    ax.set_yticks(y, [_shorten(x) for x in top[label_column]], fontsize=8)
    ax.set_xlabel(value.replace("_", " "))
    if value == "importance_norm":
        ax.axvline(0.5, color="0.5", ls=":", lw=0.8)
        ax.set_xlim(0, 1.12)
    ax.set_title(f"Top {len(top)} by importance")
    if has_d:
        ax2 = axes[0][1]
        if has_ci:
            lo = top["cohens_d_ci_low"].astype(float).to_numpy()
            hi = top["cohens_d_ci_high"].astype(float).to_numpy()
            ax2.errorbar(d, y, xerr=[np.clip(d - lo, 0, None), np.clip(hi - d, 0, None)], fmt="none",
                         ecolor="0.35", elinewidth=1, capsize=2)
        ax2.scatter(d, y, c=colors, s=22, zorder=3)
        ax2.axvline(0, color="k", lw=0.8)
        ax2.set_xlabel("Cohen's d" + (" (95% CI)" if has_ci else ""))
        ax2.set_title("Effect size")
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in (POSITIVE_COLOR, NEGATIVE_COLOR)]
    if has_d:
        a, b = classes if classes else ("class A", "class B")
        fig.legend(handles, [f"d > 0 ({_shorten(a, 14)} > {_shorten(b, 14)})",
                             f"d < 0 ({_shorten(a, 14)} < {_shorten(b, 14)})"],
                   loc="outside lower center", ncols=2, fontsize=7, frameon=False)
    return _save(fig, "svg", "feature importance")


def _community_order(names: list[str], communities: pd.Series | None):
    """Order of ``names`` grouped by community (largest first) and the community blocks."""
    if communities is None or communities.empty:
        return list(range(len(names))), []
    comm = communities.reindex(names)
    sizes = comm.value_counts()
    rank = {c: i for i, c in enumerate(sizes.index)}
    keyed = sorted(range(len(names)),
                   key=lambda i: (rank.get(comm.iloc[i], len(rank)) if pd.notna(comm.iloc[i])
                                  else len(rank), i))
    blocks, start = [], 0
    ordered = [comm.iloc[i] for i in keyed]
    for i in range(1, len(ordered) + 1):
        if i == len(ordered) or ordered[i] != ordered[start]:
            if pd.notna(ordered[start]):
                blocks.append((start, i - start))
            start = i
    return keyed, blocks


def matrix_panels_figure(panels: list[tuple[str, pd.DataFrame, pd.Series | None]],
                         title: str = "") -> Image:
    """Square matrices side by side, each ordered by its communities with black boxes around
    them (Lewis et al. 2023, Fig. 8). ``panels`` holds ``(title, matrix, communities)``; the matrix is
    indexed by feature name on both axes, communities map feature → community."""
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(4.1 * n, 4.0), squeeze=False, layout="constrained")
    for ax, (label, matrix, communities) in zip(axes[0], panels):
        names = [str(x) for x in matrix.index]
        values = matrix.to_numpy(dtype=float).copy()
        order, blocks = _community_order(names, communities)
        values = values[np.ix_(order, order)]
        shown = values.copy()
        np.fill_diagonal(shown, np.nan)
        vmax = _symmetric_limit(shown)
        if np.nanmin(shown) >= 0 if np.isfinite(shown).any() else True:
            im = ax.imshow(np.ma.masked_invalid(shown), cmap="magma_r", vmin=0, vmax=vmax,
                           interpolation="nearest")
        else:
            im = ax.imshow(np.ma.masked_invalid(shown), cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                           interpolation="nearest")
        for start, size in blocks:
            ax.add_patch(Rectangle((start - 0.5, start - 0.5), size, size, fill=False,
                                   edgecolor="black", lw=1.4))
        ordered_names = [names[i] for i in order]
        if len(names) <= MAX_TICK_LABELS:
            _feature_ticks(ax, ordered_names, "y")
            _feature_ticks(ax, ordered_names, "x")
        else:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"{len(names)} features, ordered by community")
        ax.set_title(label + (f" — {len(blocks)} communities" if blocks else ""))
        for side in ("top", "right"):
            ax.spines[side].set_visible(True)
        fig.colorbar(im, ax=ax, shrink=0.8, pad=0.01)
    if title:
        fig.suptitle(title)
    return _save(fig, "png", title or "matrices", tight=True)


def agreement_matrix_figure(matrix: pd.DataFrame, title: str = "", vmin: float | None = None,
                            vmax: float | None = 1.0) -> Image:
    """A small annotated square matrix (e.g. agreement between methods)."""
    values = matrix.to_numpy(dtype=float)
    n = len(matrix)
    size = 1.8 + 0.55 * n
    fig, ax = plt.subplots(figsize=(size + 0.9, size), layout="constrained")
    finite = values[np.isfinite(values)]
    if vmin is None:
        vmin = min(0.0, float(finite.min())) if finite.size else 0.0
    cmap = "RdBu_r" if vmin < 0 else "viridis"
    im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
    if n <= 12:
        for i in range(n):
            for j in range(values.shape[1]):
                if np.isfinite(values[i, j]):
                    norm = (values[i, j] - vmin) / ((vmax or 1) - vmin or 1)
                    ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if (cmap == "viridis" and norm < 0.55) else "black")
    ax.set_xticks(range(values.shape[1]), [_shorten(c, 14) for c in matrix.columns], rotation=45,
                  ha="right")
    ax.set_yticks(range(n), [_shorten(c, 14) for c in matrix.index])
    for side in ("top", "right"):
        ax.spines[side].set_visible(True)
    fig.colorbar(im, ax=ax, shrink=0.8)
    if title:
        ax.set_title(title)
    return _save(fig, "svg", title or "matrix")


def randomization_figure(table: pd.DataFrame) -> Image:
    """Cascading model-parameter randomization: Spearman correlation with the trained model's
    map, per randomized layer, one line per method (Thibeau-Sutre et al. 2023)."""
    fig, ax = plt.subplots(figsize=(5.6, 3.2), layout="constrained")
    for method, rows in table.groupby("method", sort=False):
        rows = rows.sort_values("step") if "step" in rows else rows
        x = np.arange(len(rows))
        ax.plot(x, rows["spearman"].astype(float), marker="o", ms=4, label=str(method))
        if "layer" in rows:
            ax.set_xticks(x, [_shorten(v, 16) for v in rows["layer"].astype(str)], rotation=30,
                          ha="right")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_ylim(min(-0.2, float(np.nanmin(table["spearman"].astype(float))) - 0.05), 1.05)
    ax.set_xlabel("layers randomized (cascading, from the output)")
    ax.set_ylabel("Spearman ρ with original map")
    ax.legend(fontsize=7, frameon=False)
    return _save(fig, "svg", "model-parameter randomization")


def permutation_figure(table: pd.DataFrame, k: int = 20, title: str = "") -> Image:
    """Reproducibility counts of the top-``k`` features; reproducible ones highlighted."""
    top = table.sort_values("reproducibility", ascending=False).head(k)[::-1]
    rep = top["reproducible"].astype(str).str.lower().isin(["true", "1"]) \
        if "reproducible" in top else pd.Series(False, index=top.index)
    fig, ax = plt.subplots(figsize=(5.2, 1.0 + 0.22 * len(top)), layout="constrained")
    ax.barh(np.arange(len(top)), top["reproducibility"].astype(float),
            color=np.where(rep, POSITIVE_COLOR, NEUTRAL_COLOR))
    ax.set_yticks(np.arange(len(top)), [_shorten(x) for x in top["feature"]], fontsize=8)
    ax.set_xlabel("reproducibility (runs in which the feature is significant)")
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in (POSITIVE_COLOR, NEUTRAL_COLOR)]
    ax.legend(handles, ["reproducible", "not reproducible"], fontsize=7, frameon=False,
              loc="lower right")
    if title:
        ax.set_title(title)
    return _save(fig, "svg", title or "permutation reproducibility")


def modularity_figure(table: pd.DataFrame) -> Image:
    """Modularity of co-saliency vs sFNC per class (grouped bars)."""
    pivot = table.pivot_table(index="class", columns="measure", values="modularity",
                              aggfunc="first")
    fig, ax = plt.subplots(figsize=(1.8 + 1.0 * len(pivot), 2.8), layout="constrained")
    width = 0.8 / max(len(pivot.columns), 1)
    palette = ["#e6550d", "#3182bd", "#31a354", "#756bb1"]
    for j, measure in enumerate(pivot.columns):
        ax.bar(np.arange(len(pivot)) + (j - (len(pivot.columns) - 1) / 2) * width,
               pivot[measure].astype(float), width=width, label=str(measure),
               color=palette[j % len(palette)])
    ax.set_xticks(np.arange(len(pivot)), [_shorten(c, 14) for c in pivot.index.astype(str)])
    ax.set_ylabel("modularity Q")
    fig.legend(fontsize=7, frameon=False, loc="outside lower center", ncols=len(pivot.columns))
    return _save(fig, "svg", "modularity")
