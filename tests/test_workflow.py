"""The Snakemake workflow: lint, dry runs of both configurations, config errors at start-up."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def planned_jobs(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count}."""
    table = output.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


def test_lint_is_clean():
    run = snakemake("--lint")
    assert run.returncode == 0, run.stderr
    assert "Congratulations, your workflow is in a good condition!" in run.stdout + run.stderr
    assert "Lints for" not in run.stdout + run.stderr


def test_default_config_plans_every_stage():
    run = snakemake("-n", "--quiet", "rules")
    assert run.returncode == 0, run.stderr
    jobs = planned_jobs(run.stdout)
    assert jobs == {"corpus_wiki_offline": 1, "tokenizer": 1, "annotate_shard": 4, "annotation_summary": 1,
                    "all": 1}
    assert "carries no LMLM LLM-judge annotations" in run.stderr + run.stdout


def test_paper_config_dry_runs_to_its_final_targets_with_the_slurm_profile():
    # --sdm env-modules replaces the profile's conda deployment: a CI machine has no conda to query.
    run = snakemake("-n", "--profile", "slurm", "--sdm", "env-modules", "--configfile", "config/paper.yaml")
    assert run.returncode == 0, run.stderr
    jobs = planned_jobs(run.stdout)
    shards = 256
    assert jobs["download_dwiki"] == 1 and jobs["corpus_dwiki"] == 1 and jobs["tokenizer"] == 1
    assert jobs["annotate_shard"] == 2 * shards
    assert jobs["llm_judge_labels"] == 2 * shards
    assert jobs["all"] == 1
    assert "--vocab-size 32000" in run.stdout
    assert "executor: slurm" in (ROOT / "slurm/config.yaml").read_text()


def test_bad_config_stops_snakemake_before_any_job_and_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "config/config.yaml").read_text().replace("validation_fraction: 0.1",
                                                                       "validation_fraction: 1e-1"))
    run = snakemake("-n", "--configfile", str(bad))
    assert run.returncode != 0
    assert "data.validation_fraction: '1e-1' is a string" in run.stderr + run.stdout


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = (ROOT / ".ci/run").read_text().strip().splitlines()[-1]
    assert command in readme
    assert "pytest" in command
