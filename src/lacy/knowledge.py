"""The knowledge source: each subject's reference article (§5.2, §A.5, §B).

FactScore checks a biography against "the true Wikipedia page" of its subject (§B), and the RAG cascade partner of
§A.5 reads the same page as background. Both get it here, from one of:

* FactScore's SQLite Wikipedia dump (``enwiki-20230401.db``, the paper's knowledge source): the ``documents(title,
  text)`` row of the title, its passages as the release stores them (joined by ``FACTSCORE_DB_SEPARATOR``, about
  256 RoBERTa tokens each, the ``<s>`` / ``</s>`` markers removed from the text: :func:`clean_passage`);
* JSONL files (``.jsonl`` or ``.jsonl.gz``), or directories searched for them, of ``{"title", "text"}`` records,
  such as our corpus directory (the embedded default's lead sections: ``results/corpus``), which its manifest
  ``corpus.json`` (``lacy.corpus``, the file the workflow declares) also stands for; the text is cut into
  ``PASSAGE_WORDS``-word passages.

Titles are matched exactly, else case-insensitively; a subject without an article is absent from the result.
Kept apart from the metric (``lacy.factscore``) so that a cascade partner reads articles without importing it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from lacy.io import read_jsonl

PASSAGE_WORDS = 256


@dataclass(frozen=True)
class Article:
    """A subject's reference article (§B: "the true Wikipedia page"): its text, and the passages retrieval
    chooses from."""

    title: str
    text: str
    passages: tuple[str, ...]


def split_passages(text: str, passage_words: int = PASSAGE_WORDS) -> tuple[str, ...]:
    """A JSONL article cut into consecutive passages of at most ``passage_words`` whitespace-separated words."""
    words = text.split()
    return tuple(" ".join(words[i:i + passage_words]) for i in range(0, len(words), passage_words))


#: The manifest ``lacy.corpus`` writes last into a corpus directory: as a knowledge source, it names the directory.
CORPUS_MANIFEST = "corpus.json"


def _jsonl_files(paths: Iterable[Path]) -> Iterable[Path]:
    for path in map(Path, paths):
        if path.name == CORPUS_MANIFEST and path.is_file():
            path = path.parent
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.name.endswith((".jsonl", ".jsonl.gz")))
        elif path.exists():
            yield path
        else:
            raise FileNotFoundError(f"knowledge source {path} does not exist")


#: How FactScore's release joins an article's passages in its SQLite ``documents(title, text)`` table.
FACTSCORE_DB_SEPARATOR = "####SPECIAL####SEPARATOR####"


def _factscore_db_articles(path: Path, titles: Iterable[str]) -> Iterable[Article]:
    """Articles of ``titles`` from FactScore's Wikipedia dump (``enwiki-20230401.db``), in the database's passages."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        for title in titles:
            row = db.execute("SELECT title, text FROM documents WHERE title = ?", (title,)).fetchone()
            if row:
                passages = tuple(row[1].split(FACTSCORE_DB_SEPARATOR))
                yield Article(row[0], " ".join(clean_passage(p) for p in passages), passages)


def load_articles(paths: Iterable[Path], entities: Iterable[str],
                  passage_words: int = PASSAGE_WORDS) -> dict[str, Article]:
    """The reference article of each entity, from FactScore's SQLite Wikipedia dump (``*.db``, the paper's knowledge
    source, §5.2; its own passages), or from JSONL files (or directories of them, or a corpus's ``corpus.json``, which
    stands for its directory) of ``{"title", "text"}`` (cut into ``passage_words``-word passages).

    Titles are matched exactly, else case-insensitively; entities without an article are absent.
    """
    wanted = {entity.casefold(): entity for entity in entities}
    exact: dict[str, Article] = {}
    folded: dict[str, Article] = {}
    for path in map(Path, paths):
        if path.suffix == ".db":
            for article in _factscore_db_articles(path, wanted.values()):
                exact.setdefault(article.title.casefold(), article)
    for path in _jsonl_files(p for p in map(Path, paths) if p.suffix != ".db"):
        for _, record in read_jsonl(path):
            title = record.get("title")
            if isinstance(title, str) and title.casefold() in wanted:
                article = Article(title, record["text"], split_passages(record["text"], passage_words))
                (exact if title in wanted.values() else folded).setdefault(title.casefold(), article)
    return {entity: exact.get(key, folded.get(key)) for key, entity in wanted.items()
            if key in exact or key in folded}


def load_references(paths: Iterable[Path], entities: Iterable[str]) -> dict[str, str]:
    """The text of each entity's reference article (:func:`load_articles`; the RAG partner's background, §A.5)."""
    return {entity: article.text for entity, article in load_articles(paths, entities).items()}


def clean_passage(text: str) -> str:
    """A database passage without the RoBERTa ``<s>`` / ``</s>`` markers FActScore's dump keeps."""
    return text.replace("<s>", "").replace("</s>", "")
