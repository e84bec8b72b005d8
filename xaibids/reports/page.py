"""The parts every report page shares: sections collected with their errors, HTML helpers
(figures, tables, key-value lists), and the *Methods*, *About* and *Errors* sections.
"""

from __future__ import annotations

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
from xaibids.reports import figures
from xaibids.reports.collect import read_json


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


class Page:
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


def fmt(value) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.2e}"
        return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:.1f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items())
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
            cells.append(f'<td class="num">{esc(fmt(v))}</td>' if num else f"<td>{esc(fmt(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    return f'<div class="scroll">{table}</div>' if scroll else table


def kv_html(items: dict) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(fmt(v))}</td></tr>" for k, v in items.items()
                   if v is not None and v != "")
    return f'<table class="kv">{rows}</table>'


def stat_html(value, label: str) -> str:
    return f'<div class="stat"><b>{esc(value)}</b><span>{esc(label)}</span></div>'


def anchor(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]+", "-", text).strip("-").lower()


def render_page(title: str, subtitle: str, page: Page, home: str | None = None) -> str:
    import jinja2

    source = resources.files("xaibids.reports").joinpath("templates/report.html").read_text()
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(source).render(
        title=title, subtitle=subtitle, sections=page.sections, home=home, version=__version__,
        date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


# --------------------------------------------------------------------------- shared sections
def sample_rows(sc: dict) -> list[dict]:
    """The per-sample predictions of a map sidecar: one entry, or one per trial when the
    sidecar lists them (``--features trials``: ``TrialVolume``, ``Fold``, … are lists)."""
    columns = {k: sc.get(v) for k, v in (("fold", "Fold"), ("true", "TrueLabel"),
                                         ("pred", "Prediction"), ("probability", "Probability"))}
    if not isinstance(columns["true"], list):
        return [columns]
    n = len(columns["true"])
    return pd.DataFrame({k: v if isinstance(v, list) else [v] * n
                         for k, v in columns.items()}).to_dict("records")


def ordered_methods(methods, config: dict) -> list[str]:
    """Methods in the order the configuration lists them (others after, sorted)."""
    listed = (config.get("attribution") or {}).get("attribution") or []
    listed = [listed] if isinstance(listed, str) else list(listed)
    rank = {m: i for i, m in enumerate(listed)}
    return sorted(methods, key=lambda m: (rank.get(m, len(rank)), m))


def load_config(output_dir: Path) -> dict:
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
    config = load_config(output_dir)
    parts = []
    gen = (desc.get("GeneratedBy") or [{}])[0]
    env = config.get("environment", {}) if isinstance(config, dict) else {}
    recorded = env.get("versions", {}) if isinstance(env, dict) else {}
    info = {
        "Generated by": f"{gen.get('Name', 'xaibids')} {gen.get('Version', '')}".strip(),
        "Code": gen.get("CodeURL"),
        "Container": fmt(gen.get("Container")) if gen.get("Container") else None,
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
            flat = {k: (v if not isinstance(v, dict) else fmt(v) or "{}") for k, v in values.items()}
            parts.append(f"<details{' open' if name in ('learning', 'attribution') else ''}>"
                         f"<summary>{esc(name)}</summary>{kv_html(flat)}</details>")
    return "".join(parts)


def errors_section(output_dir: Path, page: Page, subject: str | None = None) -> str:
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


def finish_page(page: Page, output_dir: Path, subject: str | None = None) -> None:
    page.add("methods", "Methods", methods_section, output_dir)
    page.add("about", "About", about_section, output_dir)
    page.sections.append(Section("errors", "Errors", errors_section(output_dir, page, subject)))
