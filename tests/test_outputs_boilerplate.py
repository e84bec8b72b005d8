"""``logs/CITATION.{md,bib,html}``: pandoc with citeproc where it is installed, a plain
rendering otherwise or when pandoc fails."""

import shutil

import pytest

from xaibids.outputs import boilerplate
from xaibids.outputs.boilerplate import write_boilerplate

TEXT = "Maps were stabilized [@lewis2023; @strock2025] with *closest* (`--n-models 3`)."


def test_citations_md_and_bib(tmp_path):
    md = write_boilerplate(TEXT, tmp_path)
    assert md == tmp_path / "CITATION.md"
    assert TEXT in md.read_text()
    bib = (tmp_path / "CITATION.bib").read_text()
    assert bib.count("@") == 2 and "{lewis2023," in bib and "{strock2025," in bib
    with pytest.raises(KeyError, match="nokey"):
        write_boilerplate("See [@nokey].", tmp_path / "other")


@pytest.mark.skipif(shutil.which("pandoc") is None, reason="pandoc is not installed")
def test_html_by_pandoc_with_citeproc(tmp_path):
    write_boilerplate(TEXT, tmp_path)
    page = (tmp_path / "CITATION.html").read_text()
    assert 'name="generator" content="pandoc"' in page
    assert page.count('class="csl-entry"') == 2 and "Cerebral Cortex" in page
    assert "[@" not in page and "<code>--n-models 3</code>" in page


@pytest.mark.parametrize("which", [None, "/bin/false"], ids=["no-pandoc", "pandoc-fails"])
def test_plain_html_without_a_working_pandoc(tmp_path, monkeypatch, which):
    monkeypatch.setattr(boilerplate.shutil, "which", lambda name: which)
    write_boilerplate(TEXT, tmp_path)
    page = (tmp_path / "CITATION.html").read_text()
    assert "pandoc" not in page and "[@" not in page
    assert "[1, 2]" in page and page.count("<li>") == 2
    assert not list(tmp_path.glob(".CITATION.html.*"))  # no temporary file left behind
