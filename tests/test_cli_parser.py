"""Command-line parsing, the config object and label cleaning (no data needed)."""

import argparse

import pytest

from xaibids.cli.parser import get_parser, parse_mem
from xaibids.cli.command import parse_args
from xaibids.config import Config
from xaibids.errors import XaibidsError
from xaibids.inputs.layout import clean_labels


@pytest.mark.parametrize("text, gb", [("16000", 16000 / 1024), ("16G", 16.0), ("512MB", 0.5),
                                      ("2t", 2048.0), ("1048576K", 1.0)])
def test_parse_mem_units(text, gb):
    assert parse_mem(text) == pytest.approx(gb)


def test_parse_mem_rejects_garbage():
    with pytest.raises(argparse.ArgumentTypeError, match="16G"):
        parse_mem("lots")


def test_underscore_aliases_and_prefixes(tmp_path):
    config, _ = parse_args(["bids", str(tmp_path / "out"), "group", "--participant_label", "sub-01",
                            "02", "--n_folds", "3", "--cv-group", "site", "--mem", "8G",
                            "-d", "fmriprep=/data/fmriprep", "/data/xcpd", "-vv"])
    ex = config.execution
    assert ex.participant_label == ["sub-01", "02"]
    assert clean_labels(ex.participant_label, "sub-", "--participant-label") == ["01", "02"]
    assert config.learning.n_folds == 3 and config.learning.cv_group == "site"
    assert config.nipype.mem_gb == 8.0
    assert ex.derivatives == {"fmriprep": "/data/fmriprep", "xcpd": "/data/xcpd"}
    assert ex.verbose_count == 2
    assert ex.work_dir.endswith("work")


@pytest.mark.parametrize("label", ["../01", "sub-01/..", "0 1", "sub-"])
def test_labels_with_path_characters_are_refused(label):
    with pytest.raises(XaibidsError, match="letters and digits"):
        clean_labels([label], "sub-", "--participant-label")


def test_help_explains_every_option():
    parser = get_parser()
    undocumented = [a.option_strings for a in parser._actions
                    if a.option_strings and not a.help]
    assert undocumented == []
    text = parser.format_help()
    for option in ("--participant-label", "--bids-filter-file", "--use-plugin", "--atlas",
                   "--confounds", "--target", "--cv-group", "--n-models", "--attribution",
                   "--stabilize", "--random-seed", "--notrack"):
        assert option in text


def test_config_save_load_roundtrip(tmp_path):
    config = Config()
    config.update({"n_models": 7, "derivatives": {"fmriprep": "/x"}, "attribution": ["ig", "gbp"],
                   "bids_filters": {"bold": {"task": "rest", "run": 1}}})
    path = config.save(tmp_path / "logs" / "config.toml")
    loaded = Config.load(path)
    assert loaded.to_dict() == config.to_dict()
    assert loaded.non_defaults() == {"n_models": 7, "derivatives": {"fmriprep": "/x"},
                                     "attribution": ["ig", "gbp"],
                                     "bids_filters": {"bold": {"task": "rest", "run": 1}}}


def test_config_file_errors_are_clear(tmp_path):
    bad = tmp_path / "config.toml"
    bad.write_text("[learning]\nn_modles = 3\n")
    with pytest.raises(ValueError, match="unknown setting 'n_modles'"):
        Config.load(bad)


def test_attribution_choices_are_the_registered_methods():
    from xaibids.attribution import METHODS
    from xaibids.attribution.ig import IG_RULES as REGISTRY_RULES
    from xaibids.cli.parser import ATTRIBUTION_METHODS, IG_RULES

    assert sorted(ATTRIBUTION_METHODS) == sorted(METHODS)
    assert set(IG_RULES) == set(REGISTRY_RULES)


def test_non_default_options_are_spelled_as_on_the_command_line():
    from xaibids.cli.parser import option_names
    from xaibids.cli.command import parse_args
    from xaibids.outputs.methods import non_default_options

    config, _ = parse_args(["bids", "out", "group", "--no-detrend", "--baseline", "zero", "mean",
                            "--fdr-alpha", "0.05", "--run-length", "error", "--nprocs", "3"])
    options = non_default_options(config, option_names())
    assert "`--no-detrend`" in options
    assert "`--baseline zero mean`" in options
    assert "`--fdr-alpha 0.05`" in options
    assert "`--run-length error`" in options
    assert not any("nprocs" in o for o in options)  # resources do not change results


def test_plugin_file_gives_training_nodes_their_own_resources(tmp_path):
    from xaibids.cli.command import parse_args, plugin_settings
    from xaibids.errors import XaibidsError

    plugin = tmp_path / "plugin.yml"
    plugin.write_text("plugin: SLURM\nplugin_args:\n  sbatch_args: --partition=cpu\n"
                      "training_plugin_args:\n  sbatch_args: --partition=gpu --gres=gpu:1\n")
    config, extra = parse_args(["bids", "out", "group", "--use-plugin", str(plugin)])
    plugin_settings(config, extra["use_plugin"])
    assert config.nipype.plugin == "SLURM"
    assert config.nipype.plugin_args == {"sbatch_args": "--partition=cpu"}
    assert config.nipype.training_plugin_args == {"sbatch_args": "--partition=gpu --gres=gpu:1"}
    plugin.write_text("plugin: SLURM\ntraining_plugin_args: gpu\n")
    with pytest.raises(XaibidsError, match="must be a mapping"):
        plugin_settings(config, extra["use_plugin"])
    # graph plugins return before the graph has run: refused, naming the plugin to use
    plugin.write_text("plugin: SLURMGraph\nplugin_args:\n  dont_resubmit_completed_jobs: true\n")
    with pytest.raises(XaibidsError, match=r"SLURMGraph plugin.*'plugin: SLURM'"):
        plugin_settings(config, extra["use_plugin"])


@pytest.mark.parametrize("text, stored", [("32", 32), ("auto", 0), ("adaptive", "adaptive")])
def test_ig_steps_take_a_count_auto_or_adaptive_and_survive_the_config_file(tmp_path, text, stored):
    config, _ = parse_args(["bids", "out", "group", "--ig-steps", text])
    assert config.attribution.ig_steps == stored
    assert Config.load(config.save(tmp_path / "config.toml")).attribution.ig_steps == stored
    with pytest.raises(SystemExit):
        parse_args(["bids", "out", "group", "--ig-steps", "adaptively"])
