"""niworkflows' ``DerivativesDataSink`` configured for xaibids' file names.

Like XCP-D, the entities and path patterns of niworkflows' configuration are extended with the
``stat-`` (statistic) and ``atlas-`` entities and the ``timeseries``/``attribution`` suffixes, and
files are written at the root of the output directory (``out_path_base = ""``).
"""

import json
from importlib import resources

from bids.layout import Config
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
