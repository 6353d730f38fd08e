"""NLU without cascade (§5.5, Tables 1 and 6, §B) through lm-evaluation-harness.

:class:`LacyLM` is ``HFLM`` with calls disabled: the ``<CALL>`` logit is set to -inf before every softmax, so
log-likelihoods are renormalised over the other tokens and the model cannot spend probability on ``<CALL>``
(generation suppresses it too). Multiple-choice tasks are scored as usual by comparing the answers'
log-likelihoods; we report ``acc`` (Table 1's accuracy) and ``acc_norm`` with their standard errors.

Paper configuration: lm-eval's ``arc_easy``, ``hellaswag``, ``piqa`` and ``siqa`` (downloaded from the hub).
Embedded default (no hub): local tasks written by :func:`write_local_tasks` from BIG-bench's JSON,
``bigbench_local_social_iqa`` (SIQA's BIG-bench version) and ``bigbench_local_physical_intuition``, loaded with
``dataset_path: json`` from the generated include directory.

How lm-eval 0.4.13 finds the model: ``--model`` only resolves names in its registry, which it fills from its
own ``MODEL_MAPPING``; it loads no plugin entry points. The class registers itself when this module is
imported, so use ``lacy nlu run`` (or :func:`evaluate_nlu`), or the lm-eval command line through this module,
which imports the class first::

    python -m lacy.nlu run --model lacy --model_args pretrained=results/models/lacy/seed0 \\
        --tasks bigbench_local_social_iqa --include_path results/nlu/tasks
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import yaml
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from lacy.defaults import keyword_defaults
from lacy.distributed import default_device
from lacy.io import atomic_output, write_json, write_jsonl

log = logging.getLogger(__name__)

CALL_TOKEN = "<CALL>"
PAPER_TASKS = ("arc_easy", "hellaswag", "piqa", "siqa")
#: Embedded-default task name -> BIG-bench task it is built from.
LOCAL_TASKS = {"bigbench_local_social_iqa": "social_iqa",
               "bigbench_local_physical_intuition": "physical_intuition"}
METRICS = ("acc", "acc_norm")


@register_model("lacy")
class LacyLM(HFLM):
    """A ``<CALL>`` model evaluated without cascade: ``HFLM`` whose ``<CALL>`` logit is -inf (§5.5).

    ``call_id`` defaults to the checkpoint's ``config.call_token_id``, else the tokenizer's ``<CALL>`` id.
    ``device`` defaults to CUDA when available, else the CPU.
    """

    def __init__(self, pretrained, call_id: int | None = None, device: str | None = None, **kwargs) -> None:
        device = device or str(default_device())
        super().__init__(pretrained=pretrained, device=device, **kwargs)
        self.call_id = int(call_id if call_id is not None else self._default_call_id())

    def _default_call_id(self) -> int:
        call_id = getattr(self.model.config, "call_token_id", None)
        if call_id is None:
            call_id = self.tokenizer.convert_tokens_to_ids(CALL_TOKEN)
        if call_id is None or call_id == self.tokenizer.unk_token_id:
            raise ValueError("the model names no <CALL> id; pass call_id=... in --model_args")
        return call_id

    def _model_call(self, inps, attn_mask=None, labels=None):
        logits = super()._model_call(inps, attn_mask=attn_mask, labels=labels)
        logits[..., self.call_id] = float("-inf")
        return logits

    def _model_generate(self, context, max_length, stop, **generation_kwargs):
        suppress = set(generation_kwargs.pop("suppress_tokens", None) or ()) | {self.call_id}
        return super()._model_generate(context, max_length, stop, suppress_tokens=sorted(suppress),
                                       **generation_kwargs)


# --- local tasks from BIG-bench ------------------------------------------------------------------------------

def multiple_choice_docs(task: dict) -> list[dict]:
    """BIG-bench ``target_scores`` examples as ``{question, choices, label}`` (label: the best choice)."""
    docs = []
    for example in task["examples"]:
        choices = list(example["target_scores"])
        scores = [example["target_scores"][c] for c in choices]
        docs.append({"question": example["input"].strip(), "choices": choices,
                     "label": scores.index(max(scores))})
    return docs


def task_config(name: str, data_file: Path) -> dict:
    """An lm-eval task: log-likelihood multiple choice over a local JSONL file."""
    return {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(Path(data_file).resolve())}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "Question: {{question}}\nAnswer:",
        "doc_to_choice": "choices",
        "doc_to_target": "label",
        "target_delimiter": " ",
        "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True} for m in METRICS],
        "metadata": {"version": 1.0},
    }


def write_local_tasks(bigbench_dir: Path, out_dir: Path, tasks: dict[str, str] = LOCAL_TASKS) -> list[Path]:
    """Write ``<out>/<name>.jsonl`` and ``<out>/<name>.yaml`` per local task; ``out`` is an include path."""
    from lacy.bigbench import load_task

    written = []
    for name, bigbench_task in tasks.items():
        data = Path(out_dir) / f"{name}.jsonl"
        n = write_jsonl(data, multiple_choice_docs(load_task(bigbench_dir, bigbench_task)))
        config = Path(out_dir) / f"{name}.yaml"
        with atomic_output(config) as tmp:
            tmp.write_text(yaml.safe_dump(task_config(name, data), sort_keys=False))
        log.info("%s: %d documents from BIG-bench %s", config, n, bigbench_task)
        written.append(config)
    return written


# --- evaluation ----------------------------------------------------------------------------------------------

def task_scores(results: dict) -> dict[str, dict]:
    """Per task: ``acc``, ``acc_norm`` and their standard errors from lm-eval's ``"metric,filter"`` keys."""
    scores = {}
    for task, metrics in results["results"].items():
        row = {}
        for metric in METRICS:
            for key in (metric, f"{metric}_stderr"):
                if f"{key},none" in metrics:
                    row[key] = metrics[f"{key},none"]
        row["samples"] = results.get("n-samples", {}).get(task, {}).get("effective")
        scores[task] = row
    return scores


