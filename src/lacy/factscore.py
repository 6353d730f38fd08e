"""Factual precision of generated biographies (§5.2, §B): FactScore and the offline fact precision.

**What is scored.** The cascade prompts "Tell me a bio of <name>. <name> is" (§B) and records only the continuation,
which starts mid-sentence ("an Australian actor, ..."). Both metrics score "<name> is" + the generation
(:func:`scored_text`), as LMLM's evaluation (Zhao et al., 2025) does, so that the first sentence's facts (nationality,
occupation) are about the subject.

**FactScore** (Min et al., 2023) follows the original code (shmsw25/FActScore, ``factscorer.py``,
``atomic_facts.py``, ``retrieval.py``) wherever the paper is silent; its ``factscore`` package itself pins torch<2
and OpenAI's retired completions API, so the protocol is re-implemented here:

1. *Sentences.* Each line of the text is split into sentences (spaCy's rule-based sentencizer; FActScore: NLTK's
   punkt), then, as FActScore's splitter fix does, a sentence of at most one word, or one starting with a lower-case
   letter, is joined to the one before (a one-word first sentence takes the next one).
2. *Atomic facts.* Each sentence is sent to the extractor with FActScore's own demonstrations (``demons.json`` of
   its release, loaded at run time): the first 7 and the one BM25 (``rank_bm25``, whitespace tokens) finds
   closest to the sentence, each as "Please breakdown the following sentence into independent facts: <sentence>"
   followed by "- <fact>" lines, then the sentence itself. The facts are the answer's "- " items, the last given a
   full stop. Sentences starting "Sure", "Please" or "This sentence does not contain any facts" (or, first,
   "Here are") give none. A fact ending in "born.", "known." etc. that another fact of the sentence contains is
   dropped, and repeated facts of a sentence count once (FActScore's post-processing; its repair of dates and
   numbers through spaCy entities is not mirrored).
3. *Retrieval.* The subject's passages in the knowledge source as stored: the rows of FActScore's Wikipedia
   database (``enwiki-20230401.db``, about 256 RoBERTa tokens each), or for a JSONL article its text cut into
   ``PASSAGE_WORDS``-word passages. The query is "<name> <fact>", the top ``TOP_K`` = 5 passages are kept:
   dense, with a sentence-transformers encoder over "<title> <passage>" and the inner product (FActScore:
   GTR-T5-large), or BM25 (``rank_bm25`` over whitespace tokens, FActScore's alternative).
4. *Judgement.* The judge gets FActScore's prompt ("Answer the question about <name> based on the given
   context." + the passages as "Title: ... Text: ...", best last + "Input: <fact> True or False?\nOutput:"). Every
   fact gets FActScore's verdict (:func:`parse_verdict`); the verdicts FActScore reaches by a tie rule (both
   "true" and "false" in the answer, or neither) are counted as ``ambiguous``.
5. *Score.* An entity's supported share of its facts, times FActScore's length penalty
   ``exp(1 - gamma / n_facts)`` when ``n_facts < gamma`` (gamma = 10), averaged over the entities with at least one
   fact: ``score`` (what FActScore reports), with ``score_without_length_penalty`` (FActScore's ``init_score``)
   beside it, each with a seeded bootstrap 95 % CI over entities. Generations without facts are abstentions:
   counted (``respond_ratio``), not scored.

**Offline fact precision** is a stand-in that needs no LLM and is never called FactScore. Its atomic
claims come from the spaCy parse of each scored text:

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
one generation count once. Aggregation is FactScore's, without the length penalty.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import string
import threading
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import spacy
from rank_bm25 import BM25Okapi
from sentence_transformers import SentenceTransformer

from lacy.annotation.pipeline import load_spacy
from lacy.defaults import keyword_defaults
from lacy.distributed import default_device
from lacy.io import read_jsonl, write_json
from lacy.knowledge import PASSAGE_WORDS, Article, clean_passage, load_articles
from lacy.llm import LLM, add_llm_arguments, llm_spec_from_args, make_llm
from lacy.stats import RESAMPLES, bootstrap_ci

log = logging.getLogger(__name__)

GAMMA = 10
TOP_K = 5


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


# ---------------------------------------------------------------------------------------------------------
# Aggregation shared by both metrics


def length_penalty(n_facts: int, gamma: int = GAMMA) -> float:
    """FactScore's penalty for short generations: ``exp(1 - gamma / n_facts)`` when ``n_facts < gamma``."""
    return math.exp(1 - gamma / n_facts) if n_facts < gamma else 1.0


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def entity_result(entity: str, facts: list[dict], *, no_reference: bool = False, **extra) -> dict:
    """One entity's counts and supported share; ``facts`` carry ``supported`` (True or False)."""
    return {"entity": entity, "n_facts": len(facts), "n_supported": sum(f["supported"] for f in facts),
            "abstained": not facts and not no_reference, "no_reference": no_reference,
            "score": _mean([f["supported"] for f in facts]), **extra, "facts": facts}


