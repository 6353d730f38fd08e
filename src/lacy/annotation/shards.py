"""One annotation job per corpus shard (§A.2.1 at scale): token ids, labels and document offsets.

``annotate_shard`` reads a JSONL(.gz) corpus shard (records with at least ``id`` and ``text``), labels its
documents with ``lacy_facts`` and writes, for ``--out-prefix P``:

* ``P.tokens.npy``: all documents' SentencePiece ids, concatenated in file order, no separator
  (uint16 if the vocabulary including ``<CALL>`` fits, else uint32);
* ``P.labels.npy``: uint8 OTHER / GRAMMATICAL / FACT, aligned 1:1 with the tokens;
* ``P.docs.npy``: int64 offsets of length ``n_docs + 1``; document ``k`` is ``tokens[docs[k]:docs[k+1]]``;
* ``P.json``: statistics, written last as the commit marker. They include the labelling cost of the shard
  (§5.6, Table 2): wall-clock and CPU seconds of the annotation loop (spaCy in this process and its
  ``n_process`` workers, plus token alignment; reading the shard and loading spaCy excluded, like the paper's
  "pure throughput within the loop", §A.2.1) and the CPU model they ran on.

Crash safety: the whole shard is read and checked before any annotation, so a malformed line (not UTF-8,
not JSON, not an object with ``id`` and a ``text`` string) fails with its file and line number and writes
nothing. A stale marker is removed first; the arrays are written under temporary names and renamed only
when all three are complete; the marker follows. A killed job therefore never leaves a ``P.json`` next
to arrays it does not describe, and rerunning the job simply rewrites the shard.

Nothing is dropped silently: whitespace-only documents are skipped and listed in the statistics, as are
documents annotated in pieces because they exceed ``max_chars``.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lacy import LABEL_NAMES
from lacy.annotation.pipeline import DEFAULT_MAX_CHARS, annotate_documents, load_spacy
from lacy.io import atomic_output, read_jsonl, write_json
from lacy.labelling_cost import cpu_model, cpu_seconds
from lacy.tokenizer import LacyTokenizer

log = logging.getLogger(__name__)
ARRAYS = ("tokens", "labels", "docs")


@dataclass
class ShardDocuments:
    """The documents of one shard to annotate, and the whitespace-only ones skipped."""

    ids: list
    texts: list[str]
    skipped_empty: list


def read_shard(corpus: Path) -> ShardDocuments:
    """All records of ``corpus``, checked; raises ``ValueError`` naming file and line on a bad one."""
    shard = ShardDocuments([], [], [])
    for line, record in read_jsonl(corpus):
        if "id" not in record or not isinstance(record.get("text"), str):
            raise ValueError(f"{corpus}:{line}: a corpus record needs an 'id' and a 'text' string")
        if record["text"].strip():
            shard.ids.append(record["id"])
            shard.texts.append(record["text"])
        else:
            shard.skipped_empty.append(record["id"])
    return shard


def output_paths(prefix: Path) -> dict[str, Path]:
    """The shard's files: ``<prefix>.tokens.npy``, ``.labels.npy``, ``.docs.npy`` and ``<prefix>.json``."""
    paths = {name: Path(f"{prefix}.{name}.npy") for name in ARRAYS}
    paths["stats"] = Path(f"{prefix}.json")
    return paths


