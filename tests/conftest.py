"""Shared fixtures: a small real SentencePiece model trained on the embedded Wikipedia corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lacy import FACT, GRAMMATICAL, OTHER

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


@pytest.fixture(scope="session")
def default_size_tokenizer(tmp_path_factory, wiki_records) -> LacyTokenizer:
    """The embedded default's tokenizer size (8,000 pieces), on the same 1,500 documents."""
    out = tmp_path_factory.mktemp("tokenizer8000")
    train_sentencepiece((r["text"] for r in wiki_records), out, vocab_size=8000, seed=0)
    return LacyTokenizer.load(out)


VOCAB = 513  # 512 SentencePiece pieces + <CALL>


def write_annotation(root: Path, n_tokens: int = 6000, seed: int = 0) -> tuple[Path, Path, Path]:
    """Random tokens and labels in the annotation stage's layout, with LLM-judge labels, and a real
    512-piece tokenizer (training only reads its ids; the checkpoint stores it)."""
    tokenizer = root / "tokenizer"
    train_sentencepiece((r["text"] for r in read_wiki_offline(max_documents=300)), tokenizer, VOCAB - 1)
    rng = np.random.default_rng(seed)
    for split in ("train", "validation"):
        for shard in range(2):
            prefix = root / "annotation" / split / f"part-{shard:05d}"
            prefix.parent.mkdir(parents=True, exist_ok=True)
            tokens = rng.integers(0, VOCAB - 1, n_tokens).astype(np.uint16)
            labels = rng.choice([OTHER, GRAMMATICAL, FACT], n_tokens, p=[0.45, 0.3, 0.25]).astype(np.uint8)
            docs = np.concatenate([[0], np.sort(rng.choice(np.arange(1, n_tokens), 20, replace=False)), [n_tokens]])
            np.save(f"{prefix}.tokens.npy", tokens)
            np.save(f"{prefix}.labels.npy", labels)
            np.save(f"{prefix}.docs.npy", docs.astype(np.int64))
            Path(f"{prefix}.json").write_text("{}")
            judge = root / "llm_judge" / split
            judge.mkdir(parents=True, exist_ok=True)
            np.save(judge / f"part-{shard:05d}.calls.npy", (rng.random(n_tokens) < 0.15).astype(np.uint8))
    return root / "annotation", root / "llm_judge", tokenizer


@pytest.fixture()
def data(tmp_path):
    """(annotation dir, LLM-judge dir, tokenizer dir) of a small synthetic annotated corpus."""
    return write_annotation(tmp_path)
