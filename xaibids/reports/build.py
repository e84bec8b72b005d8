"""Build the HTML reports (``sub-<label>.html`` and ``group.html``) from an output folder.

The layout follows fMRIPrep/nireports: a navigation bar, a *Summary*, one section per kind of
result made of *reportlets* (a figure or table with a caption), the *Methods* boilerplate,
*About* (software versions and the configuration) and *Errors*. Every section is built from
files on disk; a section whose files are absent is left out, and a section that fails to render
is reported under *Errors* instead of breaking the page (``strict=True`` raises instead).

Pages are self-contained: figures are ``data:`` URIs, the CSS is inline, there is no JavaScript.
"""

from __future__ import annotations

import functools

import html
import logging
import re
import tomllib
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata, resources
from pathlib import Path

import numpy as np
import pandas as pd

from xaibids import __version__
from xaibids.fileio import atomic_write_text
from xaibids.reports import collect, figures
from xaibids.reports.collect import read_json, read_square, read_tsv

LOGGER = logging.getLogger("xaibids.reports")

#: Packages whose versions the *About* section lists (from ``logs/config.toml`` when recorded).
SOFTWARE = ("xaibids", "torch", "captum", "nilearn", "nipype", "niworkflows", "nibabel", "numpy",
            "scipy", "pandas", "scikit-learn", "networkx", "matplotlib")
TOP_K = 20


@dataclass
class Section:
    id: str
    title: str
    html: str
    nav: str | None = None


class _Page:
    """Sections of one page, built one by one; failures are collected as errors."""

    def __init__(self, strict: bool):
        self.sections: list[Section] = []
        self.errors: list[tuple[str, str]] = []
        self.strict = strict

    def add(self, sec_id: str, title: str, builder, *args, nav: str | None = None, **kwargs):
        try:
            body = builder(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - one broken section must not hide the others
            if self.strict:
                raise
            LOGGER.warning("Report section %r could not be rendered: %s", title, err)
            self.errors.append((title, traceback.format_exc()))
            return
        if body:
            self.sections.append(Section(sec_id, title, body, nav))


# --------------------------------------------------------------------------- HTML helpers
def esc(value) -> str:
    return html.escape(str(value), quote=True)


def fig_html(image: figures.Image, caption: str = "") -> str:
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return (f'<figure class="reportlet"><img src="{image.data_uri}" alt="{esc(image.alt)}" '
            f'loading="eager">{cap}</figure>')


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.2e}"
        return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:.1f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return str(value)


def table_html(frame: pd.DataFrame, scroll: bool = False, max_rows: int | None = None) -> str:
    if max_rows is not None and len(frame) > max_rows:
        frame = frame.head(max_rows)
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    rows = []
    for row in frame.itertuples(index=False):
        cells = []
        for v in row:
            v = None if (not isinstance(v, (list, dict, tuple)) and pd.isna(v)) else v
            num = isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
            cells.append(f'<td class="num">{esc(_fmt(v))}</td>' if num else f"<td>{esc(_fmt(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    return f'<div class="scroll">{table}</div>' if scroll else table


def kv_html(items: dict) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(_fmt(v))}</td></tr>" for k, v in items.items()
                   if v is not None and v != "")
    return f'<table class="kv">{rows}</table>'


def stat_html(value, label: str) -> str:
    return f'<div class="stat"><b>{esc(value)}</b><span>{esc(label)}</span></div>'


def _anchor(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]+", "-", text).strip("-").lower()


