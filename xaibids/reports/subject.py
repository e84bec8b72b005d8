"""The subject report ``sub-<label>.html``: summary, each method's maps per run, registration.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xaibids.fileio import atomic_write_text
from xaibids.reports import collect, figures
from xaibids.reports.collect import read_tsv
from xaibids.reports.page import (
    Page, anchor, esc, fig_html, finish_page, kv_html, load_config, ordered_methods, render_page,
    sample_rows, stat_html, table_html,
)


# --------------------------------------------------------------------------- subject report
def _summary_rows(subject: collect.SubjectMaps) -> pd.DataFrame:
    rows = []
    for run in subject.runs:
        for method, mmap in sorted(run.maps.items()):
            sc = mmap.sidecar
            truth, pred = sc.get("TrueLabel"), sc.get("Prediction")
            rows.append({
                "run": run.label, "method": method, "fold": sc.get("Fold"),
                "model": sc.get("Model"), "selected seed": sc.get("SelectedModelSeed"),
                "seeds": len(sc.get("ModelSeeds") or []) or None,
                "stabilization": sc.get("Stabilization"),
                "baseline": sc.get("Baseline") or (sc.get("MethodParameters") or {}).get("Baseline"),
                "prediction": pred, "probability": sc.get("Probability"), "true label": truth,
                "correct": (str(pred) == str(truth)) if pred is not None and truth is not None
                else None,
            })
    frame = pd.DataFrame(rows)
    return frame.dropna(axis=1, how="all")


def subject_summary(subject: collect.SubjectMaps) -> str:
    first = next(iter(subject.runs[0].maps.values())).sidecar
    if isinstance(first.get("TrueLabel"), list):
        return trials_summary(subject)
    rows = _summary_rows(subject)
    truth, pred = first.get("TrueLabel"), first.get("Prediction")
    tiles = [stat_html(len(subject.runs), "run(s) with maps"),
             stat_html(", ".join(subject.methods), "attribution method(s)")]
    if pred is not None:
        tiles.append(stat_html(pred, "ensemble prediction"))
    if truth is not None:
        tiles.append(stat_html(truth, "true label"))
    if first.get("Probability") is not None:
        tiles.append(stat_html(f"{float(first['Probability']):.2f}", "probability of prediction"))
    verdict = ""
    if pred is not None and truth is not None:
        ok = str(pred) == str(truth)
        verdict = (f'<p class="{"ok" if ok else "bad"}">'
                   f'{"Correctly classified" if ok else "Misclassified"} by the ensemble of its '
                   f"out-of-fold models (fold {esc(first.get('Fold', 'n/a'))}).</p>")
    desc = first.get("Description")
    return ('<div>' + "".join(tiles) + "</div>" + verdict
            + (f'<p class="note">{esc(desc)}</p>' if desc else "")
            + "<h3>Maps and the models behind them</h3>"
            + '<p class="note">The <i>selected seed</i> is the model whose map is closest to the '
              "mean map over the fold's models (stabilization, Lewis et al. 2023 §2.4).</p>"
            + table_html(rows))


def trials_summary(subject: collect.SubjectMaps) -> str:
    """Subject summary of single-trial maps: how many of its trials were classified correctly."""
    rows = []
    for run in subject.runs:
        for method, mmap in sorted(run.maps.items()):
            trials = pd.DataFrame(sample_rows(mmap.sidecar))
            rows.append({"run": run.label, "method": method, "trials": len(trials),
                         "correct": int((trials["true"].astype(str)
                                         == trials["pred"].astype(str)).sum()),
                         "fold": ", ".join(map(str, sorted(set(trials["fold"])))),
                         "model": mmap.sidecar.get("Model"),
                         "stabilization": mmap.sidecar.get("Stabilization")})
    table = pd.DataFrame(rows)
    first = table.drop_duplicates("run")
    n, ok = int(first["trials"].sum()), int(first["correct"].sum())
    tiles = [stat_html(len(subject.runs), "run(s) with maps"),
             stat_html(", ".join(subject.methods), "attribution method(s)"),
             stat_html(f"{ok} / {n}", "trials classified correctly")]
    return ("<div>" + "".join(tiles) + "</div>"
            + '<p class="note">Each trial was classified by the ensemble of the fold that held '
              "this subject out; its map is one volume of the run's attribution image.</p>"
            + table_html(table))


def subject_volume_section(run: collect.RunMaps, mmap: collect.MethodMap) -> str:
    """A voxel map (``--features t1`` or ``trials``): glass brain and slices over the template
    (a run's trial maps: their mean)."""
    sc = mmap.sidecar
    space = collect.parse_entities(mmap.nifti.name)[0].get("space")
    imgs = figures.brain_map_figures(mmap.nifti, title=mmap.method)
    what = (f"mean of the stabilized {esc(mmap.method)} attributions of the run's "
            f"{len(sc['TrialVolume'])} trials" if isinstance(sc.get("TrialVolume"), list)
            else f"stabilized {esc(mmap.method)} attribution")
    where = (f"{esc(space)} space" if space else
             "a grid in no template space: the template is only a background")
    parts = [f'<p class="note">{esc(sc.get("Description", ""))}</p>',
             '<div class="row brain">'
             + "".join(fig_html(i, (f"{what[0].upper()}{what[1:]} ({where}): glass brain "
                                    "(maximum projection) and slices through the peak on "
                                    "nilearn's MNI152 template.")
                                if k == len(imgs) - 1 else "") for k, i in enumerate(imgs))
             + "</div>"]
    details = {k: sc.get(k) for k in ("MethodParameters", "Model", "Fold", "ModelSeeds",
                                       "SelectedModelSeed", "Stabilization", "Positive",
                                       "Prediction", "Probability", "TrueLabel")}
    parts.append(f"<details><summary>Sidecar of {esc(mmap.nifti.name)}</summary>"
                 f"{kv_html(details)}</details>")
    return "".join(parts)


def registration_section(output_dir: Path, label: str) -> str:
    """The participant level's registration figures of a subject (``--features t1``): the
    preprocessed T1w with the template's brain outline over it."""
    found = sorted((output_dir / f"sub-{label}").glob("**/figures/*_desc-registration_T1w.svg"))
    parts = []
    for path in found:
        parts.append(f'<figure class="fig">{path.read_text()}<figcaption>'
                     f"{esc(path.name)}: the T1w image brought onto the template (registered, "
                     "before brain masking), with the outline of the template's brain mask over "
                     "it. The two should match.</figcaption></figure>")
    return "".join(parts)


def subject_method_section(run: collect.RunMaps, mmap: collect.MethodMap) -> str:
    if mmap.tsv is None:
        return subject_volume_section(run, mmap)
    attribution = mmap.table().apply(pd.to_numeric, errors="coerce")
    timeseries = None
    if run.timeseries is not None and Path(run.timeseries).exists():
        ts = read_tsv(run.timeseries).apply(pd.to_numeric, errors="coerce")
        if set(attribution.columns) <= set(ts.columns):
            timeseries = ts.iloc[: len(attribution)] if len(ts) >= len(attribution) else ts
    sc = mmap.sidecar
    parts = []
    where = (f"Input timecourses from <code>{esc(Path(run.timeseries).name)}</code>."
             if timeseries is not None else
             "The input timecourses were not found (neither in the output folder nor in the "
             "datasets its maps name as sources); only the map is shown.")
    img = figures.timeseries_attribution_figure(attribution, timeseries)
    parts.append(fig_html(img, f"Stabilized {esc(mmap.method)} attribution (time × feature) "
                               f"beside the input timecourses, as Lewis et al. 2023 Fig. 2. {where}"))
    share = attribution.abs().sum(axis=0)
    total = float(share.sum())
    if total > 0:
        share = share / total
    top = figures.top_features_figure(share, k=15, title="Top features",
                                      xlabel="share of |attribution| summed over time")
    top_table = pd.DataFrame({"feature": share.sort_values(ascending=False).index[:15],
                              "share": share.sort_values(ascending=False).to_numpy()[:15]})
    parts.append('<div class="row">' + fig_html(top, "Features ranked by their share of the "
                                                     "absolute attribution over the whole run.")
                 + f"<div><h4>Top features</h4>{table_html(top_table)}</div></div>")
    if mmap.nifti is not None and mmap.nifti.exists():
        imgs = figures.brain_map_figures(mmap.nifti, title=f"{mmap.method}")
        space = collect.parse_entities(mmap.nifti.name)[0].get("space", "template")
        caption = (f"Time-summed attribution painted into the {esc(sc.get('Atlas') or 'atlas')} "
                   f"regions ({esc(space)} space): glass brain (maximum projection) and slices "
                   "through the peak on nilearn's MNI152 template.")
        parts.append("<h4>Brain maps</h4><div class=\"row brain\">"
                     + "".join(fig_html(i, caption if k == len(imgs) - 1 else "")
                               for k, i in enumerate(imgs)) + "</div>")
    details = {k: sc.get(k) for k in ("Method", "MethodParameters", "Model", "Fold",
                                       "ModelSeeds", "SelectedModelSeed", "Stabilization",
                                       "Positive", "Baseline", "Steps", "Prediction",
                                       "Probability", "Probabilities", "TrueLabel", "Atlas")}
    parts.append(f"<details><summary>Sidecar of {esc(mmap.tsv.name)}</summary>"
                 f"{kv_html(details)}</details>")
    return "".join(parts)


def build_subject_report(output_dir: str | Path, subject: collect.SubjectMaps | str,
                         strict: bool = False) -> Path:
    """Write ``OUTPUT_DIR/sub-<label>.html``; returns its path."""
    output_dir = Path(output_dir)
    if isinstance(subject, str):
        found = collect.find_subject_maps(output_dir, [subject])
        if not found:
            raise FileNotFoundError(f"No attribution maps of sub-{subject} in {output_dir}.")
        subject = found[0]
    page = Page(strict)
    page.add("summary", "Summary", subject_summary, subject)
    page.add("registration", "Registration to the template", registration_section, output_dir,
             subject.label, nav="Registration")
    multi_run = len(subject.runs) > 1
    config = load_config(output_dir)
    for run in subject.runs:
        for method in ordered_methods(run.maps, config):
            mmap = run.maps[method]
            title = f"Attribution: {method}" + (f" ({run.label})" if multi_run else "")
            page.add(anchor(f"map-{run.anchor}-{method}"), title, subject_method_section, run,
                     mmap, nav=method + (f" {run.label}" if multi_run else ""))
    finish_page(page, output_dir, subject.label)
    text = render_page(f"sub-{subject.label}", "Subject report: stabilized out-of-fold attribution "
                   "maps and the inputs they explain.", page,
                   home="group.html" if (output_dir / "group").exists() else None)
    return atomic_write_text(output_dir / f"sub-{subject.label}.html", text)
