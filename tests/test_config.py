"""Configuration validation: both shipped configs are valid; bad values are named by key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from lacy.config import ConfigError, load_schema, validate_config

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = load_schema(ROOT / "workflow/schemas/config.schema.yaml")


def shipped(name: str) -> dict:
    # Snakemake reads YAML 1.1 like PyYAML does: 6e-4 becomes a string there too.
    return yaml.safe_load((ROOT / "config" / name).read_text())


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_shipped_configs_are_valid(name):
    validate_config(shipped(name), SCHEMA, name)


def paper_run() -> dict:
    """The configuration a paper run sees: config.yaml, paper.yaml over it (Snakemake's merge), the defaults."""
    from snakemake.utils import update_config

    config = shipped("config.yaml")
    update_config(config, shipped("paper.yaml"))
    validate_config(config, SCHEMA, "paper.yaml")
    return config


def test_paper_config_is_the_papers_setup():
    paper = paper_run()
    assert paper["data"]["source"] == "dwiki"
    assert paper["data"]["validation_fraction"] == 0.1
    assert paper["tokenizer"]["vocab_size"] == 32000
    assert len(paper["methods"]) == 9


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["data"].update(validation_fraction=yaml.safe_load("x: 6e-4")["x"]),
     "data.validation_fraction: '6e-4' is a string"),
    (lambda c: c["data"].update(shard=3), "data.shard: unknown key"),
    (lambda c: c.update(tokeniser={}), "tokeniser: unknown key"),
    (lambda c: c["tokenizer"].update(vocab_size=100), "tokenizer.vocab_size: 100 is less than"),
    (lambda c: c["data"].update(source="c4"), "data.source: 'c4' is not one of"),
    (lambda c: c["methods"].append("lacy_typo"), "methods.5: 'lacy_typo' is not one of"),
    (lambda c: c["methods"].append("llm_judge"), "methods: 'llm_judge' needs the LMLM annotations"),
    (lambda c: c.pop("annotation"), "'annotation' is a required property"),
    (lambda c: c["cascade"].update(entities={"source": "factscore"}), "cascade.entities: 'path' is a required property"),
])
def test_bad_values_are_reported_by_key(mutate, message):
    config = copy.deepcopy(shipped("config.yaml"))
    mutate(config)
    with pytest.raises(ConfigError) as err:
        validate_config(config, SCHEMA, "config.yaml")
    assert message in str(err.value)


def test_validation_fills_in_the_schemas_defaults():
    config = shipped("config.yaml")
    assert "weight_decay" not in config["training"] and "steps" not in config["training"]
    validate_config(config, SCHEMA, "config.yaml")
    assert config["training"]["weight_decay"] == 0.1 and config["training"]["grad_clip"] == 1.0
    assert config["training"]["steps"] == {"baseline": 340000, "calling": 400000, "lacy_ignorefacts": 440000,
                                           "lacy_ignore": 460000}, "Table 4"
    assert config["training"]["step_scale"] == 0.002 and config["cascade"]["call_rate"] == 0.22
    assert config["cascade"]["entities"] == {"source": "corpus", "n_heldout": 48, "n_train": 16, "seed": 0}
    assert config["scales"] == [] and config["cluster"] == {"cpus": 2, "mem_mb": 8000}
    assert config["fact_precision"]["llm"] is None and config["leakage"]["rephrase_llm"] is None
    # a nullable object with defaults inside is left alone when null, filled when given
    assert config["acceptability"]["judge"]["llm"]["base_url"] is None


def test_defaults_are_copies():
    first, second = shipped("config.yaml"), shipped("config.yaml")
    validate_config(first, SCHEMA)
    validate_config(second, SCHEMA)
    first["scales"].append({"name": "x"})
    assert second["scales"] == [] and SCHEMA["properties"]["scales"]["default"] == []


def _keys(config: dict, prefix: str = "") -> dict[str, object]:
    """Every key path of a configuration and its value (lists are values)."""
    paths = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        paths.update(_keys(value, path + ".") if isinstance(value, dict) else {path: value})
    return paths


def _schema_default(path: str):
    node = SCHEMA
    for key in path.split("."):
        node = node.get("properties", {}).get(key)
        if node is None:
            return "<none>"
    return node.get("default", "<none>")


def test_paper_config_overrides_every_key_of_the_default():
    """Snakemake reads config.yaml, then paper.yaml over it: a key only config.yaml states would leak its CPU
    value into a paper run."""
    paper = _keys(shipped("paper.yaml"))
    leaked = [k for k in _keys(shipped("config.yaml")) if k not in paper and not k.startswith("cascade.entities.")]
    assert leaked == []


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_no_config_restates_a_default(name):
    """Each default is written once, in the schema; paper.yaml restates one only to override config.yaml."""
    default = _keys(shipped("config.yaml"))
    restated = [k for k, v in _keys(shipped(name)).items() if v == _schema_default(k)
                and not (name == "paper.yaml" and k in default and default[k] != v)]
    assert restated == []


def test_the_tested_versions_satisfy_every_declared_requirement():
    """envs/tested-versions.txt (pip's constraints of the environment the suite passed in) pins a version of every
    dependency pyproject.toml declares, inside its declared range: a range changed without the lock fails here."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    tested = {}
    for line in (ROOT / "envs/tested-versions.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            tested[canonicalize_name(name)] = Version(version)
    for spec in project["dependencies"] + project["optional-dependencies"]["test"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in tested, f"{requirement.name} is not in envs/tested-versions.txt"
        assert requirement.specifier.contains(tested[name]), f"{requirement.name} {tested[name]} outside {spec!r}"


def test_every_package_the_code_imports_is_declared():
    """Each third-party module src/lacy imports (at the top or inside a function) comes from a distribution that
    pyproject.toml declares, not from another package's dependencies."""
    import ast
    import importlib.metadata
    import sys
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    modules = set()
    for path in (ROOT / "src/lacy").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    declared = {canonicalize_name(Requirement(spec).name)
                for spec in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    distributions = importlib.metadata.packages_distributions()
    for module in sorted(modules - set(sys.stdlib_module_names) - {"lacy"}):
        names = {canonicalize_name(d) for d in distributions.get(module, [module])}
        assert names & declared, f"src/lacy imports {module!r} ({', '.join(sorted(names))}), not declared"
