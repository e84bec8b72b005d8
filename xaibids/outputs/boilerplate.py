"""Methods boilerplate assembled from the workflows' ``__desc__`` text (as fMRIPrep does).

Descriptions cite with pandoc's ``[@key]`` or ``[@key1; @key2]`` markers; the keys are entries of
``boilerplate/references.bib`` (installed with the package as ``xaibids/data/boilerplate``).
Three files are written under ``logs/``: ``CITATION.md`` (the text), ``CITATION.bib`` (the
entries cited) and ``CITATION.html`` (the text with its references, readable offline). As
fMRIPrep does, the HTML is rendered by pandoc with citeproc when pandoc is installed; otherwise
(or if pandoc fails) a plain rendering with numbered references is written.
"""

from __future__ import annotations

import html
import logging
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from xaibids.fileio import atomic_path, atomic_write_text

LOGGER = logging.getLogger("xaibids")
CITE_RE = re.compile(r"\[(@[A-Za-z0-9_:-]+(?:;\s*@[A-Za-z0-9_:-]+)*)\]")


def cited_keys(text: str) -> list[str]:
    """Citation keys of ``text`` in order of first appearance."""
    keys = [k.strip().lstrip("@") for group in CITE_RE.findall(text) for k in group.split(";")]
    return list(dict.fromkeys(keys))
_ENTRY_RE = re.compile(r"^@\w+\{([^,]+),", re.M)


def bibliography() -> dict[str, str]:
    """BibTeX entries of ``references.bib`` keyed by citation key."""
    text = resources.files("xaibids").joinpath("data", "boilerplate", "references.bib").read_text()
    starts = [(m.start(), m.group(1).strip()) for m in _ENTRY_RE.finditer(text)]
    ends = [s for s, _ in starts[1:]] + [len(text)]
    return {key: text[start:end].strip() for (start, key), end in zip(starts, ends)}


def workflow_description(workflow) -> str:
    """The ``__desc__`` paragraphs of a LiterateWorkflow tree, each distinct text once.

    Per-subject and per-run sub-workflows repeat the same text; it is kept once, in the order of
    first appearance.
    """
    seen, parts = set(), []

    def visit(wf):
        desc = getattr(wf, "__desc__", None)
        if desc and desc not in seen:
            seen.add(desc)
            parts.append(desc.strip())
        for name in sorted(wf.list_node_names()):
            node = wf.get_node(name.split(".")[0])
            if hasattr(node, "list_node_names") and node is not wf:
                visit(node)

    visit(workflow)
    return "\n\n".join(parts)


def _bib_field(entry: str, name: str) -> str:
    match = re.search(rf"\b{name}\s*=\s*\{{(.*?)\}},?\s*$", entry, re.M | re.S)
    return re.sub(r"[{}\\\"]", "", " ".join(match.group(1).split())) if match else ""


def _html(text: str, cited: list[str], bib: dict[str, str]) -> str:
    number = {key: i + 1 for i, key in enumerate(cited)}
    body = html.escape(text)
    body = CITE_RE.sub(lambda m: "[" + ", ".join(
        str(number[k.strip().lstrip("@")]) for k in m.group(1).split(";")) + "]", body)
    body = re.sub(r"^# (.+)$", r"<h1>\1</h1>", body, flags=re.M)
    body = re.sub(r"\*([^*]+)\*", r"<em>\1</em>", body)
    body = re.sub(r"`([^`]+)`", r"<code>\1</code>", body)
    paragraphs = "".join(p if p.startswith("<h1>") else f"<p>{p}</p>"
                         for p in body.split("\n\n") if p.strip())
    refs = "".join(
        f"<li>{html.escape(_bib_field(bib[k], 'author'))}. {html.escape(_bib_field(bib[k], 'title'))}. "
        f"{html.escape(_bib_field(bib[k], 'journal') or _bib_field(bib[k], 'booktitle'))} "
        f"({html.escape(_bib_field(bib[k], 'year'))}).</li>"
        for k in cited
    )
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>xaibids methods</title>"
            "</head><body>" + paragraphs + "<h2>References</h2><ol>" + refs + "</ol></body></html>\n")


def _pandoc_html(markdown: Path, bib: Path, html_path: Path) -> bool:
    """Render ``markdown`` with pandoc and citeproc into ``html_path``; False where pandoc is
    absent or fails (the caller then writes the plain rendering)."""
    pandoc = shutil.which("pandoc")
    if pandoc is None:
        return False
    try:
        with atomic_path(html_path, suffix=".html") as tmp:
            subprocess.run(
                [pandoc, "--standalone", "--citeproc", f"--bibliography={bib}",
                 "--metadata", "pagetitle=xaibids methods", "--to", "html5",
                 f"--output={tmp}", str(markdown)],
                check=True, capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", b"") or b""
        LOGGER.warning("pandoc could not render %s (%s); writing a plain HTML rendering.",
                       markdown, detail.decode(errors="replace").strip() or err)
        return False
    return True


def write_boilerplate(text: str, logs_dir: str | Path) -> Path:
    """Write ``CITATION.md``, ``CITATION.bib`` and ``CITATION.html`` for ``text``.

    Raises ``KeyError`` for a citation key missing from the bibliography (a bug, caught by the
    tests).
    """
    logs_dir = Path(logs_dir)
    bib = bibliography()
    cited = cited_keys(text)
    missing = [key for key in cited if key not in bib]
    if missing:
        raise KeyError(f"citation keys missing from references.bib: {missing}")
    markdown = (
        "# Methods\n\n"
        "*The text below was generated automatically by xaibids from the configuration of this "
        "run (see `logs/config.toml`); it may be copied into a manuscript unchanged.*\n\n"
        + text.strip() + "\n"
    )
    bib_path = atomic_write_text(logs_dir / "CITATION.bib",
                                 "\n\n".join(bib[k] for k in cited) + "\n")
    md_path = atomic_write_text(logs_dir / "CITATION.md", markdown)
    if not _pandoc_html(md_path, bib_path, logs_dir / "CITATION.html"):
        atomic_write_text(logs_dir / "CITATION.html", _html(markdown, cited, bib))
    return md_path
