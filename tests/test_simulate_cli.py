"""The xaibids-simulate command line."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from xaibids.cli.simulate import main
from xaibids.simulate.bidsio import tree_digest, validator_available


def test_cli_writes_dataset(tmp_path, capsys):
    out = tmp_path / "boxes"
    assert main(["boxes", str(out), "--n-subjects", "4", "--seed", "3", "--box-std", "2"]) == 0
    assert "wrote the boxes dataset" in capsys.readouterr().out
    assert len(pd.read_csv(out / "participants.tsv", sep="\t")) == 4
    sim = (out / "derivatives/timeseries/simulation.json").read_text()
    assert '"box_std": 2.0' in sim and "--box-std 2.0" in sim


@pytest.mark.skipif(not validator_available(), reason="bids-validator-deno not installed")
def test_cli_validate_flag(tmp_path, capsys):
    assert main(["rnn-ei", str(tmp_path / "r"), "--n-subjects", "2", "--n-timepoints", "30",
                 "--burn-in", "10", "--validate"]) == 0
    assert "0 errors" in capsys.readouterr().out


def test_cli_refuses_non_empty_output(tmp_path, capsys):
    out = tmp_path / "full"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["var", str(out), "--n-subjects", "2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("xaibids-simulate: error:") and "--overwrite" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert main(["var", str(out), "--n-subjects", "2", "--overwrite"]) == 0
    assert not (out / "keep.txt").exists()


def test_cli_bad_value_leaves_nothing(tmp_path, capsys):
    out = tmp_path / "bad"
    assert main(["rnn-ei", str(out), "--prevalence", "2"]) == 1
    assert "prevalence" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_help_and_module_entry(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["bold", "--help"])
    assert exc.value.code == 0
    proc = subprocess.run([sys.executable, "-m", "xaibids.cli.simulate", "boxes",
                           str(tmp_path / "m"), "--n-subjects", "2"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    # byte-identical to the same call in this process (another interpreter, same seed)
    assert main(["boxes", str(tmp_path / "here"), "--n-subjects", "2"]) == 0
    assert tree_digest(tmp_path / "m") == tree_digest(tmp_path / "here")
