"""Factual precision of generated biographies (§5.2, §B): FactScore and the offline fact precision.

**FactScore** (Min et al., 2023) is implemented here from the paper's description (the ``factscore``
package pins torch<2 and OpenAI's retired completions API):

1. every generated sentence is broken into atomic facts by an LLM with a few-shot prompt;
2. for each fact, BM25 (``bm25s``) retrieves the ``top_k`` most relevant passages of the subject's
   reference article (the article split into passages of at most ``passage_words`` words), with the
   query "<entity> <fact>";
3. an LLM judges from those passages whether the fact is supported (True / False);
4. an entity's score is its supported share; FactScore is the mean over entities that produced at least
   one fact. Generations without facts are abstentions: counted, not scored. It is reported without
   and with FactScore's length penalty (each entity's share times ``exp(1 - gamma / n_facts)`` when
   ``n_facts < gamma``, gamma = 10), each with a seeded bootstrap 95 % CI over entities.

An LLM answer that does not parse is asked again once with a reminder of the format; if that fails too,
the fact is counted as *unparsable* (reported, left out of the supported share), never guessed.

**Offline fact precision** is a stand-in that needs no LLM and is never called FactScore. Its atomic
claims come from the spaCy parse of each generated sentence:

* ``entity``: a named entity that is not a date or number and is not part of the subject's own name;
  supported when its normalised token sequence occurs contiguously in the normalised reference;
* ``date_number``: a DATE / TIME / CARDINAL / ORDINAL / QUANTITY / MONEY / PERCENT entity, reduced to its
  key tokens (tokens with a digit, month names, number words); supported when every key token occurs
  in the reference as a whole token, so "1815" matches only "1815";
* ``predicate_noun``: a noun that is the attribute of a form of "be" whose subject is the biography's
  subject (a personal pronoun or words of its name), and nouns coordinated with it ("a poet and
  painter"); supported like an entity.

Normalisation: NFKC, lower case, thousands separators between digits removed, then tokens are the
maximal runs of letters and digits (punctuation and whitespace separate tokens). Claims repeated within
one generation count once. Aggregation is the same as FactScore's (without the length penalty).
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, TypeVar

import numpy as np

from lacy.io import read_jsonl, write_json
from lacy.llm import LLM, add_llm_arguments, llm_from_args
from lacy.stats import bootstrap_ci

log = logging.getLogger(__name__)
T = TypeVar("T")

GAMMA = 10
TOP_K = 5
PASSAGE_WORDS = 256
BOOTSTRAP_RESAMPLES = 1000


# ---------------------------------------------------------------------------------------------------------
# Inputs


#: The start of the answer that the biography prompt "Tell me a bio of <name>. <name> is" (§B) puts in the model's
#: mouth; the cascade records only what follows it.
ANSWER_START = "{name} is"


def scored_text(record: dict) -> str:
    """The text both metrics score: "<name> is" + the generation, as LMLM's evaluation (Zhao et al., 2025) scores
    its biographies. The generation alone starts mid-sentence ("an Australian actor, ...") and so loses the facts
    its first sentence states about the subject."""
    return ANSWER_START.format(name=record["entity"]) + record["generation"]


def load_generations(path: Path) -> list[dict]:
    """Cascade records ``{"entity", "prompt", "generation", ...}`` in file order; the prompt must end with
    "<entity> is" (:func:`scored_text` restores it)."""
    records = []
    for line_no, record in read_jsonl(path):
        if not all(isinstance(record.get(key), str) for key in ("entity", "prompt", "generation")):
            raise ValueError(f"{path}:{line_no}: expected string fields 'entity', 'prompt' and 'generation'")
        if not record["prompt"].endswith(ANSWER_START.format(name=record["entity"])):
            raise ValueError(f"{path}:{line_no}: the prompt does not end with "
                             f"{ANSWER_START.format(name=record['entity'])!r}: {record['prompt']!r}")
        records.append(record)
    return records


def _jsonl_files(paths: Iterable[Path]) -> Iterable[Path]:
    for path in map(Path, paths):
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.name.endswith((".jsonl", ".jsonl.gz")))
        elif path.exists():
            yield path
        else:
            raise FileNotFoundError(f"knowledge source {path} does not exist")


#: How FactScore's release joins an article's passages in its SQLite ``documents(title, text)`` table.
FACTSCORE_DB_SEPARATOR = "####SPECIAL####SEPARATOR####"


def _factscore_db_articles(path: Path, wanted: dict[str, str]) -> Iterable[dict]:
    """Articles of the wanted titles from FactScore's Wikipedia dump (``enwiki-20230401.db``)."""
    import sqlite3

    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        for title in wanted.values():
            row = db.execute("SELECT title, text FROM documents WHERE title = ?", (title,)).fetchone()
            if row:
                yield {"title": row[0], "text": " ".join(row[1].split(FACTSCORE_DB_SEPARATOR))}