def summarise(metric: str, per_entity: list[dict], n_resamples: int, seed: int, **extra) -> dict:
    """The scores JSON: mean per-entity score over the entities with facts, its CI, and the counts."""
    scored = [e for e in per_entity if e["score"] is not None]
    answered = [e for e in per_entity if not e["no_reference"]]
    summary = {"metric": metric}
    if metric == "factscore":
        penalised = [e["score_length_penalised"] for e in scored]
        shares = [e["score"] for e in scored]
        summary.update(score=_mean(penalised), ci95=bootstrap_ci(penalised, n_resamples, seed),
                       score_without_length_penalty=_mean(shares),
                       ci95_without_length_penalty=bootstrap_ci(shares, n_resamples, seed),
                       n_ambiguous=sum(e["n_ambiguous"] for e in per_entity))
    else:
        shares = [e["score"] for e in scored]
        summary.update(score=_mean(shares), ci95=bootstrap_ci(shares, n_resamples, seed))
    summary.update(
        n_entities=len(per_entity),
        n_scored=len(scored),
        n_facts=sum(e["n_facts"] for e in per_entity),
        n_supported=sum(e["n_supported"] for e in per_entity),
        n_abstained=sum(e["abstained"] for e in per_entity),
        n_no_reference=len(per_entity) - len(answered),
        respond_ratio=len(scored) / len(answered) if answered else None,
        facts_per_response=_mean([e["n_facts"] for e in scored]),
        **extra,
        per_entity=per_entity,
    )
    return summary


# ---------------------------------------------------------------------------------------------------------
# FactScore (Min et al., 2023): sentences and atomic facts (FActScore's atomic_facts.py)

#: FActScore's biography setting: the first 7 demonstrations always, plus the 1 closest to the sentence.
FIXED_DEMOS = 7
MATCHED_DEMOS = 1
#: FActScore's ChatGPT calls ask for up to 2,048 tokens (``openai_lm.py``), its extraction and its judge alike.
MAX_ANSWER_TOKENS = 2048
DEMO_INSTRUCTION = "Please breakdown the following sentence into independent facts: {sentence}\n"
#: Sentence starts FActScore takes no facts from (biographies).
NO_FACT_STARTS = ("Sure", "Please", "This sentence does not contain any facts")
#: A fact ending so is dropped when another fact of its sentence contains it (FActScore's post-processing).
GENERIC_ENDINGS = ("born.", " appointed.", " characterized.", " described.", " known.", " member.", " advocate.",
                   "served.", "elected.")
KEPT_ENDINGS = ("founding member.",)


class Demonstrations:
    """FActScore's atomic-fact demonstrations (``demos/demons.json`` of its release: sentence -> facts) and the
    few-shot prompt built from them."""

    def __init__(self, demos: dict[str, list[str]]):
        if len(demos) < FIXED_DEMOS + MATCHED_DEMOS:
            raise ValueError(f"{len(demos)} demonstrations; FActScore's prompt needs at least "
                             f"{FIXED_DEMOS + MATCHED_DEMOS}")
        self.demos = demos
        self.sentences = list(demos)
        self._bm25 = BM25Okapi([sentence.split(" ") for sentence in self.sentences])

    @classmethod
    def load(cls, path: Path) -> "Demonstrations":
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def _block(self, sentence: str, facts: list[str]) -> str:
        return DEMO_INSTRUCTION.format(sentence=sentence) + "".join(f"- {fact}\n" for fact in facts) + "\n"

    def prompt(self, sentence: str) -> str:
        """The first ``FIXED_DEMOS`` demonstrations, the one BM25 ranks closest to ``sentence``, then ``sentence``
        (stripped: FActScore never sends trailing whitespace)."""
        matched = self._bm25.get_top_n(sentence.split(" "), self.sentences, MATCHED_DEMOS)
        shots = self.sentences[:FIXED_DEMOS] + matched
        prompt = "".join(self._block(s, self.demos[s]) for s in shots) + DEMO_INSTRUCTION.format(sentence=sentence)
        return prompt.strip()


