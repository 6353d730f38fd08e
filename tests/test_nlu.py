"""NLU without cascade (§5.5): <CALL> masking inside the lm-eval model class and a local-task run."""

from __future__ import annotations

import json

import pytest
import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from lacy import nlu
from lacy.model import build_model

REQUESTS = [("Alvar Aalto was a Finnish", " architect"), ("The capital of Finland is", " Helsinki and more")]


@pytest.fixture(scope="module")
def model_dirs(small_tokenizer, tmp_path_factory):
    """Two tiny checkpoints identical except that the second's <CALL> logit dwarfs every other logit."""
    root = tmp_path_factory.mktemp("nlu")
    torch.manual_seed(0)
    model = build_model("test-tiny", small_tokenizer.vocab_size, 64, small_tokenizer.call_id)
    with torch.no_grad():
        model.transformer.ln_f.bias[0] = 10.0
        model.transformer.wte.weight[:, 0] = 0.0
    dirs = {}
    for name, boost in (("plain", 0.0), ("huge_call", 1000.0)):
        with torch.no_grad():
            model.transformer.wte.weight[small_tokenizer.call_id, 0] = boost
        model.save_pretrained(root / name)
        small_tokenizer.save_pretrained(root / name)
        dirs[name] = root / name
    return dirs


def _loglikelihoods(lm):
    requests = [Instance("loglikelihood", doc={}, arguments=pair, idx=i) for i, pair in enumerate(REQUESTS)]
    return [logprob for logprob, _ in lm.loglikelihood(requests)]


def test_call_logit_cannot_affect_loglikelihoods(model_dirs, small_tokenizer):
    plain = nlu.LacyLM(pretrained=str(model_dirs["plain"]), device="cpu")
    huge = nlu.LacyLM(pretrained=str(model_dirs["huge_call"]), device="cpu")
    assert plain.call_id == huge.call_id == small_tokenizer.call_id
    assert _loglikelihoods(plain) == pytest.approx(_loglikelihoods(huge), abs=1e-4)
    unmasked = _loglikelihoods(HFLM(pretrained=str(model_dirs["huge_call"]), device="cpu"))
    assert all(u < m - 100 for u, m in zip(unmasked, _loglikelihoods(huge)))


def test_bigbench_target_scores_become_multiple_choice_docs():
    task = {"examples": [{"input": "Does it fall? ", "target_scores": {"Yes": 1, "No": 0}},
                         {"input": "Which?", "target_scores": {"A": 0, "B": 0, "C": 1}}]}
    assert nlu.multiple_choice_docs(task) == [
        {"question": "Does it fall?", "choices": ["Yes", "No"], "label": 0},
        {"question": "Which?", "choices": ["A", "B", "C"], "label": 2}]


def test_local_task_runs_through_lm_eval(model_dirs, tmp_path):
    examples = [{"input": f"Object {i} is dropped. Does it fall?", "target_scores": {"Yes": 1, "No": 0}}
                for i in range(4)]
    for task in nlu.LOCAL_TASKS.values():
        (tmp_path / "bigbench" / task).mkdir(parents=True)
        (tmp_path / "bigbench" / task / "task.json").write_text(json.dumps({"examples": examples}))
    include = tmp_path / "tasks"
    configs = nlu.write_local_tasks(tmp_path / "bigbench", include)
    assert sorted(p.stem for p in configs) == sorted(nlu.LOCAL_TASKS)
    # what the nlu rule's adapter calls (and `lacy nlu run`): limit 0 is every document, recorded as no limit
    summary = nlu.evaluate_nlu(model_dirs["plain"], ["bigbench_local_physical_intuition"], tmp_path / "nlu.json",
                               include, limit=0, batch_size=4, device="cpu")
    assert json.loads((tmp_path / "nlu.json").read_text()) == summary
    scores = summary["tasks"]["bigbench_local_physical_intuition"]
    assert summary["cascade"] is False and summary["limit"] is None and scores["samples"] == 4
    assert {"acc", "acc_stderr", "acc_norm", "acc_norm_stderr"} <= set(scores) and 0 <= scores["acc"] <= 1


def test_run_command_gives_evaluate_nlu_its_own_defaults():
    """`lacy nlu run` without its optional flags calls evaluate_nlu with evaluate_nlu's own defaults (the nlu rule's
    script leaves all but the limit to the function): every document, batches of 16, seed 0, the default device."""
    from command_calls import command_call

    got, defaults = command_call(nlu, "evaluate_nlu", ["nlu", "run", "--model", "m", "--out", "o.json"])
    assert got == defaults
    assert defaults == {"include_path": None, "limit": 0, "batch_size": 16, "device": None, "seed": 0}