def load_references(paths: Iterable[Path], entities: Iterable[str]) -> dict[str, str]:
    """The reference article of each entity, from JSONL files (or directories of them) of ``{"title", "text"}``,
    or from FactScore's SQLite Wikipedia dump (``*.db``, the paper's knowledge source, §5.2).

    Titles are matched exactly, else case-insensitively; entities without an article are absent.
    """
    wanted = {entity.casefold(): entity for entity in entities}
    exact: dict[str, str] = {}
    folded: dict[str, str] = {}
    for path in map(Path, paths):
        if path.suffix == ".db":
            for record in _factscore_db_articles(path, wanted):
                exact.setdefault(record["title"].casefold(), record["text"])
    for path in _jsonl_files(p for p in map(Path, paths) if p.suffix != ".db"):
        for _, record in read_jsonl(path):
            title = record.get("title")
            if isinstance(title, str) and title.casefold() in wanted:
                (exact if title in wanted.values() else folded).setdefault(title.casefold(), record["text"])
    return {entity: exact.get(key, folded.get(key)) for key, entity in wanted.items()
            if key in exact or key in folded}


# ---------------------------------------------------------------------------------------------------------
# Aggregation shared by both metrics


def length_penalty(n_facts: int, gamma: int = GAMMA) -> float:
    """FactScore's penalty for short generations: ``exp(1 - gamma / n_facts)`` when ``n_facts < gamma``."""
    return math.exp(1 - gamma / n_facts) if n_facts < gamma else 1.0


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def summarise(metric: str, per_entity: list[dict], n_resamples: int, seed: int, **extra) -> dict:
    """The scores JSON: mean supported share over scored entities, its CI, and the counts."""
    scores = [e["score"] for e in per_entity if e["score"] is not None]
    summary = {"metric": metric, "score": _mean(scores), "ci95": bootstrap_ci(scores, n_resamples, seed)}
    if metric == "factscore":
        penalised = [e["score_length_penalised"] for e in per_entity if e["score"] is not None]
        summary["score_length_penalised"] = _mean(penalised)
        summary["ci95_length_penalised"] = bootstrap_ci(penalised, n_resamples, seed)
    summary.update(
        n_entities=len(per_entity),
        n_scored=len(scores),
        n_facts=sum(e["n_facts"] for e in per_entity),
        n_supported=sum(e["n_supported"] for e in per_entity),
        n_abstained=sum(e["abstained"] for e in per_entity),
        n_unparsable=sum(e["n_unparsable"] for e in per_entity),
        n_no_reference=sum(e["no_reference"] for e in per_entity),
        **extra,
        per_entity=per_entity,
    )
    return summary


def entity_result(entity: str, facts: list[dict], *, no_reference: bool = False, **extra) -> dict:
    """One entity's counts and supported share; ``facts`` carry ``supported``: True, False or None (unparsable)."""
    judged = [f["supported"] for f in facts if f["supported"] is not None]
    return {"entity": entity, "n_facts": len(facts), "n_supported": sum(judged),
            "n_unparsable": len(facts) - len(judged), "abstained": not facts and not no_reference,
            "no_reference": no_reference, "score": _mean(judged), **extra, "facts": facts}


# ---------------------------------------------------------------------------------------------------------
# FactScore (Min et al., 2023)

FACTS_PROMPT = """Break the sentence into independent atomic facts: short statements that each convey a single \
piece of information and can be checked on their own. Write one fact per line, each starting with "- ". \
Do not replace names by pronouns. If the sentence states no fact, write "None".

Sentence: Marie Curie was a Polish-born physicist and chemist who won two Nobel Prizes.
Facts:
- Marie Curie was a physicist.
- Marie Curie was a chemist.
- Marie Curie was born in Poland.
- Marie Curie won two Nobel Prizes.

Sentence: In 1921 he moved to Paris, where he opened a small bookshop.
Facts:
- He moved to Paris.
- He moved to Paris in 1921.
- He opened a bookshop.
- The bookshop was in Paris.
- The bookshop was small.

Sentence: I am not sure who that is.
Facts:
None

Sentence: {sentence}
Facts:
"""
FACTS_REMINDER = '\nAnswer only with lines starting with "- ", or with the single word None.\n'

