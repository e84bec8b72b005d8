"""The one configuration object of a run, saved as ``OUTPUT_DIR/logs/config.toml``.

As in fMRIPrep, every parameter lives in one place, grouped in sections. Field names equal the
command-line option names (``--n-folds`` → ``n_folds``), so a saved file can be passed back with
``--config-file``: its values become defaults and options given on the command line win.
"""

from __future__ import annotations

import platform
import sys
import tomllib
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import tomli_w

from xaibids import __version__


@dataclass
class ExecutionSettings:
    """What to run on, where to write, and how to select the data."""

    bids_dir: str = ""
    output_dir: str = ""
    analysis_level: str = "participant"
    work_dir: str = ""
    participant_label: list[str] = field(default_factory=list)
    session_label: list[str] = field(default_factory=list)
    task_id: list[str] = field(default_factory=list)
    bids_filters: dict = field(default_factory=dict)
    derivatives: dict[str, str] = field(default_factory=dict)
    skip_bids_validation: bool = False
    reports_only: bool = False
    boilerplate_only: bool = False
    overwrite: bool = False
    notrack: bool = False
    verbose_count: int = 0
    run_uuid: str = ""
    version: str = __version__


@dataclass
class NipypeSettings:
    """Execution engine: Nipype plugin and resources."""

    nprocs: int = 0  # 0 → all available cores
    omp_nthreads: int = 0  # 0 → min(nprocs, 8)
    mem_gb: float = 0.0  # 0 → no limit given
    plugin: str = "MultiProc"
    plugin_args: dict = field(default_factory=dict)
    # per-node plugin_args of the group level's training and attribution nodes (e.g. a GPU
    # partition), from the plugin file's 'training_plugin_args:'
    training_plugin_args: dict = field(default_factory=dict)
    stop_on_first_crash: bool = False


@dataclass
class WorkflowSettings:
    """Feature extraction (participant level)."""

    features: str = "roi"
    atlas: str = "harvard-oxford"
    confounds: str = "simple"
    detrend: bool = True
    standardize: str = "none"
    high_pass: float = 0.0  # Hz, 0 → off
    low_pass: float = 0.0  # Hz, 0 → off
    min_coverage: float = 0.5
    ica_components: int = 20
    ica_template: str = ""
    ica_algorithm: str = "canica"
    ica_alpha: float = 10.0
    ica_mask: str = "intersection"
    ica_subject_maps: bool = False
    t1_resolution: float = 3.0


@dataclass
class LearningSettings:
    """Models and ensembles (group level)."""

    target: str = "group"
    cv_group: str = ""
    n_folds: int = 5
    n_models: int = 10  # 0 → chosen by the stability of the maps ("auto")
    max_models: int = 64
    ensemble_stability: float = 0.95  # 0.99 was never reached (docs/benchmarks.md)
    model: str = "region-cnn"
    sparsity: float = 0.2  # region-cnn's group lasso; RegionCNN's own default (tested)
    epochs: int | None = None  # None → 100, or more to make 400 mini-batch steps
    device: str = "auto"
    batched_training: str = "auto"
    length_policy: str = "crop"
    max_censored: float = 0.2  # learning.dataset.MAX_CENSORED (tested)
    # training details (settable with --config-file)
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 10
    val_fraction: float = 0.2


@dataclass
class AttributionSettings:
    """Attribution methods, baselines and stabilization (group level)."""

    attribution: list[str] = field(default_factory=lambda: ["ig"])
    baseline: list[str] = field(default_factory=lambda: ["zero"])
    stabilize: str = "closest"
    permutations: int = 0
    ig_steps: int | str = 50  # 0 → chosen per fold by the completeness check ("auto"); "adaptive"
    ig_tolerance: float = 0.01
    ig_rule: str = "gausslegendre"
    ig_multiply_by_inputs: bool = False
    reliability_samples: int = 16  # test subjects of the randomization/faithfulness checks
    positive: str = "abs"
    attribution_batch_size: int = 16
    # per-method parameters, e.g. {occlusion = {window = [5, 1]}} (settable with --config-file)
    attribution_params: dict = field(default_factory=dict)


@dataclass
class StatisticsSettings:
    """Group statistics of the stabilized maps (Lewis et al. 2023, §2.7-2.8)."""

    feature_groups: str = ""  # TSV of feature → group (domain); "" → none
    fdr_alpha: float = 0.01
    n_bootstrap: int = 1000
    ci_level: float = 0.95
    selection: str = "empirical-null"  # rule of the importance tables' 'selected' (stats.selection)
    selection_alpha: float = 0.05  # its FDR level, and the level of the classifier's verdict


