"""Pretraining (§A.4): every method runs, realised rates are logged, and a killed run resumes exactly; on real
annotated batches, every method trains on the masks Table 5 defines, from the labels of the *target* tokens."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from annotated_corpus import CONTEXT, build_annotated_corpus

import lacy.training as training
from lacy.batches import TokenWindows
from lacy.config import load_schema, schema_defaults
from lacy.distributed import Runtime
from lacy.masks import METHODS
from lacy.model import build_model
from lacy.training import TrainConfig, learning_rate, make_optimizer, micro_batch_size, train, training_step

#: The settings these tests do not vary: the workflow's, from its config schema.
FIXED = {k: v for k, v in schema_defaults(load_schema(Path(__file__).parents[1] / "workflow/schemas/config.schema.yaml"),
                                          "training").items()
         if k in ("weight_decay", "grad_clip", "call_rate", "ignore_rate", "compile")}
FIXED_ARGS = [f"--{k.replace('_', '-')}={v}" for k, v in FIXED.items() if k != "compile"]


def tiny_config(method: str = "lacy", steps: int = 8, **kw) -> TrainConfig:
    values = dict(method=method, preset="test-tiny", steps=steps, batch_size=4, grad_accum=2, lr=3e-3, warmup=2,
                  context=16, precision="fp32", checkpoint_every=2, log_every=1, seed=3, **FIXED)
    values.update(kw)
    return TrainConfig(**values)


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_batches_are_a_function_of_the_step(data):
    """Same (seed, step, micro_step, rank), same batch: what makes resuming exact."""
    annotation, _, _ = data
    windows = TokenWindows.from_directory(annotation, "train", context=16, seed=1)
    a, b = windows.batch(4, step=5, micro_step=1), windows.batch(4, step=5, micro_step=1)
    assert torch.equal(a.x, b.x) and torch.equal(a.fact, b.fact)
    assert not torch.equal(a.x, windows.batch(4, step=6, micro_step=1).x)
    assert torch.equal(a.x[:, 1:], a.y[:, :-1])
    assert (~a.valid).any() or (~windows.batch(64, step=0).valid).any(), "document starts are invalid targets"


def test_warmup_then_constant_learning_rate():
    config = tiny_config(warmup=4, lr=1.0)
    assert [learning_rate(s, config) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="not divisible"):
        micro_batch_size(tiny_config(batch_size=6, grad_accum=4), world_size=1)


@pytest.mark.parametrize("method", [m for m in METHODS if m not in ("rho1", "spacy_refloss")])
def test_every_method_trains_and_logs_realised_rates(data, tmp_path, method):
    annotation, judge, tokenizer = data
    config = tiny_config(method, steps=3)
    windows = TokenWindows.from_directory(annotation, "train", config.context, config.seed,
                                          llm_judge_dir=judge if method == "llm_judge" else None)
    meta = json.loads((tokenizer / "lacy_tokenizer.json").read_text())
    metrics = tmp_path / "run" / "metrics.jsonl"
    train(config, windows, meta, tmp_path / "model", tmp_path / "run" / "latest.pt", metrics)
    records = read_metrics(metrics)
    assert [r["step"] for r in records] == [1, 2, 3]
    call_rate = records[-1]["call_rate"]
    if method == "baseline":
        assert call_rate == 0
    elif method in ("llm_judge", "loss_based"):  # random: 15 % in expectation over 32-token micro-batches
        assert 0.0 < call_rate < 0.35
    else:
        assert call_rate == pytest.approx(0.15, abs=0.02)
    if method == "lacy_ignorefacts":  # the facts left over after 15 % calls (25 % facts here)
        assert 0 < records[-1]["ignore_rate"] < 0.25
    elif method == "lacy_ignore":
        assert records[-1]["ignore_rate"] == pytest.approx(0.15, abs=0.02)
    else:
        assert records[-1]["ignore_rate"] == 0
    assert (tmp_path / "model" / "model.safetensors").is_file()


def test_reference_methods_use_the_reference_model(data, tmp_path):
    annotation, _, tokenizer = data
    meta = json.loads((tokenizer / "lacy_tokenizer.json").read_text())
    windows = TokenWindows.from_directory(annotation, "train", 16, 3)
    ref = tiny_config("baseline", steps=2)
    train(ref, windows, meta, tmp_path / "ref", tmp_path / "ref_run" / "latest.pt", tmp_path / "ref_run" / "m.jsonl")
    for method in ("rho1", "spacy_refloss"):
        config = tiny_config(method, steps=2)
        with pytest.raises(ValueError, match="needs a reference model"):
            train(config, windows, meta, tmp_path / method, tmp_path / method / "latest.pt", tmp_path / "x.jsonl")
        train(config, windows, meta, tmp_path / method, tmp_path / f"{method}_run" / "latest.pt",
              tmp_path / f"{method}_run" / "m.jsonl", reference_dir=tmp_path / "ref")
        assert read_metrics(tmp_path / f"{method}_run" / "m.jsonl")[-1]["call_rate"] == pytest.approx(0.15, abs=0.02)


def test_resumed_run_continues_the_uninterrupted_loss_curve(data, tmp_path, monkeypatch):
    annotation, _, tokenizer = data
    meta = json.loads((tokenizer / "lacy_tokenizer.json").read_text())
    windows = TokenWindows.from_directory(annotation, "train", 16, 3)
    config = tiny_config("lacy_ignore", steps=8)
    train(config, windows, meta, tmp_path / "a", tmp_path / "a_run" / "latest.pt", tmp_path / "a_run" / "m.jsonl")
    uninterrupted = read_metrics(tmp_path / "a_run" / "m.jsonl")

    import lacy.training as training

    real_step = training.training_step

    def crash_at_step_5(*args, **kwargs):
        if args[4] == 5:  # after the checkpoint of step 4, before step 6 is logged
            raise KeyboardInterrupt("killed")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(training, "training_step", crash_at_step_5)
    run = tmp_path / "b_run"
    with pytest.raises(KeyboardInterrupt):
        train(config, windows, meta, tmp_path / "b", run / "latest.pt", run / "m.jsonl")
    assert [r["step"] for r in read_metrics(run / "m.jsonl")] == [1, 2, 3, 4, 5]
    monkeypatch.setattr(training, "training_step", real_step)
    train(config, windows, meta, tmp_path / "b", run / "latest.pt", run / "m.jsonl")
    resumed = read_metrics(run / "m.jsonl")
    keys = ("step", "loss", "call_rate", "ignore_rate", "lr")
    assert [[r[k] for k in keys] for r in resumed] == [[r[k] for k in keys] for r in uninterrupted]


def test_changed_settings_do_not_resume_a_stale_checkpoint(data, tmp_path, caplog):
    annotation, _, tokenizer = data
    meta = json.loads((tokenizer / "lacy_tokenizer.json").read_text())
    windows = TokenWindows.from_directory(annotation, "train", 16, 3)
    run = tmp_path / "run"
    train(tiny_config(steps=2), windows, meta, tmp_path / "m", run / "latest.pt", run / "m.jsonl")
    train(tiny_config(steps=2, lr=1e-3), windows, meta, tmp_path / "m", run / "latest.pt", run / "m.jsonl")
    assert "belongs to a run with other settings" in caplog.text
    assert [r["step"] for r in read_metrics(run / "m.jsonl")] == [1, 2]


def test_export_at_a_fraction_is_that_steps_model_and_survives_a_resume(data, tmp_path, monkeypatch):
    """--export-at-fraction (Figure 8's early checkpoint): the published model is the one after its step, a run
    killed past that step publishes the kept copy when resumed, and without that copy resuming fails loudly."""
    import shutil

    from safetensors.torch import load_file

    import lacy.training as training
    from lacy.tokenizer import LacyTokenizer
    from lacy.training import Export, export_step
    from lacy.model import load_trained

    assert [export_step(8, f) for f in (0.2, 0.4, 1.0, 0.01)] == [2, 3, 8, 1]
    annotation, _, tokenizer = data
    meta = json.loads((tokenizer / "lacy_tokenizer.json").read_text())
    windows = TokenWindows.from_directory(annotation, "train", 16, 3)
    # warmup, then a constant rate: the first 3 steps of an 8-step run are a 3-step run
    train(tiny_config("baseline", steps=3), windows, meta, tmp_path / "three", tmp_path / "r3" / "latest.pt",
          tmp_path / "r3" / "m.jsonl")
    config = tiny_config("baseline", steps=8)
    train(config, windows, meta, tmp_path / "a", tmp_path / "a_run" / "latest.pt", tmp_path / "a_run" / "m.jsonl")
    uninterrupted = read_metrics(tmp_path / "a_run" / "m.jsonl")

    run = tmp_path / "run"
    export = Export(step=3, kept=run / "model-step3", out=tmp_path / "early", tokenizer=tokenizer)
    real_step = training.training_step

    def crash_at_step_5(*args, **kwargs):
        if args[4] == 5:  # after the checkpoint of step 4, past the export step
            raise KeyboardInterrupt("killed")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(training, "training_step", crash_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        train(config, windows, meta, tmp_path / "b", run / "latest.pt", run / "m.jsonl", export=export)
    assert export.kept.is_dir() and not export.out.exists()
    monkeypatch.setattr(training, "training_step", real_step)
    train(config, windows, meta, tmp_path / "b", run / "latest.pt", run / "m.jsonl", export=export)
    keys = ("step", "loss", "call_rate", "ignore_rate", "lr")
    resumed = read_metrics(run / "m.jsonl")
    assert [[r[k] for k in keys] for r in resumed] == [[r[k] for k in keys] for r in uninterrupted]
    early, three = load_file(export.out / "model.safetensors"), load_file(tmp_path / "three" / "model.safetensors")
    assert early.keys() == three.keys() and all(torch.equal(early[k], three[k]) for k in early)
    summary = json.loads((export.out / "train.json").read_text())
    assert (summary["steps"], summary["of_steps"], summary["tokens"]) == (3, 8, 3 * 4 * 16)
    assert LacyTokenizer.load(export.out).vocab_size == meta["vocab_size"]
    load_trained(export.out, torch.device("cpu"))

    shutil.rmtree(export.kept)
    with pytest.raises(FileNotFoundError, match="past the export step 3"):
        train(config, windows, meta, tmp_path / "b", run / "latest.pt", run / "m.jsonl", export=export)


def test_train_command_exports_at_a_fraction_of_its_steps(data, tmp_path):
    import argparse

    from lacy.training import add_train_arguments, run_training

    annotation, _, tokenizer = data
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    argv = ["--annotation", str(annotation), "--tokenizer", str(tokenizer), "--out", str(tmp_path / "model"),
            "--run-dir", str(tmp_path / "run"), "--method", "baseline", "--preset", "test-tiny", "--steps", "5",
            "--batch-size", "4", "--grad-accum", "1", "--lr", "0.003", "--warmup", "2", "--context", "16",
            "--precision", "fp32", "--weight-decay", "0.1", "--grad-clip", "1.0", "--call-rate", "0.15",
            "--ignore-rate", "0.15", "--seed", "0", "--checkpoint-every", "500", "--log-every", "10",
            "--export-at-fraction", "0.4"]
    with pytest.raises(ValueError, match="go together"):
        run_training(parser.parse_args(argv))
    run_training(parser.parse_args([*argv, "--export-dir", str(tmp_path / "early")]))
    assert json.loads((tmp_path / "early" / "train.json").read_text())["steps"] == 2
    assert json.loads((tmp_path / "model" / "train.json").read_text())["steps"] == 5
    assert [p.name.startswith("model-step2-") for p in (tmp_path / "run").glob("model-step*")] == [True]


@pytest.mark.slow
def test_sigterm_checkpoints_and_the_retry_resumes(data, tmp_path):
    """What SLURM does at a time limit: SIGTERM; the job exits non-zero, the retry resumes."""
    annotation, _, tokenizer = data
    run, out = tmp_path / "run", tmp_path / "model"
    cmd = [sys.executable, "-m", "lacy", "train", "--annotation", str(annotation), "--tokenizer", str(tokenizer),
           "--out", str(out), "--run-dir", str(run), "--threads", "1", "--method", "lacy", "--preset", "test-tiny",
           "--steps", "400", "--batch-size", "4", "--grad-accum", "1", "--lr", "0.003", "--warmup", "2",
           "--context", "16", "--precision", "fp32", "--checkpoint-every", "1000", "--log-every", "1", "--seed", "0",
           *FIXED_ARGS]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.time() + 120
    while not ((run / "metrics.jsonl").exists() and (run / "metrics.jsonl").read_text().count("\n") >= 3):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "stopped at step" in stderr
    stopped_at = torch.load(run / "latest.pt", weights_only=False)["step"]
    assert 3 <= stopped_at < 400
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"resumed from {run / 'latest.pt'} at step {stopped_at}" in done.stderr
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == list(range(1, 401))


@pytest.mark.slow
def test_torchrun_with_two_processes_trains_like_the_single_process_path(data, tmp_path):
    """The multi-GPU code path (DDP under torchrun), exercised on CPU with the gloo backend."""
    annotation, _, tokenizer = data
    out = tmp_path / "model"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "lacy",
           "train", "--annotation", str(annotation), "--tokenizer", str(tokenizer), "--out", str(out),
           "--run-dir", str(tmp_path / "run"), "--threads", "1", "--method", "lacy", "--preset", "test-tiny",
           "--steps", "4", "--batch-size", "8", "--grad-accum", "2", "--lr", "0.003", "--warmup", "2",
           "--context", "16", "--precision", "fp32", "--log-every", "1", "--checkpoint-every", "500", "--seed", "0",
           *FIXED_ARGS]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert records[-1]["call_rate"] == pytest.approx(0.15, abs=0.03)
    assert "device cpu x 2" in done.stderr


def test_paper_presets_match_table_3():
    """Table 3: 334M (medium) and 1.27B (xl) with the 32,001-id vocabulary, context 1,024, embeddings counted."""
    from lacy.model import build_model, count_parameters

    with torch.device("meta"):
        medium = count_parameters(build_model("medium", 32001, 1024, 32000))
        xl = count_parameters(build_model("xl", 32001, 1024, 32000))
    assert medium == pytest.approx(334e6, rel=0.01)  # 336.1M: the paper rounds, or omits positions/biases
    assert xl == pytest.approx(1.27e9, rel=0.01)


# ---- semantics on real annotated batches (§4, §A.2, §A.4.2, Table 5) ---------------------------------------------
# The corpus: real sentences annotated by spaCy (§A.2.1) and labelled by the LLM-judge conversion (§A.2.2), see
# tests/annotated_corpus.py. What a batch should hold is read from the raw shard arrays, not from lacy.batches.

@pytest.fixture(scope="module")
def corpus(tmp_path_factory, wiki_records):
    return build_annotated_corpus(tmp_path_factory.mktemp("annotated"), wiki_records)


def expected_targets(corpus, batch) -> dict[str, torch.Tensor]:
    """Per row of ``batch``: locate its window in the shard by its tokens, and read the targets' labels there."""
    rows = [corpus.targets(corpus.find_window(batch.x[r].numpy(), int(batch.y[r, -1]))) for r in range(len(batch.x))]
    return {k: torch.from_numpy(np.stack([row[k] for row in rows])) for k in ("y", "fact", "judge", "valid")}


@pytest.mark.parametrize("draw", ["random", "sequential"])
def test_batch_labels_and_valid_mask_describe_the_target_tokens(corpus, draw):
    """Eq. A.3/A.4 index every mask by the target, C(x_{i+1}), I(x_{i+1}): position i of ``fact``,
    ``grammatical``, ``llm_judge`` and ``valid`` describes y_i = x_{i+1}, not the input x_i. ``valid`` is False
    exactly where y_i is the first token of a document (its context lies in the previous document)."""
    windows = TokenWindows.from_directory(corpus.annotation, "train", CONTEXT, seed=0, llm_judge_dir=corpus.llm_judge)
    batches = [windows.batch(8, step) for step in range(3)] if draw == "random" else list(windows.sequential(4))
    boundaries = disagreements = 0
    for batch in batches:
        want = expected_targets(corpus, batch)
        assert torch.equal(batch.y, want["y"])
        assert torch.equal(batch.fact, want["fact"])
        assert torch.equal(batch.llm_judge, want["judge"])
        assert torch.equal(batch.valid, want["valid"])
        boundaries += int((~batch.valid).sum())
        disagreements += int((batch.fact != batch.llm_judge).sum())
    assert boundaries > 0 and disagreements > 0, "the batches must cross documents and have judge != spaCy labels"


def test_the_label_of_a_target_is_not_the_label_of_its_input(corpus):
    """§A.2.1 on "Wolfgang Amadeus Mozart was a composer.": the name and "composer" are facts, "was" and "a" are
    not. Where the input is the name's last piece and the target "was", the fact label is False (the target's);
    where the input is "a" and the target the first piece of "composer", it is True."""
    sp = corpus.tokenizer.sp
    windows = TokenWindows.from_directory(corpus.annotation, "train", CONTEXT, seed=0)
    batch = next(windows.sequential(2))  # the first two windows: the start of the Mozart document
    fact_by_pair: dict[tuple[str, str], set[bool]] = {}  # (input piece, target piece): fact labels seen
    for x, y, fact in zip(batch.x.flatten(), batch.y.flatten(), batch.fact.flatten()):
        fact_by_pair.setdefault((sp.id_to_piece(int(x)), sp.id_to_piece(int(y))), set()).add(bool(fact))
    was = [facts for (x, y), facts in fact_by_pair.items() if y == "▁was" and x.endswith("t")]
    composer = [facts for (x, y), facts in fact_by_pair.items() if x == "▁a" and y.startswith("▁comp")]
    assert was == [{False}]  # "Mozart|was", both mentions
    assert composer == [{True}]  # "a|composer"
    assert batch.valid.all()  # a document's first token is never a target; position 0's target is the second


def with_spread_logits(model: torch.nn.Module) -> torch.nn.Module:
    """A freshly initialised model predicts almost uniformly; larger (tied) embeddings spread its per-token losses
    over several nats, so loss rankings do not hinge on float rounding."""
    with torch.no_grad():
        model.transformer.wte.weight.mul_(60)
    return model


def losses_without_call(model, x: torch.Tensor, y: torch.Tensor, call_id: int) -> torch.Tensor:
    """−log p_\\CALL(y) computed directly: the <CALL> logit set to −∞ and the rest renormalised (Eq. A.3)."""
    with torch.no_grad():
        logits = model(x).logits.float()
    logits[..., call_id] = float("-inf")
    return -torch.log_softmax(logits, -1).gather(-1, y.unsqueeze(-1)).squeeze(-1)


def ranked(scores: torch.Tensor, eligible: torch.Tensor, k: int, highest: bool = True) -> torch.Tensor:
    """The k eligible positions with the highest (lowest) scores, by a plain sort."""
    flat = [i for i in range(scores.numel()) if eligible.flatten()[i]]
    flat.sort(key=lambda i: scores.flatten()[i].item(), reverse=highest)
    mask = torch.zeros(scores.numel(), dtype=torch.bool)
    mask[flat[:k]] = True
    return mask.view(scores.shape)


@pytest.mark.parametrize("method", ["baseline", "llm_judge", "lacy", "lacy_ignorefacts", "rho1", "spacy_refloss"])
def test_a_training_step_uses_table_5s_masks_from_the_target_labels(corpus, monkeypatch, method):
    """One real training step: the call and ignore masks the loss (Eq. A.3/A.4) receives are Table 5's, recomputed
    here from the raw annotation of the batch's targets and from losses computed directly:

    * LLM judge: C = L_LLM-judge(x_{i+1}), the converted LLM-judge labels (§A.2.2), not spaCy's;
    * LaCy: C = L_spaCy · top 15 % of the model's loss; + Ignorefacts: I = L_spaCy · (1 − C);
    * Rho-1: C = the bottom 15 % of L(B; θ) − L_RefModel(B; θ); spaCy+Refloss: L_spaCy · top 15 % of L_RefModel,
      with L_RefModel the reference model's own losses (here a model initialised differently);
    * no position without a target (a document's first token) is ever called, ignored or counted.
    """
    batch_size, call_id = 8, corpus.call_id
    config = TrainConfig(method=method, preset="test-tiny", steps=1, batch_size=batch_size, grad_accum=1, lr=1e-3,
                         warmup=1, context=CONTEXT, precision="fp32", seed=0, checkpoint_every=500, log_every=10,
                         **FIXED)
    judge = corpus.llm_judge if method == "llm_judge" else None
    windows = TokenWindows.from_directory(corpus.annotation, "train", CONTEXT, config.seed, llm_judge_dir=judge)
    torch.manual_seed(0)
    model = with_spread_logits(build_model("test-tiny", call_id + 1, CONTEXT, call_id))
    reference = with_spread_logits(build_model("test-tiny", call_id + 1, CONTEXT, call_id)).eval()
    before = copy.deepcopy(model)

    seen = {}
    real_masked_loss = training.masked_loss

    def spy(log_probs, call, ignore, valid):
        seen.update(call=call.clone(), ignore=ignore.clone(), valid=valid.clone())
        return real_masked_loss(log_probs, call, ignore, valid)

    monkeypatch.setattr(training, "masked_loss", spy)
    runtime = Runtime(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
    training_step(model, reference if method in ("rho1", "spacy_refloss") else None, windows,
                  make_optimizer(model, config), 0, config, runtime, batch_size, call_id)

    batch = windows.batch(batch_size, step=0, micro_step=0, rank=0)  # the step's batch: a function of the step
    want = expected_targets(corpus, batch)
    valid, facts = want["valid"], want["fact"] & want["valid"]
    assert (~valid).any() and (want["judge"] != want["fact"])[valid].any(), "the batch must exercise the labels"
    k = round(0.15 * int(valid.sum()))
    loss = losses_without_call(before, batch.x, batch.y, call_id)
    ref_loss = losses_without_call(reference, batch.x, batch.y, call_id)
    nothing = torch.zeros_like(valid)
    call = {"baseline": nothing, "llm_judge": want["judge"] & valid, "lacy": ranked(loss, facts, k),
            "lacy_ignorefacts": ranked(loss, facts, k), "rho1": ranked(loss - ref_loss, valid, k, highest=False),
            "spacy_refloss": ranked(ref_loss, facts, k)}[method]
    ignore = facts & ~call if method == "lacy_ignorefacts" else nothing
    assert torch.equal(seen["valid"], valid)
    assert torch.equal(seen["call"] & valid, call)
    assert torch.equal(seen["ignore"] & valid, ignore)
    assert not ((seen["call"] | seen["ignore"]) & ~valid).any()
