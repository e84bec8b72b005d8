"""niworkflows' ``DerivativesDataSink`` configured for xaibids' file names.

Like XCP-D, the entities and path patterns of niworkflows' configuration are extended with the
``stat-`` (statistic) and ``atlas-`` entities and the ``timeseries``/``attribution`` suffixes, and
files are written at the root of the output directory (``out_path_base = ""``).

Writes are atomic: niworkflows writes into a hidden staging folder inside the output directory
(same file system) and each finished file is then renamed into place, so an interrupted run
never leaves a half-written derivative where a complete one was (issue #11).
"""

import json
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

from bids.layout import Config
from nipype.interfaces.base import isdefined
from niworkflows.interfaces.bids import DerivativesDataSink as _BaseDerivativesDataSink

_SPEC = json.loads(
    resources.files("xaibids").joinpath("data", "xaibids_bids_config.json").read_text()
)
_ENTITIES = {
    name: ent.pattern
    for config in ("bids", "derivatives")
    for name, ent in Config.load(config).entities.items()
}
_ENTITIES.update({ent["name"]: ent["pattern"] for ent in _SPEC["entities"]})
ENTITY_LIST = [{"name": name, "pattern": pattern} for name, pattern in _ENTITIES.items()]


class DerivativesDataSink(_BaseDerivativesDataSink):
    """Write a derivative under ``base_directory`` with a BIDS name built from ``source_file``."""

    out_path_base = ""
    _config_entities = frozenset(_ENTITIES)
    _config_entities_dict = ENTITY_LIST
    _file_patterns = tuple(_SPEC["default_path_patterns"]) + tuple(
        _BaseDerivativesDataSink._file_patterns
    )

    def _run_interface(self, runtime):
        given = self.inputs.base_directory
        final = Path(given if isdefined(given) else runtime.cwd).absolute()
        final.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".sink-", dir=final))
        self.inputs.base_directory = str(stage)
        try:
            runtime = super()._run_interface(runtime)
            # data files first, sidecars last: a sidecar never describes a file not yet there
            for key in ("out_file", "out_meta"):
                value = self._results.get(key)
                if value is None or not isdefined(value):
                    continue
                moved = [str(_publish(Path(path), stage, final))
                         for path in (value if isinstance(value, list) else [value])]
                self._results[key] = moved if isinstance(value, list) else moved[0]
        finally:
            self.inputs.base_directory = given
            shutil.rmtree(stage, ignore_errors=True)
        return runtime


def _publish(path: Path, stage: Path, final: Path) -> Path:
    """Rename a file written under ``stage`` to the same place under ``final``.

    niworkflows hard-links inputs it copies unchanged (e.g. TSVs from the work folder); such a
    file is copied first, so a derivative never shares its data with a file that a later step
    could rewrite in place.
    """
    target = final / path.relative_to(stage)
    target.parent.mkdir(parents=True, exist_ok=True)
    if path.stat().st_nlink > 1:
        private = path.with_name(f".{path.name}.copy")
        shutil.copy2(path, private)
        path = private
    os.replace(path, target)
    return target
