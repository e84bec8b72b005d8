"""Methods text of a run, rendered from the templates in ``boilerplate/`` (installed with the
package as ``xaibids/data/boilerplate``) with the configuration actually used.

As in fMRIPrep, the participant-level text comes from the workflows' ``__desc__`` strings
(:func:`xaibids.outputs.boilerplate.workflow_description`); the group level, whose text depends
on the ensemble's settings rather than on the shape of its Nipype graph (fold x chunk training
nodes), is described by ``boilerplate/group.md``. Both end with the parameters that differ
from the defaults, spelled as command-line options, so a reader can repeat the run.
"""

from __future__ import annotations

import re
from importlib import resources

import jinja2

from xaibids.config import RUN_ONLY_SETTINGS


def render_template(name: str, **context) -> str:
    """Render ``boilerplate/<name>`` (Jinja2), paragraphs reflowed to single lines."""
    source = resources.files("xaibids").joinpath("data", "boilerplate", name).read_text()
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    text = env.from_string(source).render(**context)
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    # a line break inside a hyphenated word ("permutation-\nderived") joins without a space
    return "\n\n".join(re.sub(r"(\w-) (?=\w)", r"\1", p) for p in paragraphs if p)


def _format_value(value) -> str:
    if isinstance(value, bool):
        return ""
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value))
    return str(value)


def non_default_options(config, option_names: dict[str, str]) -> list[str]:
    """Every non-default parameter of ``config`` as a command-line option, in backticks.

    ``option_names`` maps config fields to their long options
    (:func:`xaibids.cli.parser.option_names`); a field it lacks is shown as ``--field-name``.

    Boolean switches are named alone (``--no-detrend``); locations and resource settings
    (paths, threads, memory, the Nipype plugin) are left out: they do not change the result.
    Derivatives datasets are named by their labels only.
    """
    out = []
    for field, value in config.non_defaults().items():
        if field in RUN_ONLY_SETTINGS:
            continue
        if field == "derivatives":
            value = sorted(value)
        if field in ("ig_steps", "n_models") and value == 0:
            value = "auto"
        option = option_names.get(field, "--" + field.replace("_", "-"))
        shown = _format_value(value)
        out.append(f"`{option} {shown}`" if shown else f"`{option}`")
    return out


def parameters_text(config, option_names: dict[str, str]) -> str:
    """The closing paragraph naming every non-default parameter (``boilerplate/parameters.md``);
    ``option_names`` as in :func:`non_default_options`."""
    return render_template("parameters.md", version=config.execution.version,
                           options=non_default_options(config, option_names))


def _param_text(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def describe_methods(ens_config) -> list[dict]:
    """One entry per attribution map for ``boilerplate/group.md``.

    Each has ``text`` (the method's name and description from the registry), ``cite`` (its
    BibTeX keys) and ``params`` (the baseline and every parameter actually used).
    """
    from xaibids.attribution import METHODS
    from xaibids.learning.ensemble import attribution_settings

    out = []
    for key, setting in attribution_settings(ens_config).items():
        entry = METHODS[setting["method"]]
        params = [f"{setting['baseline']} baseline"] if setting["baseline"] else []
        params += [f"{name} = {_param_text(value)}" for name, value in setting["params"].items()
                   if value is not None]
        description = entry.description[0].lower() + entry.description[1:].rstrip(".")
        out.append({"key": key, "text": f"{entry.name} (maps `desc-{key}`), {description}",
                    "cite": list(entry.citations), "params": ", ".join(params)})
    return out


def method_parameters(ens_config) -> dict[str, dict]:
    """Map key → the method, baseline and parameters recorded in each map's sidecar."""
    from xaibids.learning.ensemble import attribution_settings

    return {key: {"Method": s["method"], "Baseline": s["baseline"], **s["params"]}
            for key, s in attribution_settings(ens_config).items()}
