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


def test_default_config_plans_every_stage(tmp_path):
    run = snakemake("-n", "--quiet", "rules", "--directory", str(tmp_path), "--configfile",
                    str(ROOT / "config/config.yaml"), "-s", str(ROOT / "Snakefile"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    jobs = planned_jobs(run.stdout)
    methods = 8
    assert jobs == {"corpus_wiki_offline": 1, "tokenizer": 1, "annotate_shard": 4, "annotation_summary": 1,
                    "train": methods + 1, "validation_losses": methods - 1, "validation_losses_table": 1,
                    "evaluation_entities": 1, "cascade_generate": methods, "fact_precision": methods,
                    "bigbench_tasks": 1, "leakage_qa_wikidata": 1, "leakage_person_cloze": 1,
                    "fact_leakage": methods, "nlu_local_tasks": 1, "nlu": methods, "all": 1}
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
    assert jobs["train"] == 9 + 1, "nine methods and the reference model"
    assert jobs["validation_losses"] == 8
    assert jobs["cascade_generate"] == jobs["fact_precision"] == jobs["fact_leakage"] == jobs["nlu"] == 9
    assert jobs["factscore_release"] == jobs["leakage_popqa_rephrase"] == 1
    assert jobs["all"] == 1
    assert "--vocab-size 32000" in run.stdout
    assert "torchrun --standalone --nproc_per_node 8 -m lacy train" in run.stdout
    assert "gpu=8" in run.stdout
    assert "lacy factscore llm" in run.stdout and "--llm gpt-4o-mini" in run.stdout and "--partner meta-llama/Llama-3.2-1B" in run.stdout
    assert "--tasks arc_easy,hellaswag,piqa,siqa" in run.stdout
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


@pytest.mark.slow
def test_default_workflow_runs_end_to_end_on_a_small_slice(tmp_path):
    """Every stage for real on 400 Wikipedia leads: corpus, tokenizer, spaCy annotation, all methods' training,
    validation losses, fact leakage (corpus cloze set), and one cascade with the real Gemma partner scored by
    offline fact precision; then a rerun has nothing to do. (NLU and BIG-bench need a 358 MB download; their
    code runs end to end through lm-eval in tests/test_nlu.py.)"""
    import csv
    import json

    import yaml

    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config["data"].update(max_documents=400, shards=1)
    config["tokenizer"]["vocab_size"] = 1000
    config["training"].update(step_scale=0.00002, log_every=2, checkpoint_every=4)
    config["reference"]["steps"] = 6
    config["evaluation"]["validation_batches"] = 3
    config["cascade"].update(max_new_tokens=24, entities={"source": "corpus", "n": 2, "seed": 0})
    config["leakage"].update(sets=["corpus_person_cloze"], max_queries=20)
    configfile = tmp_path / "small.yaml"
    configfile.write_text(yaml.safe_dump(config))
    targets = ["results/annotation/summary.json", "results/tables/validation_losses.csv",
               "results/fact_precision/gemma3/lacy/seed0.offline.json", "results/leakage/lacy/seed0.json",
               "results/leakage/baseline/seed0.json"]
    common = ["--directory", str(tmp_path), "--configfile", str(configfile), "-s", str(ROOT / "Snakefile")]
    run = snakemake("--cores", "2", *common, *targets, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-4000:]
    results = tmp_path / "results"
    summary = json.loads((results / "annotation/summary.json").read_text())
    assert 0.1 < summary["total"]["label_fractions"]["fact"] < 0.45
    for method in config["methods"]:
        trained = json.loads((results / f"models/{method}/seed0/train.json").read_text())
        assert trained["method"] == method and trained["steps"] >= 6
        metrics = [json.loads(line) for line in (results / f"models/{method}/seed0/metrics.jsonl").open()]
        expected_rate = 0.0 if method == "baseline" else 0.15
        assert abs(metrics[-1]["call_rate"] - expected_rate) < 0.08, (method, metrics[-1])
    rows = list(csv.DictReader(open(results / "tables/validation_losses.csv")))
    assert sorted(r["method"] for r in rows) == sorted(m for m in config["methods"] if m != "baseline")
    generations = [json.loads(line) for line in open(results / "cascade/gemma3/lacy/seed0.jsonl")]
    assert len(generations) == 2 and all(g["tokens"] for g in generations)
    precision = json.loads((results / "fact_precision/gemma3/lacy/seed0.offline.json").read_text())
    assert precision["metric"] == "offline_fact_precision" and precision["n_entities"] == 2
    leakage = json.loads((results / "leakage/lacy/seed0.json").read_text())
    assert "corpus_person_cloze" in json.dumps(leakage)
    again = snakemake("-n", *common, *targets, cwd=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr

    # Partial reruns: Snakemake compares params, so one method's step count reruns that method alone ...
    config["training"]["steps"]["lacy_ignore"] += 100000
    configfile.write_text(yaml.safe_dump(config))
    rerun = snakemake("-n", "--quiet", "rules", *common, *targets, cwd=tmp_path)
    jobs = planned_jobs(rerun.stdout)
    assert jobs.get("train") == 1 and "validation_losses" in jobs, rerun.stdout
    assert "lacy_ignore" in snakemake("-n", *common, *targets, cwd=tmp_path).stdout
    # ... and an evaluation setting reruns no training.
    config["training"]["steps"]["lacy_ignore"] -= 100000
    config["evaluation"]["validation_batches"] = 2
    configfile.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(snakemake("-n", "--quiet", "rules", *common, *targets, cwd=tmp_path).stdout)
    assert "train" not in jobs and jobs.get("validation_losses") == len(config["methods"]) - 1
