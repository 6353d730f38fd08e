"""Fact leakage (§5.3, §B): how many facts a ``<CALL>`` model answers itself when it cannot call.

Calls are disabled by setting the ``<CALL>`` logit to -inf. Each query is a sentence start preceded by three
examples of the same set (3-shot, §B); the model continues it greedily for at most ``max_new_tokens`` tokens,
and the continuation is cut at the first newline. A query *leaks* when a gold answer (any alias) is contained
in the continuation after SQuAD-style normalisation (:func:`normalize_answer`); containment is checked on
whole words, so "1898" does not match "18985" nor "art" match "party". The fact leakage of a model is the
fraction of leaked queries (lower is better), reported with a seeded percentile-bootstrap 95 % CI.

Query sets, all stored as JSONL of ``{"id", "prompt", "answers"}`` (plus an optional ``completion``, the
text shown after the prompt when the query serves as a shot; default: the first answer):

* ``bigbench_qa_wikidata``: BigBench QA Wikidata (already sentence starts, "The country of X is").
* ``popqa_long_tail``: PopQA's 1,399 queries about entities with fewer than 100 monthly page views, whose
  questions an LLM rephrases once into sentence starts ("What is Ufa the capital of? Ufa is the capital of").
* ``corpus_person_cloze``: the embedded default's own stand-in, built from the People biographies of the
  training split: "<Name> was" -> the descriptor words of the description (nationality, occupation, office:
  "Finnish", "architect", "designer"), "<Name> was born in" -> the birth year, kept only where the answer occurs in that person's training text. At the default
  scale these are the facts that can leak at all; QA Wikidata mostly asks about entities the corpus lacks.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import string
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from lacy.defaults import keyword_defaults
from lacy.io import read_jsonl, write_json, write_jsonl
from lacy.llm import add_llm_arguments, llm_from_args
from lacy.stats import RESAMPLES, bootstrap_ci

log = logging.getLogger(__name__)

SHOTS = 3
MAX_NEW_TOKENS = 16
#: PopQA's long tail (§B): entities with fewer than this many monthly Wikipedia page views.
POPQA_MAX_POPULARITY = 100
POPQA_DATASET = "akariasai/PopQA"

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans({c: " " for c in string.punctuation + "–—‘’“”"})


# --- scoring -------------------------------------------------------------------------------------------------

def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation: lowercase, punctuation to spaces, drop a/an/the, collapse whitespace."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def contains_answer(generation: str, answers: Iterable[str]) -> bool:
    """Whether any normalised gold alias occurs as whole words in the normalised generation."""
    haystack = f" {normalize_answer(generation)} "
    return any(needle and f" {needle} " in haystack for needle in map(normalize_answer, answers))


# --- prompts -------------------------------------------------------------------------------------------------

def shot_indices(n_queries: int, index: int, k: int = SHOTS, seed: int = 0) -> list[int]:
    """The ``k`` other queries shown as examples before query ``index``; fixed by ``seed`` and ``index``
    alone, so every model sees the same prompts."""
    if n_queries <= k:
        raise ValueError(f"a {k}-shot prompt needs more than {k} queries, the set has {n_queries}")
    rng = np.random.default_rng([seed, index])
    others = rng.choice(n_queries - 1, size=k, replace=False)
    return [int(i) + (i >= index) for i in others]


def few_shot_prompt(query: dict, shots: list[dict]) -> str:
    """Examples as "<prompt> <completion>" lines (the shot's ``completion``, else its first answer), then
    the query's prompt for the model to complete."""
    lines = [f"{shot['prompt']} {shot.get('completion', shot['answers'][0])}" for shot in shots]
    return "\n".join([*lines, query["prompt"]])


def build_prompts(queries: list[dict], k: int = SHOTS, seed: int = 0) -> list[str]:
    return [few_shot_prompt(q, [queries[j] for j in shot_indices(len(queries), i, k, seed)])
            for i, q in enumerate(queries)]


# --- query sets ----------------------------------------------------------------------------------------------

def qa_wikidata_queries(task: dict) -> list[dict]:
    """BigBench QA Wikidata examples (``target``: one answer or a list of aliases) as queries."""
    queries = []
    for i, example in enumerate(task["examples"]):
        target = example["target"]
        answers = [target] if isinstance(target, str) else list(target)
        queries.append({"id": f"qa_wikidata-{i}", "prompt": example["input"].strip(), "answers": answers})
    return queries


_YEARS = re.compile(r"\((?:c\.\s*|born\s+)?(\d{3,4})(?:\s*[–-]\s*(?:c\.\s*)?\d{3,4})?\)")
_NON_DESCRIPTOR = {"and", "of", "the", "in", "for", "from", "to", "who", "with", "former", "born"}


def person_name(title: str) -> str:
    """The Wikipedia title without a disambiguation suffix ("John Smith (actor)" -> "John Smith")."""
    return re.sub(r"\s*\([^)]*\)\s*$", "", title).strip()


def description_head(description: str) -> str:
    """The description before its dates ("Finnish architect and designer (1898–1976)" -> "Finnish architect
    and designer")."""
    return description.split("(")[0].strip().rstrip(",;")


def description_words(description: str) -> list[str]:
    """Descriptor words of a description: nationality, occupation, office ("Finnish", "architect", ...)."""
    head = description_head(description)
    return [w for w in re.findall(r"[^\W\d_][\w'-]+", head) if w.lower() not in _NON_DESCRIPTOR]


def person_cloze_queries(record: dict) -> list[dict]:
    """Cloze queries about one biography whose answers occur in its own text (§5.3, default stand-in)."""
    name, text, description = person_name(record["title"]), record["text"], record.get("description") or ""
    in_text = [w for w in description_words(description) if re.search(rf"\b{re.escape(w)}\b", text)]
    queries = []
    if in_text:
        verb = "is" if f"{name} is " in text and f"{name} was " not in text else "was"
        queries.append({"id": f"{record['id']}-description", "prompt": f"{name} {verb}", "answers": in_text,
                        "completion": description_head(description)})
    years = _YEARS.search(description)
    if years and re.search(rf"\b{years.group(1)}\b", text):
        queries.append({"id": f"{record['id']}-born", "prompt": f"{name} was born in",
                        "answers": [years.group(1)]})
    return queries


def corpus_person_cloze(records: Iterable[dict]) -> list[dict]:
    """The ``corpus_person_cloze`` set from the persons of a corpus split."""
    return [q for r in records if r.get("is_person") for q in person_cloze_queries(r)]


def read_corpus_split(corpus_dir: Path, split: str = "train") -> Iterator[dict]:
    shards = sorted((Path(corpus_dir) / split).glob("part-*.jsonl*"))
    if not shards:
        raise FileNotFoundError(f"{corpus_dir}/{split}: no corpus shards")
    for shard in shards:
        for _, record in read_jsonl(shard):
            yield record


def select_long_tail(rows: Iterable[dict], max_popularity: int = POPQA_MAX_POPULARITY) -> list[dict]:
    """PopQA rows about entities with ``s_pop`` below ``max_popularity``, answers parsed from JSON (§B)."""
    selected = []
    for row in rows:
        if row["s_pop"] >= max_popularity:
            continue
        answers = row["possible_answers"]
        selected.append({"id": str(row["id"]), "question": row["question"], "s_pop": row["s_pop"],
                         "answers": json.loads(answers) if isinstance(answers, str) else list(answers)})
    return selected


REPHRASE_SYSTEM = ("You turn questions into sentence starts for a language model that cannot follow "
                   "instructions. Reply with the sentence start only: one line, no answer, no quotes.")
REPHRASE_PROMPT = """Rewrite the question as the beginning of a sentence whose next words are the answer.

Question: What is Ufa the capital of?
Sentence start: Ufa is the capital of

Question: Who was the director of Titanic?
Sentence start: The director of Titanic was

Question: In what country is Dunmore?
Sentence start: Dunmore is in the country of

Question: {question}
Sentence start:"""


def clean_sentence_start(reply: str) -> str:
    """First line of an LLM reply, without a label, quotes or a trailing ellipsis/blank."""
    line = reply.strip().splitlines()[0] if reply.strip() else ""
    line = re.sub(r"^sentence start:\s*", "", line, flags=re.IGNORECASE)
    return line.strip().strip("\"'").rstrip(".…_ ").strip()


def rephrase_popqa(rows: list[dict], llm) -> list[dict]:
    """PopQA queries as "<question> <sentence start>" (§B; the paper used Gemini 2.0 Flash)."""
    queries = []
    for row in rows:
        start = clean_sentence_start(llm.complete(REPHRASE_PROMPT.format(question=row["question"]),
                                                  system=REPHRASE_SYSTEM, max_tokens=64))
        if not start:
            raise ValueError(f"PopQA {row['id']}: the LLM returned no sentence start")
        queries.append({"id": f"popqa-{row['id']}", "prompt": f"{row['question']} {start}",
                        "answers": row["answers"], "s_pop": row["s_pop"]})
    return queries


def write_popqa_queries(rows: Path, llm, out: Path) -> int:
    """The ``popqa_long_tail`` query set (§B): the long-tail rows written by ``download-popqa`` (``rows``),
    rephrased into sentence starts by ``llm`` (:func:`rephrase_popqa`), written to ``out``; returns their count."""
    n = write_jsonl(out, rephrase_popqa(read_queries(rows), llm))
    log.info("wrote %s: %d popqa_long_tail queries", out, n)
    return n


def read_queries(path: Path) -> list[dict]:
    return [record for _, record in read_jsonl(path)]


def generate_greedy(model, encode: Callable[[str], list[int]], decode: Callable[[list[int]], str],
                    prompts: list[str], call_id: int, max_new_tokens: int = MAX_NEW_TOKENS,
                    batch_size: int = 16) -> list[str]:
    """Greedy continuations with the ``<CALL>`` logit at -inf, each cut at its first newline.

    Prompts are left-padded in batches; a prompt longer than the context keeps its last tokens.
    """
    import torch

    keep = model.config.n_positions - max_new_tokens
    outputs = []
    for start in range(0, len(prompts), batch_size):
        encoded = [list(encode(p))[-keep:] for p in prompts[start:start + batch_size]]
        width = max(map(len, encoded))
        ids = torch.tensor([[0] * (width - len(e)) + e for e in encoded], device=model.device)
        mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded], device=model.device)
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                 do_sample=False, suppress_tokens=[call_id], pad_token_id=0)
        outputs += [decode(row[width:].tolist()).split("\n")[0].strip() for row in out]
    return outputs


