"""Pretraining corpus: documents, the seeded train/validation split and document shards (§5.1, §A.2).

Every corpus, whatever its source, is written in one layout that later stages read::

    <out>/train/part-00000.jsonl.gz ...        one JSON object per document
    <out>/validation/part-00000.jsonl.gz ...
    <out>/corpus.json                         counts per split, the seed, the source

A record holds at least ``id`` and ``text`` (NFKC-normalised once here, so every later stage sees the
same characters). The split is decided per document from a hash of the seed and the document id, so it
is reproducible, independent of the input order, and works while streaming a corpus too large for memory.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import unicodedata
from contextlib import ExitStack
from pathlib import Path
from typing import Iterable

from tqdm import tqdm

from lacy.io import atomic_output, write_json

SPLITS = ("train", "validation")


def normalize_text(text: str) -> str:
    """NFKC normalisation, applied once when the corpus is built (see ``lacy.tokenizer``)."""
    return unicodedata.normalize("NFKC", text)


def unit_hash(key: str) -> float:
    """A stable pseudo-random number in [0, 1) for ``key``."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def assign_split(doc_id: str, seed: int, validation_fraction: float) -> str:
    """'validation' for a seeded ``validation_fraction`` of documents, else 'train' (90/10 in the paper)."""
    return "validation" if unit_hash(f"split:{seed}:{doc_id}") < validation_fraction else "train"


def shard_index(doc_id: str, n_shards: int) -> int:
    """The shard a document is written to; shards are annotated as independent jobs."""
    return int(unit_hash(f"shard:{doc_id}") * n_shards)


def shard_paths(out_dir: Path, split: str, n_shards: int) -> list[Path]:
    return [Path(out_dir) / split / f"part-{k:05d}.jsonl.gz" for k in range(n_shards)]


def write_corpus(records: Iterable[dict], out_dir: Path, n_shards: int, validation_fraction: float,
                 seed: int, source: str, total: int | None = None) -> dict:
    """Split ``records`` by document, write them as gzip JSONL shards, and return the statistics.

    Every shard file of both splits is written (possibly empty), atomically; ``corpus.json`` last.
    A duplicate document id is an error, because ids key the split and later evaluation lookups.
    """
    out_dir = Path(out_dir)
    counts = {split: {"documents": 0, "characters": 0, "persons": 0} for split in SPLITS}
    seen: set[str] = set()
    with ExitStack() as stack:
        files = {}
        for split in SPLITS:
            for k, path in enumerate(shard_paths(out_dir, split, n_shards)):
                tmp = stack.enter_context(atomic_output(path))
                files[split, k] = stack.enter_context(gzip.open(tmp, "wt", encoding="utf-8"))
        for record in tqdm(records, total=total, desc=f"corpus {source}", unit="doc", mininterval=2):
            doc_id = str(record["id"])
            if doc_id in seen:
                raise ValueError(f"duplicate document id {doc_id!r} in {source}")
            seen.add(doc_id)
            split = assign_split(doc_id, seed, validation_fraction)
            files[split, shard_index(doc_id, n_shards)].write(json.dumps(record, ensure_ascii=False) + "\n")
            counts[split]["documents"] += 1
            counts[split]["characters"] += len(record["text"])
            counts[split]["persons"] += bool(record.get("is_person"))
        for f in files.values():
            f.close()
    stats = {"source": source, "seed": seed, "validation_fraction": validation_fraction,
             "shards": n_shards, "splits": counts}
    write_json(out_dir / "corpus.json", stats)
    return stats
