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


def test_paper_config_is_the_papers_setup():
    paper = shipped("paper.yaml")
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
    (lambda c: c["methods"].append("lacy_typo"), "methods.8: 'lacy_typo' is not one of"),
    (lambda c: c["methods"].append("llm_judge"), "methods: 'llm_judge' needs the LMLM annotations"),
    (lambda c: c.pop("annotation"), "'annotation' is a required property"),
])
def test_bad_values_are_reported_by_key(mutate, message):
    config = copy.deepcopy(shipped("config.yaml"))
    mutate(config)
    with pytest.raises(ConfigError) as err:
        validate_config(config, SCHEMA, "config.yaml")
    assert message in str(err.value)