def _render(title: str, subtitle: str, page: _Page, home: str | None = None) -> str:
    import jinja2

    source = resources.files("xaibids.reports").joinpath("templates/report.html").read_text()
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(source).render(
        title=title, subtitle=subtitle, sections=page.sections, home=home, version=__version__,
        date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


# --------------------------------------------------------------------------- shared sections
def _load_config(output_dir: Path) -> dict:
    path = output_dir / "logs" / "config.toml"
    if not path.exists():
        return {}
    return tomllib.loads(path.read_text())


def methods_section(output_dir: Path) -> str:
    """Body of ``logs/CITATION.html`` (or the Markdown text when only that exists)."""
    logs = output_dir / "logs"
    cit_html = logs / "CITATION.html"
    if cit_html.exists():
        text = cit_html.read_text()
        m = re.search(r"<body[^>]*>(.*)</body>", text, flags=re.S | re.I)
        body = m.group(1) if m else text
        body = re.sub(r"<script.*?</script>", "", body, flags=re.S | re.I)
        body = re.sub(r"<(/?)h1\b", r"<\1h3", body, flags=re.I)
        body = re.sub(r"<(/?)h2\b", r"<\1h3", body, flags=re.I)
        body = re.sub(r"^\s*<h3[^>]*>\s*Methods\s*</h3>", "", body, flags=re.I)
    elif (logs / "CITATION.md").exists():
        paras = [p.strip() for p in (logs / "CITATION.md").read_text().split("\n\n") if p.strip()]
        body = "".join(f"<p>{esc(p)}</p>" for p in paras)
    else:
        return ""
    return ('<p class="lead">The boilerplate below was generated from the configuration of this '
            "run (<code>logs/CITATION.md</code>, <code>.bib</code>, <code>.html</code>). "
            "Copy it into your manuscript.</p>"
            f'<div class="boilerplate">{body}</div>')


def about_section(output_dir: Path) -> str:
    desc = read_json(output_dir / "dataset_description.json")
    config = _load_config(output_dir)
    parts = []
    gen = (desc.get("GeneratedBy") or [{}])[0]
    env = config.get("environment", {}) if isinstance(config, dict) else {}
    recorded = env.get("versions", {}) if isinstance(env, dict) else {}
    info = {
        "Generated by": f"{gen.get('Name', 'xaibids')} {gen.get('Version', '')}".strip(),
        "Code": gen.get("CodeURL"),
        "Container": _fmt(gen.get("Container")) if gen.get("Container") else None,
        "Run": (config.get("execution") or {}).get("run_uuid"),
        "Run date": env.get("date"),
        "Python": env.get("python"),
        "Platform": env.get("platform"),
    }
    parts.append(kv_html(info))
    rows = []
    for name in dict.fromkeys([*SOFTWARE, *recorded]):
        ran = recorded.get(name)
        try:
            here = metadata.version(name)
        except metadata.PackageNotFoundError:
            here = None
        if ran is None and here is None:
            continue
        rows.append({"package": name, "version of the run": ran or "not recorded",
                     "version rendering this report": here or "not installed"})
    if rows:
        parts.append("<h3>Software versions</h3>" + table_html(pd.DataFrame(rows)))
    if config:
        parts.append("<h3>Configuration</h3><p class=\"note\">From <code>logs/config.toml</code>; "
                     "pass it back with <code>--config-file</code> to repeat the run.</p>")
        for name, values in config.items():
            if name == "environment" or not isinstance(values, dict):
                continue
            flat = {k: (v if not isinstance(v, dict) else _fmt(v) or "{}") for k, v in values.items()}
            parts.append(f"<details{' open' if name in ('learning', 'attribution') else ''}>"
                         f"<summary>{esc(name)}</summary>{kv_html(flat)}</details>")
    return "".join(parts)


def errors_section(output_dir: Path, page: _Page, subject: str | None = None) -> str:
    logs = output_dir / "logs"
    pattern = f"sub-{subject}/**/crash*" if subject else "**/crash*"
    crashes = sorted(p for p in logs.glob(pattern) if p.is_file()) if logs.exists() else []
    parts = []
    for path in crashes:
        rel = path.relative_to(output_dir)
        text = ""
        if path.suffix in (".txt", ".log"):
            text = path.read_text(errors="replace")[-4000:]
        parts.append(f'<div class="error"><b>{esc(rel)}</b>'
                     + (f"<pre>{esc(text)}</pre>" if text else "") + "</div>")
    for title, tb in page.errors:
        parts.append(f'<div class="error"><b>The section “{esc(title)}” could not be rendered.'
                     f"</b><pre>{esc(tb)}</pre></div>")
    if not parts:
        return '<p class="ok">No errors to report!</p>'
    return "".join(parts)


def _finish(page: _Page, output_dir: Path, subject: str | None = None) -> None:
    page.add("methods", "Methods", methods_section, output_dir)
    page.add("about", "About", about_section, output_dir)
    page.sections.append(Section("errors", "Errors", errors_section(output_dir, page, subject)))


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
            trials = pd.DataFrame(_trials(mmap.sidecar))
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


def _ordered(methods, config: dict) -> list[str]:
    """Methods in the order the configuration lists them (others after, sorted)."""
    listed = (config.get("attribution") or {}).get("attribution") or []
    listed = [listed] if isinstance(listed, str) else list(listed)
    rank = {m: i for i, m in enumerate(listed)}
    return sorted(methods, key=lambda m: (rank.get(m, len(rank)), m))


def build_subject_report(output_dir: str | Path, subject: collect.SubjectMaps | str,
                         strict: bool = False) -> Path:
    """Write ``OUTPUT_DIR/sub-<label>.html``; returns its path."""
    output_dir = Path(output_dir)
    if isinstance(subject, str):
        found = collect.find_subject_maps(output_dir, [subject])
        if not found:
            raise FileNotFoundError(f"No attribution maps of sub-{subject} in {output_dir}.")
        subject = found[0]
    page = _Page(strict)
    page.add("summary", "Summary", subject_summary, subject)
    page.add("registration", "Registration to the template", registration_section, output_dir,
             subject.label, nav="Registration")
    multi_run = len(subject.runs) > 1
    config = _load_config(output_dir)
    for run in subject.runs:
        for method in _ordered(run.maps, config):
            mmap = run.maps[method]
            title = f"Attribution: {method}" + (f" ({run.label})" if multi_run else "")
            page.add(_anchor(f"map-{run.anchor}-{method}"), title, subject_method_section, run,
                     mmap, nav=method + (f" {run.label}" if multi_run else ""))
    _finish(page, output_dir, subject.label)
    text = _render(f"sub-{subject.label}", "Subject report: stabilized out-of-fold attribution "
                   "maps and the inputs they explain.", page,
                   home="group.html" if (output_dir / "group").exists() else None)
    return atomic_write_text(output_dir / f"sub-{subject.label}.html", text)


# --------------------------------------------------------------------------- group report
def _trials(sc: dict) -> list[dict]:
    """The per-sample predictions of a map sidecar: one entry, or one per trial when the
    sidecar lists them (``--features trials``: ``TrialVolume``, ``Fold``, … are lists)."""
    columns = {k: sc.get(v) for k, v in (("fold", "Fold"), ("true", "TrueLabel"),
                                         ("pred", "Prediction"), ("probability", "Probability"))}
    if not isinstance(columns["true"], list):
        return [columns]
    n = len(columns["true"])
    return pd.DataFrame({k: v if isinstance(v, list) else [v] * n
                         for k, v in columns.items()}).to_dict("records")


def _predictions(subjects: list[collect.SubjectMaps]) -> pd.DataFrame:
    rows = []
    for subject in subjects:
        for run in subject.runs:
            sc = next(iter(run.maps.values())).sidecar
            probs = sc.get("Probabilities") or sc.get("probabilities")
            rows += [{"subject": subject.label, "run": run.label, **trial,
                      "probabilities": probs if isinstance(probs, dict) else None}
                     for trial in _trials(sc)]
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
    config = _load_config(output_dir)
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
        rows.append(f"<tr><td>{link}</td><td>{esc(_fmt(r.fold))}</td><td>{esc(_fmt(r.true))}</td>"
                    f"<td>{esc(_fmt(r.pred))}</td><td class=\"num\">{esc(_fmt(r.probability))}</td>"
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
        rows.append(f"<tr><td>{link}</td><td>{esc(_fmt(trials['fold'].iloc[0]))}</td>"
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
    config = _load_config(output_dir)
    methods = _ordered(collect.group_methods(group_dir) if group_dir.exists() else [], config)
    preds = _predictions(subjects)
    classes = _classes(group_dir, methods, preds) if group_dir.exists() else []
    perf_path = group_dir / "desc-performance_metrics.tsv"
    perf = read_tsv(perf_path) if perf_path.exists() else None
    atlas_name = next((m.sidecar.get("Atlas") for s in subjects for r in s.runs
                       for m in r.maps.values() if m.sidecar.get("Atlas")), None)
    page = _Page(strict)
    page.add("summary", "Summary", group_summary, output_dir, subjects, preds, classes, methods,
             perf)
    page.add("performance", "Classification performance", performance_section, group_dir, preds,
             classes, nav="Performance")
    for method in methods:
        if (group_dir / f"desc-{method}_importance.tsv").exists():
            page.add(_anchor(f"importance-{method}"), f"Feature importance: {method}",
                     importance_section, output_dir, group_dir, method, classes, config,
                     atlas_name, nav=f"Importance ({method})")
        page.add(_anchor(f"voxels-{method}"), f"Voxel map: {method}", voxel_map_section,
                 group_dir, method, nav=f"Voxel map ({method})")
    if group_dir.exists():
        page.add("connectivity", "Co-saliency and static FNC", connectivity_section, group_dir,
                 methods, nav="Co-saliency")
        page.add("reliability", "Reliability", reliability_section, group_dir)
        page.add("validation", "Validation against ground truth", validation_section, group_dir,
                 nav="Validation")
    page.add("subjects", "Subjects", subjects_section, output_dir, preds)
    _finish(page, output_dir)
    return atomic_write_text(output_dir / "group.html", _render(
        "Group report", f"{len(subjects)} subject(s); generated from {output_dir}", page))


def build_reports(output_dir: str | Path, subjects=None, strict: bool = False,
                  n_procs: int = 1) -> list[Path]:
    """Render ``sub-<label>.html`` for every subject with attribution maps (or only
    ``subjects``, labels with or without ``sub-``) and ``group.html``, from the files in
    ``output_dir`` alone. Returns the paths written.

    ``n_procs`` > 1 renders the subject pages in that many processes (each page draws its own
    figures; nothing is shared).
    """
    output_dir = Path(output_dir)
    found = collect.find_subject_maps(output_dir, subjects)
    render = functools.partial(build_subject_report, output_dir, strict=strict)
    if n_procs > 1 and len(found) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(n_procs, len(found)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            written = list(pool.map(render, found))
    else:
        written = [render(subject) for subject in found]
    all_subjects = found if subjects is None else collect.find_subject_maps(output_dir)
    written.append(build_group_report(output_dir, all_subjects, strict=strict))
    LOGGER.info("Wrote %d report(s) in %s.", len(written), output_dir)
    return written
