"""Shared fixtures: a small real SentencePiece model trained on the embedded Wikipedia corpus."""

from __future__ import annotations

import pytest

from lacy.corpus.wiki_offline import read_wiki_offline
from lacy.tokenizer import LacyTokenizer, train_sentencepiece


@pytest.fixture(scope="session")
def wiki_records() -> list[dict]:
    return list(read_wiki_offline(max_documents=1500))


@pytest.fixture(scope="session")
def small_tokenizer(tmp_path_factory, wiki_records) -> LacyTokenizer:
    out = tmp_path_factory.mktemp("tokenizer")
    train_sentencepiece((r["text"] for r in wiki_records), out, vocab_size=1000, seed=0)
    return LacyTokenizer.load(out)