def annotate_shard(corpus: Path, tokenizer_dir: Path, out_prefix: Path, spacy_model: str | None = None,
                   n_process: int = 1, batch_size: int = 256, max_chars: int = DEFAULT_MAX_CHARS) -> dict:
    """Annotate one corpus shard and write its arrays and statistics; returns the statistics."""
    shard = read_shard(corpus)
    tokenizer = LacyTokenizer.load(tokenizer_dir)
    nlp = load_spacy(spacy_model)
    log.info("%s: %d documents (%d whitespace-only skipped), spaCy %s-%s, %d processes", corpus,
             len(shard.texts), len(shard.skipped_empty), nlp.meta["name"], nlp.meta["version"], n_process)
    ids, labels, lengths, split = [], [], [], []
    wall_start, cpu_start = time.perf_counter(), cpu_seconds()
    documents = zip(shard.ids, annotate_documents(shard.texts, tokenizer, nlp, n_process, batch_size, max_chars),
                    strict=True)
    for doc_id, doc in tqdm(documents, total=len(shard.ids), desc=f"annotate {Path(corpus).name}", unit="doc",
                            mininterval=2):
        ids.append(doc.ids)
        labels.append(doc.labels)
        lengths.append(len(doc.ids))
        if doc.pieces > 1:
            split.append(doc_id)
    wall, cpu = time.perf_counter() - wall_start, cpu_seconds() - cpu_start
    arrays = {
        "tokens": np.concatenate(ids) if ids else np.zeros(0, dtype=tokenizer.dtype),
        "labels": np.concatenate(labels) if labels else np.zeros(0, dtype=np.uint8),
        "docs": np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(lengths, dtype=np.int64)]),
    }
    stats = shard_stats(arrays["labels"], shard, split)
    stats.update(corpus=str(corpus), tokenizer=str(tokenizer_dir), vocab_size=tokenizer.vocab_size,
                 token_dtype=np.dtype(tokenizer.dtype).name, max_chars=min(max_chars, nlp.max_length),
                 spacy_model=f"{nlp.meta['name']}-{nlp.meta['version']}", spacy_components=nlp.pipe_names,
                 n_process=n_process, annotation_seconds=wall, annotation_cpu_seconds=cpu, cpu_model=cpu_model())
    write_shard(out_prefix, arrays, stats)
    log.info("%s: %d tokens, fact fraction %.3f, %d documents split; %.1f s (%.1f CPU s) annotating",
             out_prefix, stats["n_tokens"], stats["label_fractions"]["fact"], len(split), wall, cpu)
    return stats


def shard_stats(labels: np.ndarray, shard: ShardDocuments, split: list) -> dict:
    """Document and label counts of one shard, with the ids of every document annotated, skipped or split."""
    counts = np.bincount(labels, minlength=len(LABEL_NAMES))
    n_tokens = int(len(labels))
    return {
        "n_docs": len(shard.ids),
        "n_tokens": n_tokens,
        "label_counts": {LABEL_NAMES[k]: int(counts[k]) for k in sorted(LABEL_NAMES)},
        "label_fractions": {LABEL_NAMES[k]: (counts[k] / n_tokens if n_tokens else 0.0) for k in sorted(LABEL_NAMES)},
        "skipped_empty": len(shard.skipped_empty),
        "skipped_empty_ids": shard.skipped_empty,
        "split_documents": len(split),
        "split_document_ids": split,
        "doc_ids": shard.ids,
    }


def write_shard(prefix: Path, arrays: dict[str, np.ndarray], stats: dict) -> None:
    """Write the three arrays, all or none, then the statistics (the commit marker)."""
    paths = output_paths(prefix)
    paths["stats"].unlink(missing_ok=True)
    with ExitStack() as renames:
        for name in ARRAYS:
            tmp = renames.enter_context(atomic_output(paths[name]))
            with open(tmp, "wb") as f:
                np.save(f, arrays[name])
    write_json(paths["stats"], stats)


def summarise(stats_files: list[Path]) -> dict:
    """Totals over shard statistics files, per split (a shard's directory name) and overall."""
    splits: dict[str, dict] = {}
    total = _empty_totals()
    for path in stats_files:
        stats = _read_stats(path)
        for totals in (splits.setdefault(Path(path).parent.name, _empty_totals()), total):
            totals["shards"] += 1
            for key in ("n_docs", "n_tokens", "skipped_empty", "split_documents"):
                totals[key] += stats[key]
            for name in LABEL_NAMES.values():
                totals["label_counts"][name] += stats["label_counts"][name]
    for totals in (*splits.values(), total):
        n = totals["n_tokens"]
        totals["label_fractions"] = {k: (v / n if n else 0.0) for k, v in totals["label_counts"].items()}
    return {"splits": splits, "total": total}


def _empty_totals() -> dict:
    return {"shards": 0, "n_docs": 0, "n_tokens": 0, "skipped_empty": 0, "split_documents": 0,
            "label_counts": {name: 0 for name in LABEL_NAMES.values()}}


def _read_stats(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a shard statistics file ({err})") from err
