"""spaCy fact annotation (paper §A.2.1): every word is *fact*, *grammatical* or *other*, and every
SentencePiece token inherits the class of its word.

``facts`` holds the heuristics, ``pipeline`` the spaCy component and the streaming API, ``shards`` the
restartable per-shard job, ``cli`` the ``lacy annotate`` commands.
"""

from lacy.annotation.facts import Occurrences, word_labels
from lacy.annotation.pipeline import (COMPONENT, annotate_documents, annotate_stream, doc_labels, load_spacy,
                                      parse_documents)

__all__ = ["COMPONENT", "Occurrences", "annotate_documents", "annotate_stream", "doc_labels", "load_spacy",
           "parse_documents", "word_labels"]