def score_set(queries: list[dict], generations: list[str], n_resamples: int, seed: int) -> tuple[dict, list[bool]]:
    leaked = [contains_answer(g, q["answers"]) for q, g in zip(queries, generations, strict=True)]
    return {"queries": len(queries), "leaked": int(sum(leaked)),
            "fact_leakage": float(np.mean(leaked)) if leaked else None,
            "ci95": bootstrap_ci([float(x) for x in leaked], n_resamples, seed)}, leaked


def subsample(queries: list[dict], max_queries: int, seed: int) -> list[dict]:
    """At most ``max_queries`` queries, a seeded sample in their original order (0: all)."""
    if not max_queries or len(queries) <= max_queries:
        return queries
    keep = np.sort(np.random.default_rng(seed).choice(len(queries), max_queries, replace=False))
    return [queries[i] for i in keep]


def evaluate_leakage(model_dir: Path, query_sets: dict[str, Path], shots: int, max_new_tokens: int, max_queries: int,
                     seed: int, n_resamples: int, batch_size: int) -> tuple[dict, list[dict]]:
    """Fact leakage of one model (on the GPU when there is one) on each named query set, with :func:`run_leakage`'s
    settings; returns (summary, per-query generations)."""
    import torch

    from lacy.distributed import default_device
    from lacy.model import load_trained
    from lacy.tokenizer import LacyTokenizer

    tokenizer = LacyTokenizer.load(model_dir)
    model = load_trained(model_dir, default_device())
    summary = {"model": str(model_dir), "call_id": tokenizer.call_id, "shots": shots,
               "max_new_tokens": max_new_tokens, "seed": seed, "bootstrap_resamples": n_resamples,
               "call_logit": "-inf", "containment": "SQuAD-normalised, whole words, any alias", "sets": {}}
    records = []
    torch.manual_seed(seed)
    for name, path in query_sets.items():
        queries = subsample(read_queries(path), max_queries, seed)
        prompts = build_prompts(queries, shots, seed)
        generations = generate_greedy(model, lambda t: tokenizer.encode(t).tolist(), tokenizer.decode, prompts,
                                      tokenizer.call_id, max_new_tokens, batch_size)
        summary["sets"][name], leaked = score_set(queries, generations, n_resamples, seed)
        summary["sets"][name]["source"] = str(path)
        log.info("%s: fact leakage %.4f (%d/%d)", name, summary["sets"][name]["fact_leakage"],
                 summary["sets"][name]["leaked"], len(queries))
        records += [{"set": name, "id": q["id"], "prompt": q["prompt"], "answers": q["answers"],
                     "generation": g, "leaked": hit} for q, g, hit in zip(queries, generations, leaked)]
    return summary, records


