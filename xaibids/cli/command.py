"""``xaibids BIDS_DIR OUTPUT_DIR {participant,group}``: parse, check, configure, run.

``xaibids demo`` is dispatched before this module, by :func:`xaibids.cli.run.main`.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from xaibids import __version__
from xaibids.config import Config, environment_info, new_run_uuid
from xaibids.errors import XaibidsError

LOGGER = logging.getLogger("xaibids")


def setup_logging(verbose_count: int) -> None:
    """xaibids logs at INFO (DEBUG with -vv); Nipype's workflow logger at WARNING (INFO with -v)."""
    level = logging.DEBUG if verbose_count >= 2 else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-7s | %(message)s", "%H:%M:%S"))
    LOGGER.handlers[:] = [handler]
    LOGGER.setLevel(level)
    LOGGER.propagate = False
    from nipype import config as nipype_config, logging as nipype_logging

    nipype_config.set("logging", "workflow_level", "INFO" if verbose_count else "WARNING")
    nipype_config.set("logging", "interface_level", "DEBUG" if verbose_count >= 2 else "WARNING")
    nipype_config.set("execution", "check_version", "false")
    nipype_logging.update_logging(nipype_config)
    from xaibids.errors import CrashTracebackFilter

    workflow_logger = logging.getLogger("nipype.workflow")
    for old in [f for f in workflow_logger.filters if isinstance(f, CrashTracebackFilter)]:
        workflow_logger.removeFilter(old)
    if not verbose_count:  # with -v the node tracebacks are printed too
        workflow_logger.addFilter(CrashTracebackFilter())


def parse_args(argv: list[str] | None = None) -> tuple[Config, dict]:
    """Parse the command line (and ``--config-file``) into a :class:`Config`.

    Returns the config and the raw option values that are not settings (e.g. the filter file).
    """
    from xaibids.cli.parser import get_parser

    parser = get_parser()
    known, _ = parser.parse_known_args(argv)
    loaded = None
    if known.config_file:
        try:
            loaded = Config.load(known.config_file)
        except ValueError as err:  # an input file, not a usage error: exit 1 like the others
            raise XaibidsError(f"{err} Fix the file, or give a logs/config.toml written by "
                               "xaibids.") from None
        flat = {k: v for sec in Config.SECTIONS for k, v in loaded.to_dict()[sec].items()}
        flat["derivatives"] = list(flat.get("derivatives", {}).items())
        dests = {a.dest for a in parser._actions}
        parser.set_defaults(**{k: v for k, v in flat.items() if k in dests})
    opts = parser.parse_args(argv)

    config = loaded or Config()
    values = vars(opts).copy()
    extra = {k: values.pop(k) for k in ("config_file", "bids_filter_file", "use_plugin")}
    values["derivatives"] = dict(values["derivatives"])
    for key in ("bids_dir", "output_dir", "work_dir", "ica_template", "feature_groups"):
        if values.get(key) is not None:
            values[key] = str(Path(values[key]).absolute())
    values["work_dir"] = values["work_dir"] or (
        config.execution.work_dir or str(Path("work").absolute())
    )
    values["ica_template"] = values["ica_template"] or ""
    values["feature_groups"] = values["feature_groups"] or ""
    config.update(values)
    return config, extra


def check_paths(config: Config) -> None:
    """Input must exist; output and work directories must not be the input or inside it."""
    from xaibids.inputs.checks import check_writable_dir

    ex = config.execution
    bids_dir, out_dir, work_dir = Path(ex.bids_dir), Path(ex.output_dir), Path(ex.work_dir)
    if not bids_dir.is_dir():
        raise XaibidsError(f"The input dataset folder {bids_dir} does not exist.")
    for name, path in (("output directory", out_dir), ("work directory", work_dir)):
        if path.resolve() == bids_dir.resolve() or path.resolve().is_relative_to(bids_dir.resolve()):
            raise XaibidsError(
                f"The {name} {path} is inside the input dataset {bids_dir}; xaibids never writes "
                "into its input. Choose a folder outside it (e.g. a sibling 'derivatives/xaibids' "
                "next to the dataset)."
            )
    if not ex.reports_only:
        check_writable_dir(out_dir, "output directory")
        check_writable_dir(work_dir, "work directory")
    for name, path in ex.derivatives.items():
        if not Path(path).is_dir():
            raise XaibidsError(f"The derivatives dataset '-d {name}={path}' does not exist.")
    template = config.workflow.ica_template
    if template and not Path(template).is_file():
        raise XaibidsError(f"The --ica-template file {template} does not exist; give a 4D NIfTI "
                           "of spatial maps (a TSV of names beside it is optional).")
    groups = config.statistics.feature_groups
    if groups and not Path(groups).is_file():
        raise XaibidsError(f"The --feature-groups file {groups} does not exist; give a TSV with "
                           "columns 'feature' and 'group'.")


