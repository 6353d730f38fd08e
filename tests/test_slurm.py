"""The headline command on a real SLURM scheduler: `snakemake results/figures/fig2.pdf --profile slurm` on a tiny
override of the embedded default, with one training job cancelled after its first checkpoint.

Needs a running cluster whose node fits the config's `cluster` section (2 CPUs, 8000 MB): `.ci/slurm/up.sh`
brings up a single-node one (`.ci/run` does, then runs this with `-m slurm`, then `.ci/slurm/down.sh`).
Skipped where no SLURM answers."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CANCELLED = "lacy"  # the training job to scancel once it has written its first checkpoint
KILLED = "baseline"  # the training job whose process is killed (a node failure) after its first checkpoint
RETRY_WITHIN_S = 150  # a job that died is resubmitted within this (else the run hangs on it)
RUN_LIMIT_S = int(os.environ.get("LACY_SLURM_TEST_LIMIT_S", "540"))


def _slurm_state() -> str | None:
    """The node states sinfo reports, or None where no SLURM answers."""
    if not shutil.which("sinfo") or not shutil.which("sbatch"):
        return None
    try:
        run = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return None
    return run.stdout.strip() if run.returncode == 0 and run.stdout.strip() else None


NO_SLURM = "no SLURM cluster answers `sinfo` here (bring one up with .ci/slurm/up.sh)"
# .ci/run sets LACY_REQUIRE_SLURM=1 after bringing its cluster up: there, no cluster is a failure, not a skip
pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(_slurm_state() is None and not os.environ.get("LACY_REQUIRE_SLURM"), reason=NO_SLURM),
]


def tiny_config() -> dict:
    """The embedded default down to a two-method Figure 2 (the baseline and LaCy) in a few minutes."""
    import yaml

    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config["methods"] = ["baseline", CANCELLED]
    config["data"].update(max_documents=400, shards=1)
    config["tokenizer"]["vocab_size"] = 1000
    # 48 / 56 steps: long enough to cancel the lacy run between its first checkpoint (step 8) and its end
    config["training"].update(step_scale=0.00014, log_every=4, checkpoint_every=8)
    config["reference"]["steps"] = 6
    config["evaluation"]["validation_batches"] = 3
    config["cascade"].update(max_new_tokens=16, entities={"source": "corpus", "n_heldout": 1, "n_train": 1, "seed": 0})
    config["leakage"].update(sets=["corpus_person_cloze"], max_queries=20)
    config["cluster"] = {"cpus": 2, "mem_mb": 4000}  # two jobs side by side on the 8000 MB node of .ci/slurm/up.sh
    return config


def squeue_jobs() -> list[dict]:
    run = subprocess.run(["squeue", "-h", "--states=all", "-o", "%i|%T|%k|%r"], capture_output=True, text=True)
    return [dict(zip(["id", "state", "comment", "reason"], line.split("|"))) for line in run.stdout.splitlines()]


def sacct_jobs(since: str) -> list[dict]:
    run = subprocess.run(["sacct", "-X", "-n", "-P", "--starttime", since, "-o", "JobID,JobName,State,Comment"],
                         capture_output=True, text=True, check=True)
    return [dict(zip(["id", "name", "state", "comment"], line.split("|"))) for line in run.stdout.splitlines()]


def test_fig2_on_slurm_survives_a_cancelled_training_job(tmp_path):
    import yaml

    assert _slurm_state() is not None, NO_SLURM

    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    configfile = tmp_path / "tiny.yaml"
    configfile.write_text(yaml.safe_dump(tiny_config()))
    command = [sys.executable, "-m", "snakemake", "results/figures/fig2.pdf", "--profile", str(ROOT / "slurm"),
               "--configfile", str(configfile), "--directory", str(tmp_path), "-s", str(ROOT / "Snakefile"),
               # poll SLURM every 5 s rather than 20 s: minutes on a run of short jobs
               "--slurm-init-seconds-before-status-checks", "5"]
    log = open(tmp_path / "snakemake.log", "w")
    start = time.monotonic()
    run = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    died = {}  # method: (SLURM job id, seconds into the run)
    pending_since = {}
    try:
        while run.poll() is None:
            elapsed = time.monotonic() - start
            assert elapsed < RUN_LIMIT_S, f"the run did not finish in {RUN_LIMIT_S} s (a job waited for forever?)"
            jobs = squeue_jobs()
            for job in jobs:  # a job SLURM can never start is a failure here, not a silent wait
                if job["state"] == "PENDING" and job["reason"] not in ("None", "Priority", "Resources"):
                    pending_since.setdefault(job["id"], elapsed)
                    assert elapsed - pending_since[job["id"]] < 30, f"job pending for good: {job}"
            for method, how in ((CANCELLED, "scancel"), (KILLED, "kill")):
                if method in died or not (tmp_path / f"results/checkpoints/{method}/seed0/latest.pt").exists():
                    continue
                running = [j["id"] for j in jobs if j["state"] == "RUNNING" and training_of(j["comment"]) == method]
                if running and how == "scancel":
                    subprocess.run(["scancel", running[0]], check=True)
                elif running:  # kill -9 the training process on the node, as a node failure would
                    pids = subprocess.run(["scontrol", "listpids", running[0]], capture_output=True, text=True)
                    trainer = [pid for pid in re.findall(r"^(\d+)\s", pids.stdout, re.MULTILINE)
                               if "lacy\0train" in _cmdline(pid)]
                    if not trainer:
                        continue
                    os.kill(int(trainer[0]), signal.SIGKILL)
                else:
                    continue
                died[method] = (running[0], elapsed)
            for method, (job_id, when) in died.items():  # the dead job is noticed and its retry submitted
                retried = len(training_submissions(tmp_path, method)) > 1
                assert retried or elapsed - when < RETRY_WITHIN_S, \
                    f"{method}: SLURM job {job_id} died {elapsed - when:.0f} s ago and Snakemake still waits for it"
            time.sleep(0.5)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            subprocess.run(["scancel", "--name", _run_name(tmp_path) or "-"], capture_output=True)
        log.close()
    seconds = time.monotonic() - start
    output = (tmp_path / "snakemake.log").read_text()
    print(f"SLURM run: {seconds:.0f} s; jobs that died (SLURM id, s into the run): {died}")
    assert run.returncode == 0, output[-6000:]
    assert set(died) == {CANCELLED, KILLED}, f"a training finished before it could be stopped: {died}"
    assert (tmp_path / "results/figures/fig2.pdf").stat().st_size > 0

    # Every job ran under SLURM: sacct has them all, the cancelled one as "CANCELLED by 0" and then its retry.
    jobs = [j for j in sacct_jobs(since) if j["name"] == _run_name(tmp_path)]
    planned = int(re.search(r"^total\s+(\d+)$", output, re.MULTILINE)[1])
    states = [j["state"] for j in jobs]
    print("sacct:", {s: states.count(s) for s in set(states)})
    assert states.count("COMPLETED") == planned, (planned, jobs)
    by_id = {j["id"]: j["state"] for j in jobs}
    for method, died_as in ((CANCELLED, "CANCELLED by 0"), (KILLED, "FAILED")):
        submitted = training_submissions(tmp_path, method)
        assert [by_id[i] for i in submitted] == [died_as, "COMPLETED"], (method, submitted, by_id)
        # The retry resumed from the checkpoint (not step 0), each attempt kept its own log ...
        final_log = (tmp_path / f"logs/train/{method}/seed0.log").read_text()
        resumed = re.search(r"resumed from \S+ at step (\d+)", final_log)
        assert resumed and int(resumed[1]) >= 8, final_log[-3000:]
        attempts = sorted((tmp_path / f"results/checkpoints/{method}/seed0/attempts").glob("*.log"))
        assert [a.name.split("-slurm")[1] for a in attempts] == [f"{i}.log" for i in submitted], attempts
        assert "resumed from" not in attempts[0].read_text() and "resumed from" in attempts[1].read_text()
        summary = json.loads((tmp_path / f"results/models/{method}/seed0/train.json").read_text())
        metrics = [json.loads(line) for line in open(tmp_path / f"results/models/{method}/seed0/metrics.jsonl")]
        assert [m["step"] for m in metrics] == list(range(4, summary["steps"] + 1, 4)), "one curve, no repeats"
    assert "StopRequested" in attempts_of(tmp_path, CANCELLED)[0].read_text(), "scancel: SIGTERM, checkpoint, exit"

    # ... and its model is byte for byte the one an uninterrupted run trains (same command, fresh run directory).
    plan = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--forcerun", "train", "--configfile",
                           str(configfile), "--directory", str(tmp_path), "-s", str(ROOT / "Snakefile"),
                           f"results/models/{CANCELLED}/seed0/model.safetensors"],
                          cwd=tmp_path, capture_output=True, text=True)
    train = next(line for line in plan.stdout.splitlines() if "-m lacy train" in line and f"--method {CANCELLED} " in line)
    train = train[train.index("python -m lacy train"):].split(" 2> ")[0]
    train = train.replace(f"--out results/models/{CANCELLED}/seed0 ", "--out uninterrupted/model ")
    train = train.replace(f"--run-dir results/checkpoints/{CANCELLED}/seed0", "--run-dir uninterrupted/run")
    assert "uninterrupted/model" in train and "uninterrupted/run" in train, train
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run(["bash", "-c", train.replace("python ", f"{shlex.quote(sys.executable)} ", 1)], cwd=tmp_path,
                   env=env, check=True, capture_output=True)
    assert (tmp_path / "uninterrupted/model/model.safetensors").read_bytes() == \
        (tmp_path / f"results/models/{CANCELLED}/seed0/model.safetensors").read_bytes()


def training_of(comment: str) -> str | None:
    """The method of a training job from the executor's SLURM comment (rule_train_wildcards_lacy_0)."""
    found = re.match(r"rule_train(?:_with_\w+_export)?_wildcards_(\w+)_\d+$", comment)
    return found[1] if found else None


def training_submissions(workdir: Path, method: str) -> list[str]:
    """The SLURM job ids of every attempt at training ``method``, in order, from the Snakemake log."""
    log = (workdir / "snakemake.log").read_text()
    return re.findall(rf"submitted with SLURM jobid (\d+) \(log: \S+/rule_train\w*/{method}_0/\d+\.log\)", log)


def attempts_of(workdir: Path, method: str) -> list[Path]:
    return sorted((workdir / f"results/checkpoints/{method}/seed0/attempts").glob("*.log"))


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


def _run_name(workdir: Path) -> str | None:
    """The SLURM job name of this Snakemake run: the executor's run id, which it logs."""
    log = workdir / "snakemake.log"
    found = re.search(r"SLURM run ID: (\S+)", log.read_text()) if log.exists() else None
    return found[1] if found else None