def parse_facts(answer: str) -> list[str]:
    """FActScore's reading of an extraction answer: the items after each "- ", stripped, the last ending in "."."""
    facts = [item.strip() for item in answer.split("- ")[1:]]
    facts = [fact for fact in facts if fact]
    if facts and not facts[-1].endswith("."):
        facts[-1] += "."
    return facts


def drop_redundant_facts(facts: list[str]) -> list[str]:
    """FActScore's post-processing of one sentence's facts: a fact with a generic ending ("born.", "known.", ...)
    contained in another fact is dropped, and repeats count once."""
    kept: list[str] = []
    for i, fact in enumerate(facts):
        if fact.endswith(GENERIC_ENDINGS) and not fact.endswith(KEPT_ENDINGS) and any(
                fact[:-1] in other for j, other in enumerate(facts) if j != i):
            continue
        if fact not in kept:
            kept.append(fact)
    return kept


def join_fragments(sentences: list[str]) -> list[str]:
    """FActScore's sentence-splitter fix: a sentence of at most one word, or starting with a lower-case letter,
    joins the one before; a one-word first sentence takes the next one."""
    joined: list[str] = []
    take_next = False
    for sentence in sentences:
        fragment = len(sentence.split()) <= 1 or (sentence[0].isalpha() and not sentence[0].isupper())
        if joined and (take_next or fragment):
            joined[-1] += " " + sentence
            take_next = False
        else:
            joined.append(sentence)
            take_next = len(sentence.split()) <= 1
    return joined


class SentenceSplitter:
    """Sentences of a text, line by line: spaCy's rule-based sentencizer, then :func:`join_fragments`."""

    def __init__(self):
        self._nlp = spacy.blank("en")
        self._nlp.add_pipe("sentencizer")

    def __call__(self, text: str) -> list[str]:
        sentences = []
        for line in filter(None, (line.strip() for line in text.split("\n"))):
            sentences += join_fragments([s.text.strip() for s in self._nlp(line).sents if s.text.strip()])
        return sentences


def takes_no_facts(sentence: str, index: int) -> bool:
    """Sentences FActScore gives no facts: chat filler, and a first sentence announcing a list."""
    return sentence.startswith(NO_FACT_STARTS) or (index == 0 and sentence.startswith("Here are"))


def atomic_facts(llm: LLM, demos: Demonstrations, sentences: list[str]) -> list[str]:
    """The atomic facts of a generation's sentences, sentence by sentence (FActScore's ``AtomicFactGenerator``)."""
    facts = []
    for index, sentence in enumerate(sentences):
        if not takes_no_facts(sentence, index):
            answer = llm.complete(demos.prompt(sentence), max_tokens=MAX_ANSWER_TOKENS)
            facts += drop_redundant_facts(parse_facts(answer))
    return facts


# ---------------------------------------------------------------------------------------------------------
# FactScore: retrieval (FActScore's retrieval.py)


class PassageIndex(Protocol):
    def top(self, query: str, k: int) -> list[str]: ...


class Bm25Index:
    """FActScore's BM25 retrieval: Okapi BM25 (``rank_bm25``) over the whitespace tokens of an article's passages."""

    def __init__(self, article: Article):
        self.article = article
        self._bm25 = BM25Okapi([clean_passage(p).split() for p in article.passages])

    def top(self, query: str, k: int) -> list[str]:
        """The ``k`` passages scoring highest for ``query``, best first."""
        scores = self._bm25.get_scores(query.split())
        return [self.article.passages[i] for i in np.argsort(-scores, kind="stable")[:k]]


class DenseEncoder:
    """A sentence-transformers encoder shared by all entities' indexes (FActScore: GTR-T5-large); one thread
    encodes at a time."""

    def __init__(self, model: str, device: str | None = None):
        self.name = model
        self._model = SentenceTransformer(model, device=device or str(default_device()))
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return self._model.encode(texts, convert_to_numpy=True, show_progress_bar=False)


