"""The SLURM profile and the cluster size, without a cluster: what jobs would ask SLURM for, and the per-attempt log."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lacy.config import load_schema, validate_config

ROOT = Path(__file__).resolve().parents[1]


def dry_run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "-n", "--profile", str(ROOT / "slurm"), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=600)


def job_requests(output: str) -> list[tuple[str, int, int]]:
    """(rule, threads, mem_mb) of every job of a dry run."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", output)[1:]:
        rule = re.match(r"(?:local)?rule (\w+):", block)[1]
        threads = re.search(r"^    threads: (\d+)$", block, re.MULTILINE)
        mem = re.search(r"^    resources: .*\bmem_mb=(\d+)", block, re.MULTILINE)
        jobs.append((rule, int(threads[1]) if threads else 1, int(mem[1]) if mem else 0))
    return jobs


def test_the_profile_does_not_force_conda_and_reads_job_states_from_squeue():
    profile = yaml.safe_load((ROOT / "slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert "software-deployment-method" not in profile, "users without conda: --sdm conda is theirs to add"
    assert profile["slurm-status-command"] == "squeue", "sacct's 'CANCELLED by <uid>' hangs plugin 2.8.0"
    assert profile["retries"] >= 1


def test_no_job_of_the_default_asks_for_more_than_the_configured_node(tmp_path):
    # --cores 256: a dry run otherwise caps every job's threads at one core
    run = dry_run("--cores", "256", "--directory", str(tmp_path), "-s", str(ROOT / "Snakefile"), "--configfile",
                  str(ROOT / "config/config.yaml"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    validate_config(config, load_schema(ROOT / "workflow/schemas/config.schema.yaml"))  # cluster: the schema's
    config = config["cluster"]
    jobs = job_requests(run.stdout)
    assert len(jobs) > 50
    assert all(threads <= config["cpus"] and mem <= config["mem_mb"] for _, threads, mem in jobs), jobs
    assert ("tokenizer", config["cpus"], config["mem_mb"]) in jobs, "4 threads and 16 GB, capped at the node"


def test_a_smaller_node_caps_cpu_jobs_and_a_training_job_that_cannot_fit_stops_snakemake(tmp_path):
    config = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    config["cluster"] = {"cpus": 16, "mem_mb": 480000}
    small = tmp_path / "small_node.yaml"
    small.write_text(yaml.safe_dump(config))
    run = dry_run("--configfile", str(small))
    assert run.returncode != 0
    assert ("a training job needs 64 CPUs (training.gpus_per_node x cpus_per_gpu) and 480000 MB (training.mem_mb), "
            "more than one node has: cluster.cpus 16") in run.stdout + run.stderr

    config["cluster"] = {"cpus": 2, "mem_mb": 4000}
    config["training"].update(gpus_per_node=0, cpus_per_gpu=2, mem_mb=4000)
    config["annotation"]["n_process"] = 8
    small.write_text(yaml.safe_dump(config))
    run = dry_run("results/annotation/summary.json", "results/tokenizer/tokenizer.model", "--cores", "256",
                  "--configfile", str(small))
    assert run.returncode == 0, run.stderr
    jobs = job_requests(run.stdout)
    assert {(rule, threads, mem) for rule, threads, mem in jobs if rule in ("annotate_shard", "tokenizer")} == {
        ("annotate_shard", 2, 4000), ("tokenizer", 2, 4000)}


def test_every_training_attempt_keeps_its_own_log(tmp_path, monkeypatch, caplog):
    from lacy.training import StopRequested, attempt_log

    caplog.set_level(logging.INFO)
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    with pytest.raises(StopRequested), attempt_log(tmp_path):
        logging.getLogger("lacy.training").info("step 8")
        raise StopRequested("stopped at step 8")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    with attempt_log(tmp_path):
        logging.getLogger("lacy.training").info("resumed at step 8")
    first, second = sorted((tmp_path / "attempts").glob("*.log"))
    assert first.name.endswith("-slurm41.log") and second.name.endswith("-slurm42.log")
    assert "step 8" in first.read_text() and "StopRequested('stopped at step 8')" in first.read_text()
    assert "resumed at step 8" in second.read_text() and "training: step 8" not in second.read_text()
    assert not any(str(tmp_path) in getattr(h, "baseFilename", "") for h in logging.getLogger().handlers)