JUDGE_PROMPT = """Decide whether a statement about {entity} is supported by the reference passages below.

{passages}

Statement: {fact}
Is the statement supported by the reference passages? Answer True or False.
Answer:"""
JUDGE_REMINDER = "\nReply with exactly one word: True or False.\nAnswer:"

_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+(?P<fact>\S.*)$")
_NO_FACTS = {"none", "none.", "no facts", "no facts."}
_TRUE_FALSE = re.compile(r"\b(true|false)\b", re.IGNORECASE)


def parse_facts(answer: str) -> list[str] | None:
    """Bulleted or numbered lines as facts; "None" as no fact; anything else is unparsable (``None``)."""
    if answer.strip().lower() in _NO_FACTS:
        return []
    facts = [m["fact"].strip() for line in answer.splitlines() if (m := _BULLET.match(line))]
    return facts or None


def parse_judgement(answer: str) -> bool | None:
    """True / False when the answer contains exactly one of the two words (case-insensitive), else None."""
    found = {m.lower() for m in _TRUE_FALSE.findall(answer)}
    return found == {"true"} if len(found) == 1 else None


def ask(llm: LLM, prompt: str, reminder: str, parse: Callable[[str], T | None], max_tokens: int) -> T | None:
    """The parsed answer to ``prompt``; a malformed answer is asked again once with ``reminder`` appended."""
    for attempt in (prompt, prompt + reminder):
        parsed = parse(llm.complete(attempt, max_tokens=max_tokens))
        if parsed is not None:
            return parsed
    return None


def split_passages(text: str, passage_words: int = PASSAGE_WORDS) -> list[str]:
    """The article cut into consecutive passages of at most ``passage_words`` whitespace-separated words."""
    words = text.split()
    return [" ".join(words[i:i + passage_words]) for i in range(0, len(words), passage_words)]


class PassageRetriever:
    """BM25 over the passages of one entity's reference article (FactScore's retrieval step)."""

    def __init__(self, title: str, text: str, passage_words: int = PASSAGE_WORDS):
        import bm25s

        self.title = title
        self.passages = split_passages(text, passage_words)
        self._bm25s = bm25s
        self._index = bm25s.BM25()
        self._index.index(bm25s.tokenize(self.passages, stopwords="en", show_progress=False), show_progress=False)

    def retrieve(self, query: str, k: int) -> list[str]:
        """The ``k`` passages most relevant to ``query``, best first."""
        tokens = self._bm25s.tokenize([query], stopwords="en", show_progress=False)
        ids, _ = self._index.retrieve(tokens, k=min(k, len(self.passages)), show_progress=False)
        return [self.passages[i] for i in ids[0]]


def sentence_splitter() -> Callable[[str], list[str]]:
    """spaCy's rule-based sentencizer (no statistical model needed)."""
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return lambda text: [s.text.strip() for s in nlp(text).sents if s.text.strip()]


def atomic_facts(llm: LLM, sentences: list[str]) -> tuple[list[str], int]:
    """The atomic facts of a generation, sentence by sentence, and the number of unparsable sentences."""
    facts, unparsable = [], 0
    for sentence in sentences:
        parsed = ask(llm, FACTS_PROMPT.format(sentence=sentence), FACTS_REMINDER, parse_facts, max_tokens=512)
        if parsed is None:
            unparsable += 1
        else:
            facts.extend(parsed)
    return facts, unparsable


def judge_fact(llm: LLM, retriever: PassageRetriever, entity: str, fact: str, top_k: int) -> bool | None:
    """Whether the passages retrieved for ``fact`` support it (None: unparsable twice)."""
    passages = retriever.retrieve(f"{entity} {fact}", top_k)
    context = "\n\n".join(f"Title: {retriever.title}\nText: {p}" for p in passages)
    prompt = JUDGE_PROMPT.format(entity=entity, passages=context, fact=fact)
    return ask(llm, prompt, JUDGE_REMINDER, parse_judgement, max_tokens=8)


@dataclass
class FactScorer:
    """FactScore of generations with an extraction LLM and a judge LLM (they may be the same)."""

    extractor: LLM
    judge: LLM
    gamma: int = GAMMA
    top_k: int = TOP_K
    passage_words: int = PASSAGE_WORDS

    def score_entity(self, entity: str, sentences: list[str], reference: str | None) -> dict:
        if reference is None:
            return entity_result(entity, [], no_reference=True, n_unparsable_sentences=0,
                                 score_length_penalised=None)
        facts, unparsable_sentences = atomic_facts(self.extractor, sentences)
        retriever = PassageRetriever(entity, reference, self.passage_words) if facts else None
        judged = [{"fact": f, "supported": judge_fact(self.judge, retriever, entity, f, self.top_k)} for f in facts]
        result = entity_result(entity, judged, n_unparsable_sentences=unparsable_sentences,
                               score_length_penalised=None)
        if result["score"] is not None:
            result["score_length_penalised"] = result["score"] * length_penalty(len(facts), self.gamma)
        return result