@dataclass
class SeedSettings:
    """The master seed; every other random draw is derived from it."""

    random_seed: int = 0


#: Settings that say where and how fast a run happens rather than what it computes: left out of
#: the methods text's parameter list and of the completion records' comparison.
RUN_ONLY_SETTINGS = frozenset({
    "bids_dir", "output_dir", "work_dir", "analysis_level", "run_uuid", "version",
    "verbose_count", "notrack", "nprocs", "omp_nthreads", "mem_gb", "plugin", "plugin_args",
    "training_plugin_args", "stop_on_first_crash", "boilerplate_only", "reports_only",
    "overwrite", "skip_bids_validation", "device", "attribution_batch_size",
})


@dataclass
class Config:
    """All settings of one run, plus the environment it ran in."""

    execution: ExecutionSettings = field(default_factory=ExecutionSettings)
    nipype: NipypeSettings = field(default_factory=NipypeSettings)
    workflow: WorkflowSettings = field(default_factory=WorkflowSettings)
    learning: LearningSettings = field(default_factory=LearningSettings)
    attribution: AttributionSettings = field(default_factory=AttributionSettings)
    statistics: StatisticsSettings = field(default_factory=StatisticsSettings)
    seeds: SeedSettings = field(default_factory=SeedSettings)
    environment: dict = field(default_factory=dict)

    SECTIONS = ("execution", "nipype", "workflow", "learning", "attribution", "statistics",
                "seeds")

    @classmethod
    def section_of(cls) -> dict[str, str]:
        """Map each option name to the section that holds it."""
        cfg = cls()
        return {f.name: sec for sec in cls.SECTIONS for f in fields(getattr(cfg, sec))}

    def update(self, values: dict) -> None:
        """Set fields by option name (unknown names raise ``KeyError``)."""
        where = self.section_of()
        for key, value in values.items():
            setattr(getattr(self, where[key]), key, value)

    def to_dict(self) -> dict:
        return {sec: asdict(getattr(self, sec)) for sec in self.SECTIONS} | {
            "environment": dict(self.environment)
        }

    def non_defaults(self) -> dict[str, object]:
        """Options whose value differs from the default (for the boilerplate)."""
        default = Config()
        out = {}
        for sec in self.SECTIONS:
            for f in fields(getattr(self, sec)):
                value = getattr(getattr(self, sec), f.name)
                if value != getattr(getattr(default, sec), f.name):
                    out[f.name] = value
        return out

    def result_settings(self) -> dict[str, object]:
        """``{"section.option": value}`` of every setting that can change the results (all but
        :data:`RUN_ONLY_SETTINGS` and the input dataset paths of ``-d``)."""
        return {f"{sec}.{name}": value for sec, values in self.to_dict().items()
                if sec in self.SECTIONS for name, value in values.items()
                if name not in RUN_ONLY_SETTINGS and name != "derivatives"}

    def save(self, path: str | Path) -> Path:
        """Write the configuration as TOML (``None`` values are left out)."""
        from xaibids.fileio import atomic_write_text

        # a unique temporary name: participant jobs run in parallel into one output folder
        return atomic_write_text(Path(path), tomli_w.dumps(_drop_none(self.to_dict())))

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        """Read a TOML file written by :meth:`save` (unknown keys raise a clear error)."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ValueError(f"Could not read the configuration file {path}: {err}.") from None
        cfg = cls()
        for sec, values in data.items():
            if sec == "environment":
                cfg.environment = values
                continue
            if sec not in cls.SECTIONS:
                raise ValueError(
                    f"{path}: unknown section [{sec}]; sections are {', '.join(cls.SECTIONS)}."
                )
            section = getattr(cfg, sec)
            known = {f.name for f in fields(section)}
            for key, value in values.items():
                if key not in known:
                    raise ValueError(f"{path}: unknown setting '{key}' in section [{sec}].")
                setattr(section, key, value)
        return cfg


def _drop_none(obj):
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_none(v) for v in obj]
    return obj


def environment_info() -> dict:
    """Versions and platform facts recorded with every run."""
    versions = {}
    for dist in ("xaibids", "nipype", "niworkflows", "nilearn", "nibabel", "pybids", "torch",
                 "captum", "numpy", "scipy", "pandas", "networkx", "bids-validator-deno"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": versions,
    }


def new_run_uuid() -> str:
    """fMRIPrep-style run identifier: date, time and a short random suffix."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}_{uuid.uuid4()}"