class DenseIndex:
    """FActScore's dense retrieval: passages encoded as "<title> <passage>", ranked by inner product with the query."""

    def __init__(self, article: Article, encoder: DenseEncoder):
        self.article, self.encoder = article, encoder
        self._vectors = encoder.encode([f"{article.title} {clean_passage(p)}" for p in article.passages])

    def top(self, query: str, k: int) -> list[str]:
        scores = self._vectors @ self.encoder.encode([query])[0]
        return [self.article.passages[i] for i in np.argsort(-scores, kind="stable")[:k]]


#: ``--retrieval`` names: FActScore's GTR (``sentence-transformers/gtr-t5-large``) and BM25; anything else is a
#: sentence-transformers model name or directory.
GTR = "gtr-t5-large"
BM25 = "bm25"


def passage_indexer(retrieval: str) -> Callable[[Article], PassageIndex]:
    """A function building an article's passage index for ``retrieval`` (``bm25``, ``gtr-t5-large`` or a
    sentence-transformers model); a dense encoder is loaded once, here."""
    if retrieval == BM25:
        return Bm25Index
    encoder = DenseEncoder(f"sentence-transformers/{GTR}" if retrieval == GTR else retrieval)
    return lambda article: DenseIndex(article, encoder)


# ---------------------------------------------------------------------------------------------------------
# FactScore: judgement and score (FActScore's factscorer.py)

#: Words that make an answer without "true" / "false" a "not supported" in FActScore.
UNSUPPORTED_WORDS = ("not", "cannot", "unknown", "information")


def judge_prompt(topic: str, title: str, passages: list[str], fact: str) -> str:
    """FActScore's retrieval-augmented prompt: the passages, best last, then "Input: <fact> True or False?"."""
    context = "".join(f"Title: {title}\nText: {clean_passage(p)}\n\n" for p in reversed(passages))
    definition = f"Answer the question about {topic} based on the given context.\n\n" + context.strip()
    if definition[-1] not in string.punctuation:
        definition += "."
    return f"{definition.strip()}\n\nInput: {fact.strip()} True or False?\nOutput:"


def parse_verdict(answer: str) -> tuple[bool, bool]:
    """FActScore's verdict on a judge answer, and whether it came from a tie rule (``ambiguous``).

    Lower-cased, an answer containing "true" but not "false" is supported, one containing "false" but not "true" is
    not (substrings, as FActScore tests them). With both, the one whose first occurrence comes later wins; with
    neither, the fact is supported unless the answer has one of the words "not", "cannot", "unknown", "information".
    """
    text = answer.lower()
    has_true, has_false = "true" in text, "false" in text
    if has_true != has_false:
        return has_true, False
    if has_true:
        return text.index("true") > text.index("false"), True
    words = text.translate(str.maketrans("", "", string.punctuation)).split()
    return not any(word in words for word in UNSUPPORTED_WORDS), True


def judge_fact(llm: LLM, index: PassageIndex, entity: str, title: str, fact: str, top_k: int) -> dict:
    """One fact's verdict from the judge on the passages retrieved for "<entity> <fact>"."""
    passages = index.top(f"{entity} {fact.strip()}", top_k)
    supported, ambiguous = parse_verdict(llm.complete(judge_prompt(entity, title, passages, fact),
                                                      max_tokens=MAX_ANSWER_TOKENS))
    return {"fact": fact, "supported": supported, "ambiguous": ambiguous}


@dataclass
class FactScorer:
    """FactScore with an extraction LLM and a judge LLM (they may be the same), FActScore's demonstrations and a
    passage indexer (:func:`passage_indexer`)."""

    extractor: LLM
    judge: LLM
    demos: Demonstrations
    indexer: Callable[[Article], PassageIndex]
    gamma: int = GAMMA
    top_k: int = TOP_K

    def score_entity(self, entity: str, sentences: list[str], article: Article | None) -> dict:
        if article is None:
            return entity_result(entity, [], no_reference=True, n_ambiguous=0, score_length_penalised=None)
        facts = atomic_facts(self.extractor, self.demos, sentences)
        index = self.indexer(article) if facts else None
        judged = [judge_fact(self.judge, index, entity, article.title, fact, self.top_k) for fact in facts]
        result = entity_result(entity, judged, n_ambiguous=sum(f["ambiguous"] for f in judged),
                               score_length_penalised=None)
        if facts:
            result["score_length_penalised"] = result["score"] * length_penalty(len(facts), self.gamma)
        return result