def run_leakage(model_dir: Path, query_sets: dict[str, Path], out: Path, generations: Path | None = None, *,
                shots: int = SHOTS, max_new_tokens: int = MAX_NEW_TOKENS, max_queries: int = 0, seed: int = 0,
                n_resamples: int = RESAMPLES, batch_size: int = 16) -> dict:
    """Fact leakage of one model with calls disabled (§5.3, §B; :func:`evaluate_leakage`): the summary JSON to
    ``out`` and, with ``generations``, every query's continuation to that JSONL(.gz); returns the summary."""
    summary, records = evaluate_leakage(model_dir, query_sets, shots, max_new_tokens, max_queries, seed,
                                        n_resamples, batch_size)
    if generations:
        write_jsonl(generations, records)
    write_json(out, summary)
    return summary


#: :func:`run_leakage`'s own values of the options ``lacy leakage run`` leaves out.
DEFAULTS = keyword_defaults(run_leakage)


# --- commands ------------------------------------------------------------------------------------------------

def _named_paths(items: list[str]) -> dict[str, Path]:
    pairs = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--queries {item!r}: expected NAME=PATH")
        pairs[name] = Path(path)
    return pairs


def _build_cloze_command(args: argparse.Namespace) -> None:
    n = write_jsonl(args.out, corpus_person_cloze(read_corpus_split(args.corpus, args.split)))
    log.info("wrote %s: %d corpus_person_cloze queries", args.out, n)