#: Nipype plugins that submit the graph and return before it has run, and what to use instead.
GRAPH_PLUGINS = {"SLURMGraph": "SLURM", "SGEGraph": "SGE", "CondorDAGMan": "Condor",
                 "SomaFlow": "MultiProc"}


def plugin_settings(config: Config, use_plugin: Path | None) -> None:
    """Fill ``config.nipype`` from ``--use-plugin`` or the resource options (MultiProc)."""
    import yaml

    nip = config.nipype
    nprocs = nip.nprocs or os.cpu_count() or 1
    nip.nprocs = nprocs
    nip.omp_nthreads = nip.omp_nthreads or min(nprocs, 8)
    if use_plugin:
        try:
            settings = yaml.safe_load(Path(use_plugin).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise XaibidsError(f"Could not read the plugin file {use_plugin}: {err}.") from None
        if not isinstance(settings, dict) or "plugin" not in settings:
            raise XaibidsError(
                f"The plugin file {use_plugin} needs a 'plugin:' key (e.g. 'plugin: MultiProc') "
                "and optionally 'plugin_args:' and 'training_plugin_args:'."
            )
        for key in ("plugin_args", "training_plugin_args"):
            if not isinstance(settings.get(key) or {}, dict):
                raise XaibidsError(f"'{key}:' of the plugin file {use_plugin} must be a mapping "
                                   "(key: value lines indented under it).")
        nip.plugin = str(settings["plugin"])
        if nip.plugin in GRAPH_PLUGINS:
            raise XaibidsError(
                f"The plugin file {use_plugin} asks for Nipype's {nip.plugin} plugin, which "
                "submits the whole graph to the scheduler and returns at once; xaibids reads "
                "each step's results when it has run (reports, the group statistics), so it "
                f"cannot use it. Use 'plugin: {GRAPH_PLUGINS[nip.plugin]}', which submits each "
                "node as a job and waits for it."
            )
        nip.plugin_args = dict(settings.get("plugin_args") or {})
        nip.training_plugin_args = dict(settings.get("training_plugin_args") or {})
    elif not nip.plugin_args:
        nip.plugin = nip.plugin or "MultiProc"
        if nip.plugin == "MultiProc":
            nip.plugin_args = {"n_procs": nprocs, "raise_insufficient": False,
                               "maxtasksperchild": 1}
            if nip.mem_gb:
                nip.plugin_args["memory_gb"] = nip.mem_gb


def main(argv: list[str] | None = None) -> int:
    """``xaibids BIDS_DIR OUTPUT_DIR {participant,group} ...``; returns the exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        config, extra = parse_args(args)
    except XaibidsError as err:
        print(f"xaibids: error: {err}", file=sys.stderr)
        return 1
    setup_logging(config.execution.verbose_count)
    try:
        return run(config, extra)
    except (XaibidsError, ValueError, OSError) as err:
        if config.execution.verbose_count:
            LOGGER.exception("xaibids stopped")
        print(f"xaibids: error: {_error_text(err)}", file=sys.stderr)
        return 1


def _error_text(err: Exception) -> str:
    """The one-line message of an error; file-system errors name the file and the fix."""
    import errno

    if not isinstance(err, OSError) or isinstance(err, XaibidsError):
        return str(err)
    where = f" ({err.filename})" if err.filename else ""
    reason = err.strerror or str(err)
    if err.errno == errno.ENOSPC or err.errno == errno.EDQUOT:
        fix = ("free space on that device, or choose an OUTPUT_DIR and -w/--work-dir on another "
               "one; files being written were left out, so rerun the same command afterwards.")
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "check the permissions of that folder, or choose another OUTPUT_DIR or -w/--work-dir."
    else:
        fix = "check the file and the folders given on the command line."
    return f"{reason}{where}: {fix}"


def check_group_options(config: Config) -> None:
    """Refuse, before any work, group-level choices that cannot run together."""
    from xaibids.levels.group import ensemble_config
    from xaibids.models import MODEL_NAMES

    if config.learning.model not in MODEL_NAMES:
        raise XaibidsError(
            f"--model {config.learning.model} is not available in xaibids {__version__} yet; "
            f"use one of {', '.join(MODEL_NAMES)}."
        )
    if config.attribution.ig_steps == "adaptive" and config.attribution.ig_rule != "gausslegendre":
        raise XaibidsError(f"--ig-steps adaptive splits the path into Gauss-Legendre panels; drop "
                           f"--ig-rule {config.attribution.ig_rule}, or give --ig-steps a number.")
    if config.learning.n_models == 0 and config.learning.max_models < 2:
        raise XaibidsError("--n-models auto compares ensembles of n and 2n models; give "
                           "--max-models 2 or more.")
    try:
        ensemble_config(config)
    except ValueError as err:  # e.g. a method that does not support the model
        raise XaibidsError(f"{err} Choose other --attribution methods or another --model.") from None


#: ``--features`` whose samples are 3D volumes (classified by ``linear`` or ``cnn3d``).
VOLUME_FEATURES = ("t1", "trials")


def configure(config: Config, extra: dict):
    """Complete and check the configuration; return the atlas (None for ICA). Writes nothing."""
    from xaibids.features.atlases import AtlasError, load_atlas
    from xaibids.inputs.layout import clean_labels, load_bids_filters

    ex = config.execution
    ex.run_uuid = new_run_uuid()
    ex.version = __version__
    config.environment = environment_info()
    ex.participant_label = clean_labels(ex.participant_label, "sub-", "--participant-label")
    ex.session_label = clean_labels(ex.session_label, "ses-", "--session-label")
    ex.task_id = clean_labels(ex.task_id, "task-", "--task-id")
    if extra.get("bids_filter_file"):
        ex.bids_filters = load_bids_filters(extra["bids_filter_file"])
    volume_models = ("cnn3d", "linear")
    features = config.workflow.features
    if features in VOLUME_FEATURES and ex.analysis_level == "group" \
            and config.learning.model not in volume_models:
        raise XaibidsError(
            f"--features {features} classifies 3D volumes: give --model linear (Gotsopoulos et al. 2018's "
            f"network without hidden layers) or --model cnn3d (Kan et al. 2020's 3D CNN); --model "
            f"{config.learning.model} reads timecourses."
        )
    if features not in VOLUME_FEATURES and config.learning.model == "cnn3d":
        raise XaibidsError("--model cnn3d classifies 3D volumes; use it with --features t1 or "
                           "trials.")
    if ex.analysis_level == "group":
        check_group_options(config)
    check_paths(config)
    plugin_settings(config, extra.get("use_plugin"))
    if config.workflow.features == "ica":
        return None  # ICA timecourses need no atlas
    try:
        return load_atlas(config.workflow.atlas)
    except AtlasError as err:
        raise XaibidsError(str(err)) from None


def reports_only(config: Config) -> int:
    """``--reports-only``: render the HTML reports again from the files in OUTPUT_DIR."""
    from xaibids.inputs.layout import clean_labels
    from xaibids.outputs.completion import refresh_outputs
    from xaibids.reports import build_reports

    out = Path(config.execution.output_dir)
    if not (out / "dataset_description.json").is_file():
        raise XaibidsError(
            f"--reports-only: {out} holds no xaibids outputs (no dataset_description.json); run "
            "the participant or group level first, or give the folder that holds them."
        )
    labels = clean_labels(config.execution.participant_label, "sub-", "--participant-label")
    reports = build_reports(out, subjects=labels or None,
                            n_procs=config.nipype.nprocs or os.cpu_count() or 1)
    refresh_outputs(out, reports)
    for path in reports:
        LOGGER.info("Report: %s", path)
    return 0


def run(config: Config, extra: dict) -> int:
    """Run the configured analysis level."""
    from xaibids.cli.parser import option_names
    from xaibids.levels.participant import collect_inputs, run_participant
    from xaibids.inputs.validation import validate_bids
    from xaibids.threads import run_threads

    ex = config.execution
    if ex.reports_only:
        return reports_only(config)
    atlas = configure(config, extra)
    # --omp-nthreads for this process and, through the environment, every worker and job
    with run_threads(config.nipype.omp_nthreads):
        if not ex.skip_bids_validation:
            LOGGER.info("Validating %s with bids-validator-deno", ex.bids_dir)
            validate_bids(ex.bids_dir)
        subjects = collect_inputs(config, atlas)
        if ex.analysis_level == "group":
            from xaibids.inputs.checks import check_group_inputs

            check_group_inputs(config, subjects)  # before OUTPUT_DIR is created
        if ex.analysis_level == "participant":
            return run_participant(config, atlas, subjects, option_names())
        from xaibids.levels.group import run_group

        return run_group(config, atlas, subjects, option_names())

