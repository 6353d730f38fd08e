"""Workflow configuration: JSON-schema validation with errors that name the offending key.

Both ``config/config.yaml`` (embedded default) and ``config/paper.yaml`` (the paper's setup) are checked
against ``workflow/schemas/config.schema.yaml`` when the workflow starts, before any job runs. The schema
is strict (unknown keys are errors, numbers must be numbers): YAML 1.1 loaders, Snakemake's among them,
read ``6e-4`` as the *string* "6e-4", which the schema rejects with the key's path.

Every default lives in the schema, as a ``default:`` key; :func:`validate_config` writes them into the
configuration, so that the rules and :mod:`lacy.plan` index ``config[...]`` strictly and no default is written
twice. (``snakemake.utils.validate(..., set_default=True)`` would do the same, but fails on a nullable object
whose properties have defaults, such as ``fact_precision.llm: null``.)

Only ``jsonschema`` and ``yaml`` are imported here, because the Snakefile imports this module in
whatever environment Snakemake itself runs in.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml


class ConfigError(ValueError):
    """A configuration value violates the schema; the message lists every violation by key path."""


def load_schema(path: Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        parts.append(",".join(extra))
    return ".".join(parts) or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    key = _key_path(error)
    if error.validator == "additionalProperties":
        return f"{key}: unknown key"
    if error.validator == "type" and isinstance(error.instance, str):
        return (f"{key}: {error.instance!r} is a string, expected {error.validator_value}"
                " (YAML reads numbers like 6e-4 as strings: write 6.0e-4)")
    return f"{key}: {error.message}"


def _filling_defaults(validator_class):
    """A validator class that, validating an object, first sets each absent property with a ``default:``
    (a copy of it, so that no two configurations share a default list or mapping)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def properties(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, subschema in properties.items():
                if "default" in subschema and key not in instance:
                    instance[key] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties})


def schema_defaults(schema: dict, section: str) -> dict[str, Any]:
    """The defaults of one top-level section (``"training"``), for code outside the workflow that wants the
    workflow's values (benchmarks, tests) without a second copy of them."""
    values: dict[str, Any] = {}
    for _ in _filling_defaults(jsonschema.Draft202012Validator)(schema["properties"][section]).iter_errors(values):
        pass  # the required keys a section states itself are missing here; only the filling matters
    return values


def validate_config(config: dict[str, Any], schema: dict, source: str = "config") -> None:
    """Raise ``ConfigError`` listing every schema violation in ``config`` by dotted key path; then fill in the
    schema's defaults for every key ``config`` leaves out (in place)."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = "\n".join(f"  - {_describe(e)}" for e in errors)
        raise ConfigError(f"invalid configuration ({source}):\n{lines}")
    _filling_defaults(jsonschema.Draft202012Validator)(schema).validate(config)
    _check_cross_field_rules(config, source)


def _check_cross_field_rules(config: dict[str, Any], source: str) -> None:
    """Rules a JSON schema cannot say plainly."""
    methods = config.get("methods", [])
    if "llm_judge" in methods and config["data"]["source"] != "dwiki":
        raise ConfigError(
            f"invalid configuration ({source}):\n  - methods: 'llm_judge' needs the LMLM annotations "
            f"that only data.source 'dwiki' carries; data.source is {config['data']['source']!r}")
