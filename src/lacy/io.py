"""Crash-safe file output: every artefact is written under a temporary name and renamed into place.

Snakemake trusts any file that exists; a job killed mid-write must therefore never leave a file under
its final name. ``os.replace`` is atomic on POSIX file systems.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np


def partial_path(path: Path) -> Path:
    """The temporary name ``path`` is written under before it is complete."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial-{os.getpid()}")


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``path`` only if the block finishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, obj: Any) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_csv(path: Path, rows: Iterable[dict], columns: list[str], *, extra_keys: str = "raise") -> None:
    """``rows`` as CSV with a header of ``columns``, atomically; ``extra_keys="ignore"`` drops keys not in
    ``columns`` (``csv.DictWriter``'s ``extrasaction``)."""
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction=extra_keys)
        writer.writeheader()
        writer.writerows(rows)


def write_npy(path: Path, array: np.ndarray) -> None:
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def write_jsonl(path: Path, records: Iterable[dict]) -> int:
    """Write JSONL (gzip when the name ends in ``.gz``) atomically; return the number of records."""
    n = 0
    with atomic_output(Path(path)) as tmp:
        opener = gzip.open if Path(path).suffix == ".gz" else open
        with opener(tmp, "wt", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
                n += 1
    return n


def open_text(path: Path, mode: str = "rt"):
    """Open plain or gzip-compressed (``.gz``) UTF-8 text."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, mode, encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, record)``; a bad line raises ``ValueError`` naming file and line."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}:{line_no}: not valid UTF-8 ({err.reason})") from err
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{line_no}: not valid JSON ({err.msg})") from err
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}")
            yield line_no, record