def factscore(generations: list[dict], references: dict[str, Article], scorer: FactScorer, *, workers: int = 4,
              n_resamples: int = RESAMPLES, seed: int = 0, **extra) -> dict:
    """FactScore of ``generations``' scored texts against ``references``; entities run in ``workers`` threads."""
    split = SentenceSplitter()
    jobs = [(g["entity"], split(scored_text(g)), references.get(g["entity"])) for g in generations]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        per_entity = list(pool.map(lambda job: scorer.score_entity(*job), jobs))
    return summarise("factscore", per_entity, n_resamples, seed, gamma=scorer.gamma,
                     extractor=scorer.extractor.name, judge=scorer.judge.name, **extra)


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
    return load_spacy(preferred, facts=False)


def offline_fact_precision(generations: list[dict], references: dict[str, Article], nlp, *,
                           n_resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """Offline fact precision: share of spaCy-extracted claims stated by the reference, averaged over entities."""
    per_entity = []
    docs = nlp.pipe(scored_text(g) for g in generations)
    for generation, doc in zip(generations, docs):
        entity = generation["entity"]
        reference = references.get(entity)
        if reference is None:
            per_entity.append(entity_result(entity, [], no_reference=True))
            continue
        reference_tokens = normalise(reference.text)
        reference_set = set(reference_tokens)
        facts = [{"fact": c.text, "kind": c.kind, "supported": c.supported_by(reference_tokens, reference_set)}
                 for c in extract_claims(doc, entity)]
        per_entity.append(entity_result(entity, facts))
    return summarise("offline_fact_precision", per_entity, n_resamples, seed)


# ---------------------------------------------------------------------------------------------------------
# Command line


def _read_inputs(generations_path: Path, knowledge: list[Path],
                 passage_words: int) -> tuple[list[dict], dict[str, Article]]:
    generations = load_generations(generations_path)
    references = load_articles(knowledge, (g["entity"] for g in generations), passage_words)
    missing = sorted({g["entity"] for g in generations} - references.keys())
    if missing:
        log.warning("%d entities have no reference article and are not scored: %s", len(missing),
                    ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
    return generations, references


def _log_summary(summary: dict) -> None:
    log.info("%s = %s (95%% CI %s) over %d of %d entities; %d facts, %d abstained", summary["metric"],
             summary["score"], summary["ci95"], summary["n_scored"], summary["n_entities"], summary["n_facts"],
             summary["n_abstained"])


#: Where FActScore's release keeps its demonstrations, relative to its Wikipedia database.
RELEASE_DEMOS = Path("demos") / "demons.json"


def demos_path(demos: Path | str | None, knowledge: list[Path]) -> Path:
    """``demos``, else ``demos/demons.json`` beside the first FactScore database among ``knowledge``."""
    if demos is not None:
        return Path(demos)
    databases = [path for path in knowledge if path.suffix == ".db"]
    if not databases:
        raise SystemExit("--demos is needed when --knowledge holds no FactScore database (*.db) to find "
                         f"{RELEASE_DEMOS} beside")
    return databases[0].parent / RELEASE_DEMOS


#: The fact-precision scorers: FactScore with an LLM, and the offline fact precision.
SCORERS = ("llm", "offline")


def score_generations(scorer: str, generations: Path, knowledge: list[Path], out: Path, *, llm: dict | None = None,
                      cache_dir: Path | None = None, retrieval: str = GTR, demos: Path | str | None = None,
                      extract_model: str | None = None, gamma: int = GAMMA, top_k: int = TOP_K, workers: int = 4,
                      spacy_model: str | None = None, passage_words: int = PASSAGE_WORDS,
                      n_resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """The factual precision of the biographies in ``generations`` (§5.2, §B) against the subjects' articles in
    ``knowledge`` (:func:`lacy.knowledge.load_articles`: FactScore's Wikipedia database, JSONL files, a corpus
    directory or its ``corpus.json``), written to ``out`` and returned (module docstring).

    ``scorer`` "llm" is FactScore: ``llm`` the judge, an LLM spec ``{backend, model, base_url, api_key_env}`` as
    :func:`lacy.llm.make_llm` takes it (its key is checked before any input is read), also the extractor unless
    ``extract_model`` names another model of its backend, with answers cached in ``cache_dir``; passages by
    ``retrieval`` (:func:`passage_indexer`), ``top_k`` per fact; FActScore's demonstrations from ``demos`` (None:
    beside the ``*.db`` of ``knowledge``, :func:`demos_path`); length penalty ``gamma``; ``workers`` entities at a
    time. ``scorer`` "offline" is the offline fact precision with the spaCy pipeline ``spacy_model`` (None:
    en_core_web_sm); it uses no LLM. A JSONL article is cut into ``passage_words``-word passages; the CI is a
    ``seed``-ed bootstrap of ``n_resamples`` resamples."""
    if scorer == "llm":
        if llm is None or cache_dir is None:
            raise ValueError("FactScore needs its LLM and a cache directory for its answers")
        judge = make_llm(cache_dir=cache_dir, **llm)
        extractor = make_llm(cache_dir=cache_dir, **(llm | {"model": extract_model})) if extract_model else judge
        demonstrations = Demonstrations.load(demos_path(demos, knowledge))
        records, references = _read_inputs(generations, knowledge, passage_words)
        fact_scorer = FactScorer(extractor, judge, demonstrations, passage_indexer(retrieval), gamma=gamma,
                                 top_k=top_k)
        summary = factscore(records, references, fact_scorer, workers=workers, n_resamples=n_resamples, seed=seed,
                            retrieval=retrieval)
    elif scorer == "offline":
        nlp = load_offline_nlp(spacy_model)
        records, references = _read_inputs(generations, knowledge, passage_words)
        summary = offline_fact_precision(records, references, nlp, n_resamples=n_resamples, seed=seed)
    else:
        raise ValueError(f"unknown fact-precision scorer {scorer!r}; choose one of {', '.join(SCORERS)}")
    write_json(out, summary)
    _log_summary(summary)
    if scorer == "llm":
        log.info("without the length penalty: %s; %d of %d verdicts by FActScore's tie rules",
                 summary["score_without_length_penalty"], summary["n_ambiguous"], summary["n_facts"])
    return summary


#: :func:`score_generations`' own values of the options ``lacy factscore`` leaves out.
DEFAULTS = keyword_defaults(score_generations)


def _run_llm(args: argparse.Namespace) -> None:
    score_generations("llm", args.generations, args.knowledge, args.out, llm=llm_spec_from_args(args),
                      cache_dir=args.cache_dir, retrieval=args.retrieval, demos=args.demos,
                      extract_model=args.extract_model, gamma=args.gamma, top_k=args.top_k, workers=args.workers,
                      passage_words=args.passage_words, n_resamples=args.bootstrap, seed=args.seed)


def _run_offline(args: argparse.Namespace) -> None:
    score_generations("offline", args.generations, args.knowledge, args.out, spacy_model=args.spacy_model,
                      passage_words=args.passage_words, n_resamples=args.bootstrap, seed=args.seed)


def _add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generations", type=Path, required=True,
                        help='cascade JSONL of {"entity", "prompt", "generation", ...} records')
    parser.add_argument("--knowledge", type=Path, nargs="+", required=True,
                        help="FactScore's Wikipedia database (*.db), or JSONL files or directories of them (a corpus "
                             'directory, or its corpus.json) with {"title", "text"} reference articles')
    parser.add_argument("--passage-words", type=int, default=DEFAULTS["passage_words"],
                        help="words per passage of a JSONL article (a database keeps its own passages)")
    parser.add_argument("--out", type=Path, required=True, help="scores JSON to write")
    parser.add_argument("--bootstrap", type=int, default=DEFAULTS["n_resamples"], help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="bootstrap seed")


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
    llm.add_argument("--gamma", type=int, default=DEFAULTS["gamma"], help="length-penalty constant")
    llm.add_argument("--top-k", type=int, default=DEFAULTS["top_k"], help="passages retrieved per fact")
    llm.add_argument("--retrieval", default=DEFAULTS["retrieval"],
                     help=f"passage retrieval: {GTR} (FActScore's, sentence-transformers/{GTR}), {BM25}, or a "
                          "sentence-transformers model name or directory")
    llm.add_argument("--demos", type=Path, default=None,
                     help=f"FActScore's demonstrations (default: {RELEASE_DEMOS} beside the *.db knowledge source)")
    llm.add_argument("--workers", type=int, default=DEFAULTS["workers"], help="entities scored concurrently (threads)")
    llm.set_defaults(func=_run_llm)

    offline = metrics.add_parser("offline", help="offline fact precision: spaCy claims, no LLM",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_common_arguments(offline)
    offline.add_argument("--spacy-model", default=None, help="spaCy pipeline (default: en_core_web_sm)")
    offline.set_defaults(func=_run_offline)