def factscore(generations: list[dict], references: dict[str, str], scorer: FactScorer, *, workers: int = 4,
              n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """FactScore of ``generations`` against ``references`` (entity → article); entities run in ``workers`` threads."""
    split = sentence_splitter()
    jobs = [(g["entity"], split(scored_text(g)), references.get(g["entity"])) for g in generations]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        per_entity = list(pool.map(lambda job: scorer.score_entity(*job), jobs))
    return summarise("factscore", per_entity, n_resamples, seed, gamma=scorer.gamma,
                     extractor=scorer.extractor.name, judge=scorer.judge.name,
                     n_unparsable_sentences=sum(e["n_unparsable_sentences"] for e in per_entity))


# ---------------------------------------------------------------------------------------------------------
# Offline fact precision (no LLM)

NUMERIC_LABELS = {"DATE", "TIME", "CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT"}
MONTHS = {"january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december"}
BE_FORMS = {"is", "was", "are", "were", "be", "been", "being", "'s"}
SUBJECT_PRONOUNS = {"he", "she", "they", "it", "i"}
_THOUSANDS = re.compile(r"(?<=\d)[,.](?=\d{3}(?!\d))")
_TOKEN = re.compile(r"[^\W_]+")


def normalise(text: str) -> list[str]:
    """NFKC, lower case, thousands separators removed; tokens are maximal runs of letters and digits."""
    return _TOKEN.findall(_THOUSANDS.sub("", unicodedata.normalize("NFKC", text).lower()))


def contains_sequence(reference: list[str], claim: list[str]) -> bool:
    """Whether ``claim`` occurs as a contiguous token sequence of ``reference``."""
    return f" {' '.join(claim)} " in f" {' '.join(reference)} "


@dataclass(frozen=True)
class Claim:
    kind: str  # "entity", "date_number" or "predicate_noun"
    text: str
    tokens: tuple[str, ...]

    def supported_by(self, reference: list[str], reference_set: set[str]) -> bool:
        if self.kind == "date_number":
            return all(token in reference_set for token in self.tokens)
        return contains_sequence(reference, list(self.tokens))


def _key_number_tokens(span) -> tuple[str, ...]:
    """The tokens of a date/number span that must match exactly: digits, month names, number words."""
    keys = []
    for token in span:
        for norm in normalise(token.text):
            if any(c.isdigit() for c in norm) or norm in MONTHS or token.like_num:
                keys.append(norm)
    return tuple(keys)


def _is_about_subject(verb, subject_tokens: set[str]) -> bool:
    """Whether the clause of ``verb`` has the biography's subject (pronoun or name words) as its subject."""
    for child in verb.children:
        if child.dep_ in ("nsubj", "nsubjpass"):
            words = set(normalise(" ".join(t.text for t in child.subtree)))
            return bool(words) and words <= subject_tokens | SUBJECT_PRONOUNS
    return False


def _predicate_nouns(sentence, subject_tokens: set[str]) -> list:
    """Nouns attributed to the subject by a form of "be", and nouns coordinated with them."""
    nouns = [t for t in sentence if t.pos_ == "NOUN" and t.dep_ == "attr" and t.head.lower_ in BE_FORMS
             and _is_about_subject(t.head, subject_tokens)]
    found = list(nouns)
    while nouns:
        nouns = [c for n in nouns for c in n.children if c.dep_ == "conj" and c.pos_ == "NOUN"]
        found.extend(nouns)
    return found


def extract_claims(doc, subject: str) -> list[Claim]:
    """The atomic claims of a parsed generation about ``subject``, deduplicated (see the module docstring)."""
    subject_tokens = set(normalise(subject))
    claims: dict[tuple, Claim] = {}

    def add(kind: str, text: str, tokens: tuple[str, ...]) -> None:
        if tokens:
            claims.setdefault((kind, tokens), Claim(kind, text, tokens))

    for ent in doc.ents:
        if ent.label_ in NUMERIC_LABELS:
            add("date_number", ent.text, _key_number_tokens(ent))
        elif not set(normalise(ent.text)) <= subject_tokens:
            add("entity", ent.text, tuple(normalise(ent.text)))
    for sentence in doc.sents:
        for noun in _predicate_nouns(sentence, subject_tokens):
            if not noun.ent_type_:
                add("predicate_noun", noun.text, tuple(normalise(noun.text)))
    return list(claims.values())


def load_offline_nlp(preferred: str | None = None):
    """The spaCy English pipeline with tagger, parser and NER (the one §A.2.1 uses)."""
    from lacy.annotation.pipeline import load_spacy

    return load_spacy(preferred, facts=False)


def offline_fact_precision(generations: list[dict], references: dict[str, str], nlp, *,
                           n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """Offline fact precision: share of spaCy-extracted claims stated by the reference, averaged over entities."""
    per_entity = []
    docs = nlp.pipe(scored_text(g) for g in generations)
    for generation, doc in zip(generations, docs):
        entity = generation["entity"]
        reference = references.get(entity)
        if reference is None:
            per_entity.append(entity_result(entity, [], no_reference=True))
            continue
        reference_tokens = normalise(reference)
        reference_set = set(reference_tokens)
        facts = [{"fact": c.text, "kind": c.kind, "supported": c.supported_by(reference_tokens, reference_set)}
                 for c in extract_claims(doc, entity)]
        per_entity.append(entity_result(entity, facts))
    return summarise("offline_fact_precision", per_entity, n_resamples, seed)


# ---------------------------------------------------------------------------------------------------------
# Command line


def _read_inputs(args: argparse.Namespace) -> tuple[list[dict], dict[str, str]]:
    generations = load_generations(args.generations)
    references = load_references(args.knowledge, (g["entity"] for g in generations))
    missing = sorted({g["entity"] for g in generations} - references.keys())
    if missing:
        log.warning("%d entities have no reference article and are not scored: %s", len(missing),
                    ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
    return generations, references


def _log_summary(summary: dict) -> None:
    log.info("%s = %s (95%% CI %s) over %d of %d entities; %d facts, %d abstained, %d unparsable",
             summary["metric"], summary["score"], summary["ci95"], summary["n_scored"], summary["n_entities"],
             summary["n_facts"], summary["n_abstained"], summary["n_unparsable"])


def _run_llm(args: argparse.Namespace) -> None:
    judge = llm_from_args(args)
    extractor = llm_from_args(args, args.extract_model) if args.extract_model else judge
    generations, references = _read_inputs(args)
    scorer = FactScorer(extractor, judge, gamma=args.gamma, top_k=args.top_k, passage_words=args.passage_words)
    summary = factscore(generations, references, scorer, workers=args.workers, n_resamples=args.bootstrap,
                        seed=args.seed)
    write_json(args.out, summary)
    _log_summary(summary)


def _run_offline(args: argparse.Namespace) -> None:
    nlp = load_offline_nlp(args.spacy_model)
    generations, references = _read_inputs(args)
    summary = offline_fact_precision(generations, references, nlp, n_resamples=args.bootstrap, seed=args.seed)
    write_json(args.out, summary)
    _log_summary(summary)


def _add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generations", type=Path, required=True,
                        help='JSONL of {"entity", "generation", ...} records')
    parser.add_argument("--knowledge", type=Path, nargs="+", required=True,
                        help='JSONL files or directories of them with {"title", "text"} reference articles')
    parser.add_argument("--out", type=Path, required=True, help="scores JSON to write")
    parser.add_argument("--bootstrap", type=int, default=BOOTSTRAP_RESAMPLES, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``lacy factscore {llm,offline}``."""
    command = sub.add_parser("factscore", help="factual precision of biographies (§5.2, §B)")
    metrics = command.add_subparsers(dest="factscore_command", required=True)

    llm = metrics.add_parser("llm", help="FactScore (Min et al., 2023) with an LLM",
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_common_arguments(llm)
    add_llm_arguments(llm, backend="openai", llm="gpt-3.5-turbo", aliases=("--model",),
                      llm_help="judge model (and extractor by default); --model is an alias")
    llm.add_argument("--extract-model", default=None, help="atomic-fact model, if not the judge model")
    llm.add_argument("--gamma", type=int, default=GAMMA, help="length-penalty constant")
    llm.add_argument("--top-k", type=int, default=TOP_K, help="passages retrieved per fact")
    llm.add_argument("--passage-words", type=int, default=PASSAGE_WORDS, help="words per reference passage")
    llm.add_argument("--workers", type=int, default=4, help="entities scored concurrently (threads)")
    llm.set_defaults(func=_run_llm)

    offline = metrics.add_parser("offline", help="offline fact precision: spaCy claims, no LLM",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_common_arguments(offline)
    offline.add_argument("--spacy-model", default=None, help="spaCy pipeline (default: en_core_web_sm)")
    offline.set_defaults(func=_run_offline)