def run_nlu(model_dir: Path, tasks: list[str], include_path: Path | None, batch_size: int, limit: int | None,
            device: str | None, seed: int) -> dict:
    """Evaluate one model without cascade on lm-eval ``tasks`` with :func:`evaluate_nlu`'s settings; built-in tasks
    are indexed only when needed."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    local = {p.stem for p in Path(include_path).glob("*.yaml")} if include_path else set()
    manager = TaskManager(include_path=str(include_path) if include_path else None,
                          include_defaults=bool(set(tasks) - local))
    model = LacyLM(pretrained=str(model_dir), device=device, batch_size=batch_size)
    results = simple_evaluate(model=model, tasks=list(tasks), task_manager=manager, limit=limit,
                              random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
                              fewshot_random_seed=seed, log_samples=False)
    return {"model": str(model_dir), "call_id": model.call_id, "call_logit": "-inf", "cascade": False,
            "limit": limit, "tasks": task_scores(results),
            "lm_eval_version": results.get("lm_eval_version")}


def evaluate_nlu(model_dir: Path, tasks: list[str], out: Path, include_path: Path | None = None, *, limit: int = 0,
                 batch_size: int = 16, device: str | None = None, seed: int = 0) -> dict:
    """NLU of one model without cascade (§5.5, Tables 1 and 6; :func:`run_nlu`) on lm-eval ``tasks``, at most
    ``limit`` documents per task (0: all), written to ``out`` as JSON; ``include_path``: the local tasks'
    directory (:func:`write_local_tasks`), if any task is one. Returns the summary."""
    summary = run_nlu(model_dir, tasks, include_path, batch_size, limit or None, device, seed)
    for task, row in summary["tasks"].items():
        log.info("%s: acc %.4f", task, row.get("acc", float("nan")))
    write_json(out, summary)
    return summary


#: :func:`evaluate_nlu`'s own values of the options ``lacy nlu run`` leaves out.
DEFAULTS = keyword_defaults(evaluate_nlu)


def _tasks_command(args: argparse.Namespace) -> None:
    write_local_tasks(args.bigbench, args.out)


def _run_command(args: argparse.Namespace) -> None:
    evaluate_nlu(args.model, args.tasks.split(","), args.out, args.include_path, limit=args.limit,
                 batch_size=args.batch_size, device=args.device, seed=args.seed)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lacy nlu tasks`` and ``lacy nlu run``."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    nlu = subparsers.add_parser("nlu", help="NLU without cascade via lm-evaluation-harness (§5.5)")
    sub = nlu.add_subparsers(dest="nlu_command", required=True)

    tasks = sub.add_parser("tasks", formatter_class=fmt, help="write local lm-eval tasks from BIG-bench JSON")
    tasks.add_argument("--bigbench", type=Path, required=True, help="directory of `lacy bigbench extract`")
    tasks.add_argument("--out", type=Path, required=True, help="include directory (YAML + JSONL) to write")
    tasks.set_defaults(func=_tasks_command)

    run = sub.add_parser("run", formatter_class=fmt, help="evaluate one model with <CALL> disabled")
    run.add_argument("--model", type=Path, required=True, help="model directory (save_pretrained + tokenizer)")
    run.add_argument("--tasks", default=",".join(LOCAL_TASKS),
                     help=f"comma-separated lm-eval tasks (paper: {','.join(PAPER_TASKS)})")
    run.add_argument("--include-path", type=Path, default=None, help="directory written by `lacy nlu tasks`")
    run.add_argument("--out", type=Path, required=True, help="JSON of acc/acc_norm (+stderr) per task")
    run.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    run.add_argument("--limit", type=int, default=DEFAULTS["limit"], help="documents per task (0: all)")
    run.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    run.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    run.set_defaults(func=_run_command)


if __name__ == "__main__":
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()
