"""A small *real* annotated corpus for the tests that check training and validation semantics.

Real sentences go through the project's own stages: the SentencePiece tokenizer (trained here on the embedded
Wikipedia sample), ``lacy annotate shard`` (spaCy ``en_core_web_sm`` + the §A.2.1 fact rules, token labels by
inheritance) and ``lacy llm-judge labels`` (§A.2.2: delegated words turned into per-token CALL labels). The
output has the layout the workflow writes, ``annotation/{train,validation}/part-00000.*`` and
``llm_judge/{train,validation}/part-00000.calls.npy``, so batches built from it go through the same code path
training and validation use (``lacy.batches.TokenWindows``).

The tests derive what a batch *should* hold straight from these raw arrays (:meth:`AnnotatedCorpus.targets`),
not from ``lacy.batches``, so a misalignment there shows up as a disagreement.
"""

from __future__ import annotations

import gzip
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lacy import FACT
from lacy.annotation.shards import annotate_shard
from lacy.llm_judge import write_shard_labels
from lacy.tokenizer import LacyTokenizer, train_sentencepiece

#: (text, words the LLM judge delegates in it). The judge's words are deliberately not spaCy's facts: it
#: delegates dates and numbers and some predicates, and leaves the first mention of most names to the model,
#: so a method that reads the wrong labels calls on other positions.
DOCUMENTS = [
    ("Wolfgang Amadeus Mozart was a composer. Mozart was born in Salzburg in 1756.", ["1756", "composer"]),
    ("Alan Turing was an English mathematician. Turing worked at Bletchley Park during the war.",
     ["mathematician", "Bletchley"]),
    ("Entre Campos station is part of the Yellow line of the Lisbon Metro. It opened in 1959.",
     ["Yellow", "1959"]),
    ("Marie Curie, a physicist, discovered radium. She studied physics in Paris and died in 1934.",
     ["radium", "1934"]),
    ("The river flows north through the valley. Its water is cold and clear in the spring.", ["north"]),
    ("Errol Flynn was an Australian actor. He was born in Hobart in 1909 and appeared in 60 films.",
     ["Australian", "1909", "60"]),
    ("The committee of the university met in the old hall. They agreed on a new plan for the library.",
     ["hall"]),
    ("Johann Sebastian Bach wrote many cantatas. Bach lived in Leipzig for 27 years.", ["cantatas", "27"]),
]
CONTEXT = 16
SPLITS = ("train", "validation")


def judge_spans(text: str, words: list[str]) -> list[list[int]]:
    spans = []
    for word in words:
        start = text.index(word)
        spans.append([start, start + len(word)])
    return spans


@dataclass
class AnnotatedCorpus:
    """Directories as the workflow lays them out, and the raw arrays of the (identical) shard of each split."""

    annotation: Path
    llm_judge: Path
    tokenizer_dir: Path
    tokens: np.ndarray  # token ids, documents back to back
    labels: np.ndarray  # §A.2.1 label per token
    docs: np.ndarray  # document offsets, n_docs + 1
    calls: np.ndarray  # §A.2.2 LLM-judge CALL label per token

    @property
    def tokenizer(self) -> LacyTokenizer:
        return LacyTokenizer.load(self.tokenizer_dir)

    @property
    def call_id(self) -> int:
        return self.tokenizer.call_id

    def find_window(self, x: np.ndarray, y_last: int) -> int:
        """The start of the one window of the shard whose inputs are ``x`` and whose last target is ``y_last``."""
        row = np.append(np.asarray(x), y_last)
        n = len(row)
        starts = [a for a in range(len(self.tokens) - n + 1) if np.array_equal(self.tokens[a:a + n], row)]
        assert len(starts) == 1, f"window found at {starts}: the fixture's text must make windows unique"
        return starts[0]

    def targets(self, start: int, context: int = CONTEXT) -> dict[str, np.ndarray]:
        """What the window starting at ``start`` must hold, from the raw arrays: target ids x_{i+1}, their spaCy
        fact and grammatical labels, their LLM-judge call labels, and whether a target exists (a document's first
        token has no context in its own document, §5.1 packing)."""
        at = np.arange(start + 1, start + context + 1)
        return {"y": self.tokens[at].astype(np.int64), "fact": self.labels[at] == FACT,
                "judge": self.calls[at] > 0, "valid": ~np.isin(at, self.docs[:-1]), "labels": self.labels[at]}


def build_annotated_corpus(root: Path, wiki_records: list[dict]) -> AnnotatedCorpus:
    """Tokenizer, annotated shards and LLM-judge labels for :data:`DOCUMENTS` under ``root`` (a few seconds)."""
    tokenizer_dir = train_sentencepiece((r["text"] for r in wiki_records[:600]), root / "tokenizer", vocab_size=1000,
                                        seed=0)
    corpus = root / "corpus" / "part-00000.jsonl.gz"
    corpus.parent.mkdir(parents=True)
    with gzip.open(corpus, "wt") as f:
        for k, (text, words) in enumerate(DOCUMENTS):
            f.write(json.dumps({"id": f"doc{k}", "text": text, "llm_judge_spans": judge_spans(text, words)}) + "\n")
    first = root / "annotation" / SPLITS[0] / "part-00000"
    annotate_shard(corpus, tokenizer_dir, first)
    for split in SPLITS:
        prefix = root / "annotation" / split / "part-00000"
        if split != SPLITS[0]:
            prefix.parent.mkdir(parents=True)
            for suffix in (".tokens.npy", ".labels.npy", ".docs.npy", ".json"):
                shutil.copyfile(f"{first}{suffix}", f"{prefix}{suffix}")
        judge = root / "llm_judge" / split
        write_shard_labels(corpus, tokenizer_dir, judge / "part-00000.calls.npy", judge / "part-00000.json",
                           tokens=Path(f"{prefix}.tokens.npy"))
    return AnnotatedCorpus(annotation=root / "annotation", llm_judge=root / "llm_judge", tokenizer_dir=tokenizer_dir,
                           tokens=np.load(f"{first}.tokens.npy"), labels=np.load(f"{first}.labels.npy"),
                           docs=np.load(f"{first}.docs.npy"),
                           calls=np.load(root / "llm_judge" / SPLITS[0] / "part-00000.calls.npy"))
