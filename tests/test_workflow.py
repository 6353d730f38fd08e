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


def test_rule_files_hold_rules_and_read_config_strictly():
    """common.smk holds validation, wildcard constraints and input functions; every other .smk file holds rules
    and nothing else, and no rule falls back on a default of its own (the schema holds them all)."""
    for smk in sorted((ROOT / "workflow/rules").glob("*.smk")):
        text = smk.read_text()
        if smk.name != "common.smk":
            assert re.search(r"^ *(use )?rule \w+", text, re.MULTILINE), f"{smk.name} holds no rule"
            assert not re.search(r"^ *def ", text, re.MULTILINE), f"{smk.name} defines a function"
        assert not re.search(r"(config\[[^\]]+\]|TRAIN|CASCADE|ACCEPTABILITY)\.get\(", text), smk.name


def test_default_config_plans_every_stage(tmp_path):
    run = snakemake("-n", "--quiet", "rules", "--directory", str(tmp_path), "--configfile",
                    str(ROOT / "config/config.yaml"), "-s", str(ROOT / "Snakefile"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    jobs = planned_jobs(run.stdout)
    methods = 5
    assert jobs == {"corpus_wiki_offline": 1, "tokenizer": 1, "annotate_shard": 4, "annotation_summary": 1,
                    "train": methods, "train_with_early_export": 1,  # the acceptability study's run (§3)
                    # every calling model, and the reference beside the baseline (§A.4.1)
                    "validation_losses": methods - 1 + 1, "validation_losses_table": 1,
                    "evaluation_entities": 1, "cascade_generate": methods, "fact_precision": methods,
                    # the partner writing alone: the paper's reference bars
                    "partner_alone": 1, "fact_precision_partner_alone": 1,
                    "bigbench_tasks": 1, "leakage_qa_wikidata": 1, "leakage_person_cloze": 1,
                    "fact_leakage": methods, "nlu_local_tasks": 1, "nlu": methods, "labelling_cost_rho1": 1,
                    "labelling_cost_table": 1, "acceptability_record": 2, "acceptability_judge": 1,
                    "acceptability_figure": 3,
                    # Figures 2, 5-7, 11, 15, 16, 19-21 (10 needs the Ignore ablations; 12, 13, 14, 17, 18, 22-24 a
                    # second scale or a second, RAG-prompted partner), Figure 4, Tables 1 and 6 and the fact-leakage
                    # table, the summary
                    "figure": 10, "figure4": 1, "table": 3, "summary": 1, "all": 1}
    assert "carries no LMLM LLM-judge annotations" in run.stderr + run.stdout


def test_training_runs_the_critical_path_first(tmp_path):
    """The reference model gates Rho-1 and spaCy+Refloss: it is scheduled first, they next, evaluations last."""
    run = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(ROOT / "config/config.yaml"), "-s",
                    str(ROOT / "Snakefile"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    priority = {m[1]: int(m[2]) for m in re.finditer(
        r"^rule train:\n(?:    .*\n)*?    wildcards: method=(\w+), seed=0\n(?:    .*\n)*?    priority: (\d+)",
        run.stdout, re.MULTILINE)}
    assert priority["reference"] > priority["rho1"] > priority["lacy"] > 0
    # a job's block ends where the next one starts (its timestamp line), not at a blank line
    nlu = re.search(r"^rule nlu:\n((?:    .*\n)*)", run.stdout, re.MULTILINE)
    assert nlu and "wildcards: method=" in nlu[1] and "priority" not in nlu[1]


@pytest.mark.parametrize("configfile, calling, reference", [("config/config.yaml", 800, 800),
                                                            ("config/paper.yaml", 400000, 2540000)])
def test_the_reference_step_count_reaches_the_training_command(tmp_path, configfile, calling, reference):
    """§A.4.1: the reference trains 2.54M steps to a calling model's 400k (6.35x); the embedded default shortens
    it to a calling model's count (config.yaml), so that it does not hold up the whole run."""
    run = snakemake("-n", "-p", "--sdm", "env-modules", "--directory", str(tmp_path), "--configfile",
                    str(ROOT / configfile), "-s", str(ROOT / "Snakefile"), "results/models/reference/seed0/train.json",
                    "results/models/lacy/seed0/train.json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    steps = dict(re.findall(r"--out results/models/(\w+)/seed0 .*?--steps (\d+)",
                            run.stdout))
    assert steps == {"reference": str(reference), "lacy": str(calling)}


@pytest.fixture
def workflow(tmp_path):
    """The default configuration's rules as Snakemake builds them from the Snakefile, to read what a rule declares."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings()) as api:
        yield api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=ROOT / "Snakefile", workdir=tmp_path,
                           config_settings=ConfigSettings(configfiles=[ROOT / "config/config.yaml"]))._workflow


def test_the_baseline_cascade_never_calls(workflow):
    """§5.2: the baseline, trained without <CALL>, is cascaded at call budget 0; calling methods at 22 %: the
    cascade rules' call_rate param, which workflow/scripts/cascade.py hands to write_cascade (tests/test_cascade.py)."""
    from types import SimpleNamespace

    for name in ("cascade_generate", "cascade_generate_equal_steps"):
        call_rate = workflow.get_rule(name).params.call_rate
        assert {m: call_rate(SimpleNamespace(method=m)) for m in ("baseline", "lacy", "1.3b/baseline")} == {
            "baseline": 0.0, "lacy": 0.22, "1.3b/baseline": 0.0}, name


def test_rag_partner_in_the_default_config_reads_the_corpus(tmp_path):
    """A RAG partner's `knowledge: corpus` is the corpus's declared corpus.json, for a served partner and a local
    one (what the partner does with it: tests/test_partners.py, tests/test_cascade.py)."""
    import yaml

    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config["cascade"]["partners"] += [
        {"name": "qwen3_rag", "model": "Qwen/Qwen3-32B", "rag": {
            "base_url": "http://127.0.0.1:8000/v1", "api_key_env": None, "knowledge": "corpus"}},
        {"name": "local_rag", "model": "gemma3-270m-gguf", "rag": {"knowledge": "corpus"}}]
    configfile = tmp_path / "rag.yaml"
    configfile.write_text(yaml.safe_dump(config))
    run = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(configfile), "-s",
                    str(ROOT / "Snakefile"), "results/fact_precision/qwen3_rag/lacy/seed0.offline.json",
                    "results/fact_precision/local_rag/lacy/seed0.offline.json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    for partner in ("qwen3_rag", "local_rag"):
        assert re.search(r"^rule cascade_generate:\n    input: results/models/lacy/seed0/model.safetensors, "
                         r"results/cascade/entities.jsonl, results/corpus/corpus.json\n    output: "
                         rf"results/cascade/{partner}/lacy/seed0.jsonl, .*results/cascade/{partner}/lacy/seed0.pdf$",
                         run.stdout, re.MULTILINE), partner


def test_paper_config_dry_runs_to_its_final_targets_with_the_slurm_profile():
    # the profile leaves conda to --sdm conda: it plans where conda is absent (this CI machine)
    run = snakemake("-n", "--profile", "slurm", "--configfile", "config/paper.yaml")
    assert run.returncode == 0, run.stderr
    jobs = planned_jobs(run.stdout)
    shards = 256
    assert jobs["download_dwiki"] == 1 and jobs["corpus_dwiki"] == 1 and jobs["tokenizer"] == 1
    assert jobs["annotate_shard"] == 2 * shards
    assert jobs["llm_judge_labels"] == 2 * shards
    # the baseline also exports the study's early model, the two ignore ablations their 400k-step one (Fig. 10)
    trainings = jobs["train"] + jobs["train_with_early_export"] + jobs["train_with_equal_steps_export"]
    assert trainings == 9 + 1, "nine methods and the reference model; the 1.3B runs are switched off"
    assert jobs["train_with_equal_steps_export"] == jobs["fact_leakage_equal_steps"] == 2
    assert jobs["cascade_generate_equal_steps"] == jobs["fact_precision_equal_steps"] == 2, "Llama partner only"
    assert jobs["acceptability_record"] == 2 and jobs["acceptability_judge"] == 1 and jobs["acceptability_figure"] == 3
    assert jobs["validation_losses"] == 8 + 1 and "validation_losses_table_of_scale" not in jobs, "+ the reference"
    assert jobs["labelling_cost_rho1"] == jobs["labelling_cost_table"] == 1
    assert jobs["fact_leakage"] == jobs["nlu"] == 9
    assert jobs["cascade_generate"] == jobs["fact_precision"] == 2 * 9, "Llama and RAG (§A.5) cascades per method"
    assert jobs["factscore_release"] == jobs["leakage_popqa_rephrase"] == 1
    assert jobs["figure"] == 13, "Figures 2, 5-7, 10, 11, 13 (one scale), 14-16, 19-21; 12, 17, 18, 22-24 need 1.3B"
    assert ("--export-at-fraction 0.9090909090909091 --export-dir results/models/lacy_ignorefacts/seed0/equal_steps"
            in run.stdout)
    assert jobs["figure4"] == jobs["summary"] == 1 and jobs["table"] == 3
    assert jobs["all"] == 1
    assert "--vocab-size 32000" in run.stdout
    assert "torchrun --standalone --nproc_per_node 8 -m lacy train" in run.stdout
    assert "gpu=8" in run.stdout
    # FactScore with the LLM scorer (§B) on FActScore's Wikipedia dump and demonstrations; the judge, the retrieval and
    # the partners' entries the rules pass: tests/test_plan.py, the scripts' functions: tests/test_factscore.py
    assert re.search(r"^rule fact_precision:\n    input: results/cascade/qwen3_rag/lacy/seed0.jsonl, "
                     r"resources/factscore/enwiki-20230401.db, resources/factscore/demos/demons.json\n"
                     r"    output: results/fact_precision/qwen3_rag/lacy/seed0.llm.json$", run.stdout, re.MULTILINE)
    # the RAG partner of §A.5 reads the same dump; the Llama partner reads nothing
    assert re.search(r"^rule cascade_generate:\n    input: results/models/lacy/seed0/model.safetensors, "
                     r"results/cascade/entities.jsonl, resources/factscore/enwiki-20230401.db\n"
                     r"    output: results/cascade/qwen3_rag/lacy/seed0.jsonl", run.stdout, re.MULTILINE)
    assert re.search(r"^rule cascade_generate:\n    input: results/models/lacy/seed0/model.safetensors, "
                     r"results/cascade/entities.jsonl\n    output: results/cascade/llama/lacy/seed0.jsonl", run.stdout,
                     re.MULTILINE)
    assert jobs["partner_alone"] == jobs["fact_precision_partner_alone"] == 2, "Llama alone, Qwen3-32B + RAG alone"
    assert "--export-at-fraction 0.2 --export-dir results/models/baseline/seed0/early" in run.stdout
    assert "executor: slurm" in (ROOT / "slurm/config.yaml").read_text()


def planned_job_resources(output: str) -> dict[str, list[dict]]:
    """Every job of a dry run as {rule: [{threads, resources...}, ...]}."""
    jobs: dict[str, list[dict]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", output)[1:]:
        rule = re.match(r"(?:local)?rule (\w+):", block)[1]
        resources = re.search(r"^    resources: (.*)$", block, re.MULTILINE)
        job = dict(item.split("=", 1) for item in resources[1].split(", ")) if resources else {}
        threads = re.search(r"^    threads: (\d+)$", block, re.MULTILINE)
        job["threads"] = int(threads[1]) if threads else 1
        jobs.setdefault(rule, []).append(job)
    return jobs


def test_paper_config_with_the_1_3b_switch_plans_both_scales_with_cluster_resources(tmp_path):
    import yaml

    config = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    assert [s["enabled"] for s in config["scales"]] == [False], "paper.yaml: the 1.3B runs are one switch"
    config["scales"][0]["enabled"] = True
    configfile = tmp_path / "paper_1.3b.yaml"
    configfile.write_text(yaml.safe_dump(config))
    # --cores 256: a dry run otherwise caps every job's threads at one core.
    run = snakemake("-n", "--profile", "slurm", "--cores", "256", "--configfile",
                    str(configfile))
    assert run.returncode == 0, run.stderr
    jobs = planned_jobs(run.stdout)
    trainings = jobs["train"] + jobs.get("train_with_early_export", 0) + jobs["train_with_equal_steps_export"]
    assert trainings == 2 * 9 + 1, "nine methods at 334M and at 1.3B, one shared reference model"
    assert jobs["validation_losses"] == 2 * 8 + 1 and jobs["validation_losses_table_of_scale"] == 1
    assert jobs["fact_leakage"] == jobs["nlu"] == 2 * 9
    assert jobs["cascade_generate"] == jobs["fact_precision"] == 2 * 2 * 9, "two scales, two cascade partners"
    assert jobs["annotate_shard"] == 2 * 256 and jobs["labelling_cost_table"] == 1
    assert jobs["figure"] == 19, "every results figure but 3, 8, 9 (acceptability's rule) and 4 (its own rule)"
    out = run.stdout
    assert "results/figures/fig12.pdf" in out and "results/figures/fig13.pdf" in out  # 1.3B alone; both scales
    assert "--preset xl --steps 400000 --lr 0.0001 --warmup 6400 --context 1024 --batch-size 112 --grad-accum 2" in out
    assert "--preset medium --steps 400000 --lr 0.0002 --warmup 2560 --context 1024 --batch-size 128 --grad-accum 4" in out
    for path in ["results/models/1.3b/lacy/seed0/model.safetensors", "results/cascade/llama/1.3b/lacy/seed0.jsonl",
                 "results/leakage/1.3b/lacy/seed0.json", "results/nlu/1.3b/lacy/seed0.json",
                 "results/fact_precision/llama/1.3b/lacy/seed0.llm.json", "results/tables/1.3b/validation_losses.csv"]:
        assert path in out, path
    assert "--reference results/models/reference/seed0 --out results/models/1.3b/rho1/seed0 " in out
    assert ("--model results/models/1.3b/lacy/seed0 --baseline results/models/1.3b/baseline/seed0"
            " --annotation results/annotation --method lacy ") in out
    assert "results/models/1.3b/reference" not in out

    resources = planned_job_resources(out)
    assert all("mem_mb" in job and "runtime" in job for planned in resources.values() for job in planned)
    model_rules = {"validation_losses", "cascade_generate", "fact_leakage", "nlu", "labelling_cost_rho1"}
    cpu_rules = {"annotate_shard", "llm_judge_labels", "corpus_dwiki", "tokenizer", "fact_precision",
                 "validation_losses_table", "labelling_cost_table"}
    assert all(j["gpu"] == "1" for rule in model_rules for j in resources[rule])
    assert all(int(j["mem_mb"]) >= 32000 for rule in model_rules - {"cascade_generate"} for j in resources[rule])
    assert not any("gpu" in j for rule in cpu_rules for j in resources[rule])
    assert all(j["gpu"] == "8" and j["threads"] == 64 and j["mem_mb"] == "480000" for j in resources["train"])
    assert all(j["threads"] == 4 and j["mem_mb"] == "8000" for j in resources["annotate_shard"])
    assert "torchrun --standalone --nproc_per_node 8 -m lacy train" in out


def test_bad_config_stops_snakemake_before_any_job_and_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "config/config.yaml").read_text().replace("  source: wiki_offline\n",
                                                                       "  source: wiki_offline\n  validation_fraction: 1e-1\n"))
    run = snakemake("-n", "--configfile", str(bad))
    assert run.returncode != 0
    assert "data.validation_fraction: '1e-1' is a string" in run.stderr + run.stdout


def test_a_batch_that_does_not_split_over_accumulation_steps_stops_snakemake(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "config/config.yaml").read_text().replace("grad_accum: 1", "grad_accum: 3"))
    run = snakemake("-n", "--configfile", str(bad))
    assert run.returncode != 0
    assert "batch size 16 does not split into grad_accum 3 x 1 processes" in run.stderr + run.stdout


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

    from lacy.config import load_schema, validate_config

    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    validate_config(config, load_schema(ROOT / "workflow/schemas/config.schema.yaml"))  # with the schema's defaults
    config["data"].update(max_documents=400, shards=1)
    config["tokenizer"]["vocab_size"] = 1000
    config["training"].update(step_scale=0.00002, log_every=2, checkpoint_every=4)
    config["evaluation"]["validation_batches"] = 3
    config["cascade"].update(max_new_tokens=24, entities={"source": "corpus", "n_heldout": 1, "n_train": 1, "seed": 0})
    config["leakage"].update(sets=["corpus_person_cloze"], max_queries=20)
    config["acceptability"]["max_judged"] = 4
    configfile = tmp_path / "small.yaml"
    configfile.write_text(yaml.safe_dump(config))
    targets = ["results/annotation/summary.json", "results/tables/validation_losses.csv",
               "results/fact_precision/gemma3_rag/lacy/seed0.offline.json", "results/leakage/lacy/seed0.json",
               "results/leakage/baseline/seed0.json", "results/fact_precision/gemma3_rag/alone.offline.json",
               "results/tables/table2.csv", "results/figures/fig3.pdf"]
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
    generations = [json.loads(line) for line in open(results / "cascade/gemma3_rag/lacy/seed0.jsonl")]
    assert len(generations) == 2 and all(g["tokens"] for g in generations)
    assert sorted(g["split"] for g in generations) == ["train", "validation"], "one held-out, one training-split person"
    precision = json.loads((results / "fact_precision/gemma3_rag/lacy/seed0.offline.json").read_text())
    assert precision["metric"] == "offline_fact_precision" and precision["n_entities"] == 2
    leakage = json.loads((results / "leakage/lacy/seed0.json").read_text())
    assert "corpus_person_cloze" in json.dumps(leakage)
    alone = json.loads((results / "fact_precision/gemma3_rag/alone.offline.json").read_text())
    assert alone["n_entities"] == 2, "the partner alone wrote both persons' biographies"
    table2 = {row["method"]: row for row in csv.DictReader(open(results / "tables/table2.csv"))}
    assert all(float(table2[m]["measured_hours_per_1b_tokens"]) > 0 for m in ("Rho-1", "LaCy")), table2
    judged = [json.loads(line) for line in open(results / "acceptability/final/judged.jsonl")]
    assert sum(record["judge"] == "llm" for record in judged) == 4, "acceptability.max_judged positions judged"
    assert (results / "figures/fig3.pdf").read_bytes().startswith(b"%PDF")
    again = snakemake("-n", *common, *targets, cwd=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr

    # Partial reruns: Snakemake compares params, so one method's step count reruns that method alone ...
    config["training"]["steps"]["baseline"] += 100000
    configfile.write_text(yaml.safe_dump(config))
    rerun = snakemake("-n", "--quiet", "rules", *common, *targets, cwd=tmp_path)
    jobs = planned_jobs(rerun.stdout)
    trainings = {rule: n for rule, n in jobs.items() if rule.startswith("train")}
    # the baseline trains under the rule that also exports the acceptability study's early model (§3)
    assert trainings == {"train_with_early_export": 1} and "validation_losses" in jobs, rerun.stdout
    assert "method=baseline" in snakemake("-n", *common, *targets, cwd=tmp_path).stdout
    # ... and an evaluation setting reruns no training.
    config["training"]["steps"]["baseline"] -= 100000
    config["evaluation"]["validation_batches"] = 2
    configfile.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(snakemake("-n", "--quiet", "rules", *common, *targets, cwd=tmp_path).stdout)
    assert not any(rule.startswith("train") for rule in jobs)
    assert jobs.get("validation_losses") == len(config["methods"]) - 1


@pytest.mark.slow
def test_figure_table_and_summary_scripts_run_on_finished_results(tmp_path):
    """The rules with workflow/scripts/ adapters (figure, figure4, table, summary) run for real, on a results
    directory where every other job of the default is done: each output stubbed, the files the figures read
    holding test_figures' fake results. Reasons with quotes and backticks reach the summary intact."""
    import json
    import os

    from test_figures import RUNS, fake_results

    targets = ["results/figures/fig2.pdf", "results/figures/fig5.pdf", "results/figures/fig4.pdf",
               "results/tables/table1.csv", "results/tables/fact_leakage.csv", "results/summary.md"]
    common = [*targets, "--directory", str(tmp_path), "-s", str(ROOT / "Snakefile"), "--configfile",
              str(ROOT / "config/config.yaml")]
    plan = snakemake("-n", *common, cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", plan.stdout)[1:]:
        if re.match(r"(?:local)?rule (figure|figure4|table|summary):", block):
            continue
        for out in re.search(r"^    output: (.*)$", block, re.MULTILINE)[1].split(", "):
            path = tmp_path / out
            if out.endswith(("/early", "results/nlu/tasks")):
                path.mkdir(parents=True, exist_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
    results = tmp_path / "results"
    fake_results(results, runs=[r for r in RUNS if r != "llm_judge"], partner="gemma3_rag")
    (results / "validation_losses/reference/seed0.json").write_text(json.dumps(
        {"call_loss": 5.0, "noncall_loss": 3.0, "total_loss": 3.3, "baseline_call_loss": 5.5,
         "baseline_noncall_loss": 2.9, "baseline_total_loss": 3.4, "total_loss_gap": 0.1}))
    (results / "annotation/summary.json").write_text(json.dumps({"total": {"label_fractions": {"fact": 0.3}}}))
    (results / "cascade/entities.jsonl").write_text(json.dumps({"entity": "A", "split": "train"}))
    (results / "tables/table2.csv").write_text("method,labelling\nLaCy,1\n")
    record = {"entity": "A", "prompt": "Tell me a bio of A. A is", "n_calls": 1, "n_steps": 2, "call_rate": 0.5,
              "tokens": [{"text": " a", "source": "slm"}, {"text": " 1898", "source": "partner"}]}
    for run in ("baseline", "rho1", "lacy"):
        (results / f"cascade/gemma3_rag/{run}/seed0.jsonl").write_text(json.dumps(record))
    for path in tmp_path.rglob("*"):  # done long ago, all at once
        os.utime(path, (1.6e9, 1.6e9))

    run = snakemake("--cores", "2", *common, "--rerun-triggers", "mtime", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-4000:]
    assert sorted(re.findall(r"^(?:local)?rule (\w+):", run.stdout + run.stderr, re.MULTILINE)) == [
        "figure", "figure", "figure4", "summary", "table", "table"]
    for target in targets:
        assert (tmp_path / target).stat().st_size > 0, target
    summary = (results / "summary.md").read_text()
    assert "- fig12: no second model scale is configured (`scales`; the paper's 1.3B models, §C)" in summary
    assert "| LaCy | 22.0 | 20.0 |" in summary


def test_every_workflow_script_reads_only_what_its_rules_declare(workflow):
    """Each workflow/scripts/ adapter reads snakemake.input/output/params/wildcards by name; every name it reads is
    declared by every rule that runs it (after `use rule` inheritance, unpack input functions included), so a
    misnamed param fails here instead of in a job."""
    import ast
    from types import SimpleNamespace

    from snakemake.io import is_callable, is_flagged

    def read_names(script: Path) -> dict[str, set[str]]:
        names: dict[str, set[str]] = {}
        for node in ast.walk(ast.parse(script.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                    and isinstance(node.value.value, ast.Name) and node.value.value.id == "snakemake"
                    and node.attr not in {"items", "keys", "get"}):
                names.setdefault(node.value.attr, set()).add(node.attr)
        return names

    def declared(rule, section: str) -> set[str]:
        items = getattr(rule, section)
        names = set(items._names)
        for item in items:  # an unpack input function: the keys it returns for a run of this configuration
            if is_callable(item) and is_flagged(item, "unpack"):
                names |= set(item._file.callable(SimpleNamespace(method="lacy", seed="0", partner="gemma3_rag", scorer="offline")))
        return names

    script_rules = [rule for rule in workflow.rules if rule.script]
    assert len(script_rules) >= 15
    for rule in script_rules:
        script = (Path(rule.snakefile).parent / rule.script).resolve()
        for section, names in read_names(script).items():
            if section in ("input", "output", "params"):
                missing = names - declared(rule, section)
                assert not missing, f"{script.name} reads snakemake.{section}.{missing} that rule {rule.name} lacks"
            elif section == "wildcards":
                assert names <= set(rule.wildcard_names), (rule.name, names)


@pytest.mark.parametrize("configfile, threads", [("config/config.yaml", 2), ("config/paper.yaml", 4)])
def test_the_tokenizer_trains_with_its_configured_threads_whatever_the_cores(tmp_path, configfile, threads):
    """SentencePiece's model depends on its thread count, so the tokenizer rule passes tokenizer.threads, not the
    cores Snakemake grants the job: one core still trains the tokenizer of the configuration."""
    run = snakemake("-n", "-p", "--cores", "1", "--directory", str(tmp_path), "--configfile", str(ROOT / configfile),
                    "-s", str(ROOT / "Snakefile"), "results/tokenizer/tokenizer.model", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert re.search(rf"-m lacy tokenizer train .* --threads {threads} ", run.stdout), run.stdout[-2000:]


def test_the_figure_tests_write_fake_results_where_the_rules_put_them(workflow):
    """tests/test_figures.py's PATTERNS (its fake results' layout) is the workflow's result_layout(), kind by kind."""
    from test_figures import PATTERNS

    layout = workflow.globals["result_layout"]()
    assert {kind: layout[kind] for kind in PATTERNS} == {kind: f"results/{p}" for kind, p in PATTERNS.items()}
