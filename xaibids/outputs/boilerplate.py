"""Methods boilerplate assembled from the workflows' ``__desc__`` text (as fMRIPrep does)."""

from __future__ import annotations

from pathlib import Path

from xaibids.outputs.derivatives import atomic_write_text


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


def write_boilerplate(workflow, logs_dir: str | Path) -> Path:
    """Write ``logs/CITATION.md`` from the workflow's descriptions."""
    text = (
        "# Methods\n\n"
        "*The text below was generated automatically by xaibids from the configuration of this "
        "run (see `logs/config.toml`); it may be copied into a manuscript unchanged.*\n\n"
        + workflow_description(workflow) + "\n"
    )
    return atomic_write_text(Path(logs_dir) / "CITATION.md", text)