def _build_qa_wikidata_command(args: argparse.Namespace) -> None:
    from lacy.bigbench import load_task

    n = write_jsonl(args.out, qa_wikidata_queries(load_task(args.bigbench, "qa_wikidata")))
    log.info("wrote %s: %d bigbench_qa_wikidata queries", args.out, n)


def _download_popqa_command(args: argparse.Namespace) -> None:
    from datasets import load_dataset

    rows = load_dataset(POPQA_DATASET, split="test", revision=args.revision)
    selected = select_long_tail(rows, args.max_popularity)
    write_jsonl(args.out, selected)
    log.info("wrote %s: %d of %d PopQA queries with s_pop < %d (the paper reports 1,399)",
             args.out, len(selected), len(rows), args.max_popularity)


def _rephrase_popqa_command(args: argparse.Namespace) -> None:
    write_popqa_queries(args.input, llm_from_args(args), args.out)


def _run_command(args: argparse.Namespace) -> None:
    run_leakage(args.model, _named_paths(args.queries), args.out, args.generations, shots=args.shots,
                max_new_tokens=args.max_new_tokens, max_queries=args.max_queries, seed=args.seed,
                n_resamples=args.bootstrap, batch_size=args.batch_size)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lacy leakage build-cloze|build-qa-wikidata|download-popqa|rephrase-popqa|run``."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    leakage = subparsers.add_parser("leakage", help="fact leakage with calls disabled (§5.3, §B)")
    sub = leakage.add_subparsers(dest="leakage_command", required=True)

    cloze = sub.add_parser("build-cloze", formatter_class=fmt,
                           help="corpus_person_cloze queries from the training split's biographies")
    cloze.add_argument("--corpus", type=Path, required=True, help="corpus directory")
    cloze.add_argument("--split", default="train")
    cloze.add_argument("--out", type=Path, required=True, help="queries JSONL to write")
    cloze.set_defaults(func=_build_cloze_command)

    wikidata = sub.add_parser("build-qa-wikidata", formatter_class=fmt,
                              help="bigbench_qa_wikidata queries from the extracted BIG-bench task")
    wikidata.add_argument("--bigbench", type=Path, required=True, help="directory of `lacy bigbench extract`")
    wikidata.add_argument("--out", type=Path, required=True, help="queries JSONL to write")
    wikidata.set_defaults(func=_build_qa_wikidata_command)

    popqa = sub.add_parser("download-popqa", formatter_class=fmt,
                           help=f"PopQA's long tail from the Hugging Face hub ({POPQA_DATASET}; paper config)")
    popqa.add_argument("--out", type=Path, required=True, help="JSONL of {id, question, answers, s_pop}")
    popqa.add_argument("--revision", default=None, help="dataset revision (default: the hub's main)")
    popqa.add_argument("--max-popularity", type=int, default=POPQA_MAX_POPULARITY,
                       help="keep entities with fewer monthly page views")
    popqa.set_defaults(func=_download_popqa_command)

    rephrase = sub.add_parser("rephrase-popqa", formatter_class=fmt,
                              help="rephrase PopQA questions into sentence starts with an LLM (cached)")
    rephrase.add_argument("--input", type=Path, required=True, help="JSONL written by download-popqa")
    rephrase.add_argument("--out", type=Path, required=True, help="queries JSONL to write")
    add_llm_arguments(rephrase, llm_help="model name (paper: Gemini 2.0 Flash)")
    rephrase.set_defaults(func=_rephrase_popqa_command)

    run = sub.add_parser("run", formatter_class=fmt, help="fact leakage of one model on named query sets")
    run.add_argument("--model", type=Path, required=True, help="model directory (save_pretrained + tokenizer)")
    run.add_argument("--queries", action="append", required=True, metavar="NAME=PATH",
                     help="a query set, repeatable (e.g. corpus_person_cloze=results/leakage/cloze.jsonl)")
    run.add_argument("--out", type=Path, required=True, help="summary JSON to write")
    run.add_argument("--generations", type=Path, default=None, help="per-query JSONL(.gz) to write")
    run.add_argument("--shots", type=int, default=DEFAULTS["shots"])
    run.add_argument("--max-new-tokens", type=int, default=DEFAULTS["max_new_tokens"])
    run.add_argument("--max-queries", type=int, default=DEFAULTS["max_queries"], help="seeded sample per set (0: all)")
    run.add_argument("--seed", type=int, default=DEFAULTS["seed"],
                     help="seed of the shots, the sample and the bootstrap")
    run.add_argument("--bootstrap", type=int, default=DEFAULTS["n_resamples"],
                     help="bootstrap resamples of the 95%% CI")
    run.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    run.set_defaults(func=_run_command)
