"""The paper's corpus: dwiki with LMLM's LLM-judge annotations (§5.1, §A.2, §A.2.2).

LMLM (Zhao et al., 2025) released the OLMo2 Wikipedia documents ("dwiki", ~3B tokens), each annotated
with inline database lookups, as the Hugging Face dataset ``kilian-group/LMLM-pretrain-dwiki6.1M``.
Its documents hold the column ``annotated_text`` (lookups inline) and ``text`` (the original document);
see docs/llm_judge.md for what is known of the release's layout.

Two steps, two commands:

* ``lacy download-dwiki`` fetches the data files (parquet / JSONL) of one pinned revision. Files are
  downloaded into a hidden sibling ``.<out>.partial`` directory that survives an interrupted run and is
  resumed by the next one (``huggingface_hub`` resumes partial files); only a complete download is
  renamed to ``<out>``, together with a ``manifest.json`` naming the exact commit and files.
* ``lacy corpus-dwiki`` streams the documents, converts each annotated text to clean text plus the
  character spans of its delegated words (``lacy.llm_judge``), and writes the standard corpus layout of
  ``lacy.corpus`` (seeded 90/10 split by document id, gzip JSONL shards, ``corpus.json``).
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from huggingface_hub import HfApi, snapshot_download

from lacy import llm_judge
from lacy.corpus import write_corpus
from lacy.io import read_jsonl, write_json

log = logging.getLogger(__name__)

REPO_ID = "kilian-group/LMLM-pretrain-dwiki6.1M"
#: Files of the dataset repository that hold documents.
DATA_PATTERNS = ("*.parquet", "*.jsonl", "*.jsonl.gz")
TEXT_COLUMN = "annotated_text"
MANIFEST = "manifest.json"


def select_data_files(repo_files: Iterable[str], patterns: Iterable[str] = DATA_PATTERNS) -> list[str]:
    """The repository files that match one of ``patterns`` (``*`` also crosses ``/``), sorted."""
    patterns = list(patterns)
    return sorted(f for f in repo_files if any(fnmatch.fnmatchcase(f, p) for p in patterns))


def partial_download_dir(out_dir: Path) -> Path:
    """Where a download in progress lives; it is kept when a run is interrupted, to be resumed."""
    out_dir = Path(out_dir)
    return out_dir.with_name(f".{out_dir.name}.partial")


def download_dwiki(repo_id: str, revision: str, out_dir: Path, patterns: Iterable[str] = DATA_PATTERNS,
                   max_workers: int = 8) -> Path:
    """Download the data files of ``repo_id`` at ``revision`` into ``out_dir``; return ``out_dir``.

    The revision is resolved to a commit first, so every file comes from the same commit, which is
    recorded in ``out_dir/manifest.json``. Progress bars are ``huggingface_hub``'s; a token, where the
    repository needs one, comes from ``HF_TOKEN`` or ``huggingface-cli login``.
    """
    out_dir, patterns = Path(out_dir), list(patterns)
    if out_dir.exists():
        raise ValueError(f"{out_dir} exists; remove it to download again")
    info = HfApi().dataset_info(repo_id, revision=revision)
    files = select_data_files((s.rfilename for s in info.siblings), patterns)
    if not files:
        raise ValueError(f"{repo_id}@{revision}: no file matches {patterns}")
    partial = partial_download_dir(out_dir)
    log.info("downloading %d files of %s@%s (commit %s) into %s", len(files), repo_id, revision, info.sha, partial)
    snapshot_download(repo_id, repo_type="dataset", revision=info.sha, local_dir=partial, allow_patterns=files,
                      max_workers=max_workers)
    missing = [f for f in files if not (partial / f).is_file()]
    if missing:
        raise ValueError(f"{partial}: download incomplete, missing {missing[:5]}; run again to resume")
    manifest = {"repo_id": repo_id, "revision": revision, "commit": info.sha, "files": files}
    write_json(partial / MANIFEST, manifest)
    shutil.rmtree(partial / ".cache", ignore_errors=True)  # huggingface_hub's resume bookkeeping
    os.replace(partial, out_dir)
    return out_dir


def raw_data_files(raw_dir: Path) -> list[Path]:
    """The data files of a download: those named in its manifest, in manifest order."""
    manifest = Path(raw_dir) / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: not a completed dwiki download (run 'lacy download-dwiki')")
    return [Path(raw_dir) / name for name in json.loads(manifest.read_text())["files"]]


def read_documents(path: Path, text_column: str = TEXT_COLUMN,
                   id_column: str | None = None) -> Iterator[tuple[str | None, str]]:
    """Yield ``(id or None, annotated text)`` from one parquet or JSONL(.gz) file; errors name the file
    and the row (parquet, from 0) or line (JSONL, from 1)."""
    path = Path(path)
    if path.suffix == ".parquet":
        rows = _parquet_rows(path, [c for c in (text_column, id_column) if c])
    elif path.name.endswith((".jsonl", ".jsonl.gz")):
        rows = read_jsonl(path)
    else:
        raise ValueError(f"{path}: not a parquet or JSONL file")
    for n, row in rows:
        where = f"{path}:{n}"
        text = row.get(text_column)
        if not isinstance(text, str):
            raise ValueError(f"{where}: no {text_column!r} string (columns: {sorted(row)})")
        doc_id = None
        if id_column:
            if row.get(id_column) is None:
                raise ValueError(f"{where}: no {id_column!r} value")
            doc_id = str(row[id_column])
        yield doc_id, text


def _parquet_rows(path: Path, columns: list[str]) -> Iterator[tuple[int, dict]]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    absent = [c for c in columns if c not in parquet.schema_arrow.names]
    if absent:
        raise ValueError(f"{path}: no column {absent} (columns: {parquet.schema_arrow.names})")
    n = 0
    for batch in parquet.iter_batches(batch_size=1024, columns=columns):
        for row in batch.to_pylist():
            yield n, row
            n += 1


def count_documents(paths: list[Path]) -> int | None:
    """Rows of all files if every one is parquet (from the footers), else None (for progress bars)."""
    if not all(p.suffix == ".parquet" for p in paths):
        return None
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in paths)


def content_id(annotated: str) -> str:
    """A document id from its content, for releases without an id column: equal documents share it."""
    return "dwiki-" + hashlib.blake2b(annotated.encode("utf-8"), digest_size=8).hexdigest()


@dataclass
class ConversionStats:
    read: int = 0
    written: int = 0
    blank: int = 0         # clean text empty or whitespace only: dropped
    duplicates: int = 0    # id seen before: dropped
    characters: int = 0
    call_characters: int = 0
    lookups: llm_judge.BlockCounts = field(default_factory=llm_judge.BlockCounts)


def corpus_records(paths: list[Path], stats: ConversionStats, text_column: str = TEXT_COLUMN,
                   id_column: str | None = None, max_documents: int | None = None, **matching) -> Iterator[dict]:
    """Corpus records (``id``, clean ``text``, ``llm_judge_spans``, ``llm_judge_counts``, ``is_person``)
    of the annotated documents in ``paths``; ``stats`` is updated in place.

    A document whose clean text is blank is dropped (later stages skip those), as is a repeated id
    (a repeated document, when ids come from the content). ``matching`` goes to
    ``llm_judge.convert_document``.
    """
    seen: set[str] = set()
    for path in paths:
        for doc_id, annotated in read_documents(path, text_column, id_column):
            if max_documents is not None and stats.read >= max_documents:
                return
            stats.read += 1
            doc_id = doc_id if doc_id is not None else content_id(annotated)
            if doc_id in seen:
                stats.duplicates += 1
                continue
            seen.add(doc_id)
            conversion = llm_judge.convert_document(annotated, **matching)
            stats.lookups.add(conversion.counts)
            if not conversion.text.strip():
                stats.blank += 1
                continue
            stats.written += 1
            stats.characters += len(conversion.text)
            stats.call_characters += sum(end - start for start, end in conversion.spans)
            yield {"id": doc_id, "text": conversion.text, "llm_judge_spans": [list(s) for s in conversion.spans],
                   "llm_judge_counts": asdict(conversion.counts), "is_person": False}


def convert_dwiki(raw_files: list[Path], out_dir: Path, n_shards: int, validation_fraction: float = 0.1,
                  seed: int = 1234, text_column: str = TEXT_COLUMN, id_column: str | None = None,
                  max_documents: int | None = None, **matching) -> dict:
    """Write the dwiki corpus (clean text + delegated-word spans) in the layout of ``lacy.corpus``.

    Returns the statistics that ``out_dir/corpus.json`` holds: ``lacy.corpus.write_corpus``'s plus a
    ``dwiki`` entry with the conversion counts (lookups matched / partial / unmatched / malformed).
    """
    raw_files = [Path(p) for p in raw_files]
    conversion = ConversionStats()
    records = corpus_records(raw_files, conversion, text_column, id_column, max_documents, **matching)
    total = count_documents(raw_files)
    stats = write_corpus(records, out_dir, n_shards, validation_fraction, seed, source="dwiki",
                         total=min(total, max_documents) if total is not None and max_documents else total)
    stats["dwiki"] = {
        "files": [str(p) for p in raw_files], "text_column": text_column, "id_column": id_column,
        "matching": {"max_skip": llm_judge.MAX_SKIP, "max_gap": llm_judge.MAX_GAP,
                     "min_coverage": llm_judge.MIN_COVERAGE, **matching},
        **asdict(conversion),
        "call_character_fraction": conversion.call_characters / conversion.characters if conversion.characters else 0.0,
    }
    write_json(Path(out_dir) / "corpus.json", stats)
    return stats


def _download_command(args: argparse.Namespace) -> None:
    out = download_dwiki(args.repo_id, args.revision, args.out, args.include or DATA_PATTERNS,
                         max_workers=args.max_workers)
    log.info("wrote %s (%d data files)", out, len(raw_data_files(out)))


def _corpus_command(args: argparse.Namespace) -> None:
    stats = convert_dwiki(raw_data_files(args.raw), args.out, args.shards, args.validation_fraction, args.seed,
                          args.text_column, args.id_column, args.max_documents or None, max_skip=args.max_skip,
                          max_gap=args.max_gap, min_coverage=args.min_coverage)
    dwiki, lookups = stats["dwiki"], stats["dwiki"]["lookups"]
    log.info("%d documents read, %d written (%d blank, %d duplicates); %d lookups: %d matched, %d partial, "
             "%d unmatched, %d malformed; %.1f%% of characters delegated", dwiki["read"], dwiki["written"],
             dwiki["blank"], dwiki["duplicates"], lookups["blocks"], lookups["matched"], lookups["partial"],
             lookups["unmatched"], lookups["malformed"], 100 * dwiki["call_character_fraction"])


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lacy download-dwiki`` and ``lacy corpus-dwiki``."""
    download = subparsers.add_parser("download-dwiki", help="download LMLM's annotated dwiki release (§A.2.2)",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    download.add_argument("--repo-id", default=REPO_ID, help="Hugging Face dataset repository")
    download.add_argument("--revision", default="main", help="branch, tag or commit (resolved to a commit)")
    download.add_argument("--out", type=Path, required=True, help="directory to create")
    download.add_argument("--include", action="append", default=None, metavar="PATTERN",
                          help=f"glob over repository paths of the files to fetch, repeatable "
                               f"(none given: {' '.join(DATA_PATTERNS)})")
    download.add_argument("--max-workers", type=int, default=8, help="parallel file downloads")
    download.set_defaults(func=_download_command)

    corpus = subparsers.add_parser("corpus-dwiki", help="dwiki corpus with LLM-judge call spans (§A.2, §A.2.2)",
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    corpus.add_argument("--raw", type=Path, required=True, help="directory written by download-dwiki")
    corpus.add_argument("--out", type=Path, required=True, help="corpus directory to write")
    corpus.add_argument("--shards", type=int, default=2, help="document shards per split")
    corpus.add_argument("--validation-fraction", type=float, required=True, help="share held out (§A.2)")
    corpus.add_argument("--seed", type=int, required=True, help="seed of the train/validation split")
    corpus.add_argument("--max-documents", type=int, default=0, help="read at most this many (0: all)")
    corpus.add_argument("--text-column", default=TEXT_COLUMN, help="column holding the annotated text")
    corpus.add_argument("--id-column", default=None,
                        help="column holding a document id (default: an id from the document's content)")
    corpus.add_argument("--max-skip", type=int, default=llm_judge.MAX_SKIP,
                        help="words the restated value may start after the lookup")
    corpus.add_argument("--max-gap", type=int, default=llm_judge.MAX_GAP,
                        help="other words allowed between two restated value words")
    corpus.add_argument("--min-coverage", type=float, default=llm_judge.MIN_COVERAGE,
                        help="fraction of the value's words that must be restated")
    corpus.set_defaults(func=_corpus_command)
