"""LMLM's LLM-judge annotations turned into per-token ``<CALL>`` labels (paper §A.2.2).

LMLM (Zhao et al., 2025) annotates each dwiki document with database lookups written inline, each
followed by the document text that restates the looked-up value::

    [dblookup('Mollie Marcoux', 'Nationality') -> American] American athletics administrator
    <|db_entity|> Napoleon<|db_relationship|> Birth-Date<|db_return|> August 15, 1769<|db_end|> August 15, 1769.

§A.2.2 removes the lookups and turns "each delegated word into a sequence of <CALL> tokens". Here a
document becomes its clean text plus the character spans of the delegated words:

* **Block removal.** Blocks of both formats are removed together with one of the whitespace runs
  around them, so no double space remains ("born on [..] August" -> "born on August"); a newline
  is never dropped in favour of a space.
* **Matching rule.** The delegated words are the words of the text following the block that restate
  the value. Words are maximal runs of letters and digits; they are compared case-insensitively. The
  restatement may start up to ``max_skip`` words late ("-> Ithaca, New York] native of Ithaca, New
  York"), may reorder or interleave up to ``max_gap`` other words between value words ("-> judge,
  politician] judge and politician"), and may be partial: a block counts as matched when at least
  ``min_coverage`` of the value's words are found, and only found words are delegated. Blocks below
  that are *unmatched* and delegate nothing; they are counted.
* **Punctuation is not delegated.** The paper's example labels "August 15, 1769." as
  ``<CALL> <CALL><CALL>, <CALL><CALL><CALL><CALL>.``: the words are calls, the comma inside the
  value is not. Spans therefore cover words only.
* **Malformed blocks** never stop a conversion: a block that does not parse is removed up to its
  closing ``]`` / ``<|db_end|>`` if that comes before the end of the line and the next block, else up
  to whichever of those comes first (so an unterminated lookup ending a document is dropped, as
  LMLM's own cleaning does); a stray special token is removed. Both count as ``malformed`` and
  delegate nothing.

The corpus stage (``lacy.corpus.dwiki``) stores the clean text and spans; ``lacy llm-judge labels``
turns one corpus shard into a 0/1 array aligned with the tokens of the annotation stage.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import unicodedata
from bisect import bisect_left
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lacy import FACT, OTHER
from lacy.io import read_jsonl, write_json, write_npy
from lacy.tokenizer import LacyTokenizer

log = logging.getLogger(__name__)

#: Defaults of the matching rule (see the module docstring and docs/llm_judge.md).
MAX_SKIP = 5
MAX_GAP = 3
MIN_COVERAGE = 0.5

#: LMLM's annotation format: [dblookup('entity', 'relation') -> value] (quotes optional, ' or ").
LEGACY_BLOCK = re.compile(
    r"""\[dblookup\(\s*(['"]?)(?P<entity>[^\]\n]*?)\1\s*,\s*(['"]?)(?P<relation>[^\]\n]*?)\3\s*\)"""
    r"""\s*->\s*(?P<value>[^\]\n]*?)\s*\]"""
)
#: LMLM's pretraining format: <|db_entity|> entity<|db_relationship|> relation<|db_return|> value<|db_end|>
_FIELD = r"(?:(?!<\|db_)[^\n])*?"
SPECIAL_BLOCK = re.compile(
    rf"<\|db_entity\|>(?P<entity>{_FIELD})<\|db_relationship\|>(?P<relation>{_FIELD})"
    rf"<\|db_return\|>(?P<value>{_FIELD})<\|db_end\|>"
)
#: Where a block starts, and the special tokens that are removed wherever they stand alone.
_MARKER = re.compile(r"\[dblookup|<\|db_(?:entity|relationship|return|end)\|>")
_BLOCK_START = re.compile(r"\[dblookup|<\|db_entity\|>")
_CLOSERS = {"[dblookup": "]", "<|db_entity|>": "<|db_end|>"}
_WORD = re.compile(r"[^\W_]+")


@dataclass
class BlockCounts:
    """How the lookups of a document (or a corpus) were converted."""

    blocks: int = 0      # well-formed lookups
    matched: int = 0     # value restated in full
    partial: int = 0     # at least ``min_coverage`` of the value's words restated
    unmatched: int = 0   # value not found after the lookup: nothing delegated
    malformed: int = 0   # unterminated / unparsable lookups and stray special tokens, removed

    def add(self, other: "BlockCounts") -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass
class Lookup:
    value: str
    offset: int  # where the lookup stood in the clean text


@dataclass
class Conversion:
    text: str                                   # clean text, NFKC-normalised
    spans: list[tuple[int, int]]                # delegated words: sorted, disjoint [start, end)
    counts: BlockCounts = field(default_factory=BlockCounts)


def strip_lookups(annotated: str) -> tuple[str, list[Lookup], int]:
    """Remove every lookup block from ``annotated``; return the clean text, the lookups (with their
    offsets in the clean text) and the number of malformed blocks removed (§A.2.2)."""
    out: list[str] = []
    length = 0  # len("".join(out))
    lookups: list[Lookup] = []
    malformed = 0
    pos = 0
    for marker in _MARKER.finditer(annotated):
        if marker.start() < pos:
            continue  # inside a block already consumed
        out.append(annotated[pos:marker.start()])
        length += marker.start() - pos
        block = _parse_block(annotated, marker)
        if block is None:
            malformed += 1
            end = _malformed_end(annotated, marker)
        else:
            end = block.end()
        skip_after, trim_before = _whitespace_to_drop(out, annotated, end)
        if trim_before:
            length = _rstrip_parts(out, length)
        pos = end + skip_after
        if block is not None:
            lookups.append(Lookup(block["value"].strip(), length))
    out.append(annotated[pos:])
    return "".join(out), lookups, malformed


def _parse_block(text: str, marker: re.Match) -> re.Match | None:
    pattern = {"[dblookup": LEGACY_BLOCK, "<|db_entity|>": SPECIAL_BLOCK}.get(marker.group())
    return pattern.match(text, marker.start()) if pattern else None


def _malformed_end(text: str, marker: re.Match) -> int:
    """Where a block that does not parse ends: a stray special token ends with itself; a block at its
    closing ``]`` / ``<|db_end|>`` when one comes before the line or the next block ends, else there."""
    closer = _CLOSERS.get(marker.group())
    if closer is None:
        return marker.end()
    newline = text.find("\n", marker.end())
    next_block = _BLOCK_START.search(text, marker.end())
    stop = min(len(text) if newline < 0 else newline, len(text) if next_block is None else next_block.start())
    close = text.find(closer, marker.end(), stop)
    return stop if close < 0 else close + len(closer)


def _whitespace_to_drop(out: list[str], text: str, end: int) -> tuple[int, bool]:
    """Which whitespace next to a block removed at ``text[:end]`` goes, so that none doubles up:
    ``(characters to skip after the block, whether to trim the whitespace before it)``.

    At the start of a document the whitespace after the block goes, at its end the whitespace
    before it; in between, one of the two runs goes, the one after unless only it holds a newline.
    """
    rest = text[end:]
    after = len(rest) - len(rest.lstrip())
    before = _trailing_whitespace(out)
    if before is None:
        return after, False
    if not rest.strip():
        return 0, True
    if after and before:
        if "\n" in rest[:after] and "\n" not in before:
            return 0, True
        return after, False
    return 0, False


def _trailing_whitespace(out: list[str]) -> str | None:
    """The whitespace ending the text assembled in ``out``; None while that text is blank."""
    tail = []
    for part in reversed(out):
        stripped = part.rstrip()
        tail.append(part[len(stripped):])
        if stripped:
            return "".join(reversed(tail))
    return None


def _rstrip_parts(out: list[str], length: int) -> int:
    """Remove trailing whitespace from the text assembled in ``out``; return its new length."""
    while out:
        stripped = out[-1].rstrip()
        length -= len(out[-1]) - len(stripped)
        if stripped:
            out[-1] = stripped
            break
        out.pop()
    return length


def align_value(value: str, following: list[str], max_skip: int = MAX_SKIP, max_gap: int = MAX_GAP) -> list[int]:
    """Indices into ``following`` (the casefolded words after a lookup) that restate ``value``.

    The restatement starts at one of the first ``max_skip + 1`` words; from there, value words are
    taken in any order (each as often as the value has it) while at most ``max_gap`` other words
    separate two of them. Of all starts, the one restating most value words wins, then the
    densest, then the earliest.
    """
    wanted = Counter(w.casefold() for w in _WORD.findall(value))
    best: list[int] = []
    best_key: tuple[int, int, int] | None = None
    for start in range(min(max_skip + 1, len(following))):
        if following[start] not in wanted:
            continue
        matched = _restatement_from(start, following, wanted, max_gap)
        key = (len(matched), matched[0] - matched[-1], -start)
        if best_key is None or key > best_key:
            best, best_key = matched, key
    return best


def _restatement_from(start: int, following: list[str], wanted: Counter, max_gap: int) -> list[int]:
    remaining = wanted.copy()
    n_wanted = sum(wanted.values())
    matched: list[int] = []
    gap = 0
    for j in range(start, len(following)):
        if remaining[following[j]] > 0:
            remaining[following[j]] -= 1
            matched.append(j)
            gap = 0
            if len(matched) == n_wanted:
                break
        else:
            gap += 1
            if gap > max_gap:
                break
    return matched


def convert_document(annotated: str, max_skip: int = MAX_SKIP, max_gap: int = MAX_GAP,
                     min_coverage: float = MIN_COVERAGE) -> Conversion:
    """Clean text and delegated-word spans of one LMLM-annotated document (§A.2.2).

    The text is NFKC-normalised first (as every corpus text is, ``lacy.corpus``), so the spans index
    the stored text.
    """
    text, lookups, malformed = strip_lookups(unicodedata.normalize("NFKC", annotated))
    counts = BlockCounts(blocks=len(lookups), malformed=malformed)
    words = list(_WORD.finditer(text))
    starts = [w.start() for w in words]
    folded = [w.group().casefold() for w in words]
    called: set[int] = set()
    for lookup in lookups:
        n_value_words = len(_WORD.findall(lookup.value))
        first = bisect_left(starts, lookup.offset)
        window = folded[first:first + max_skip + 1 + n_value_words * (max_gap + 1)]
        matched = align_value(lookup.value, window, max_skip, max_gap)
        if n_value_words == 0 or len(matched) < max(1, math.ceil(min_coverage * n_value_words)):
            counts.unmatched += 1
            continue
        if len(matched) == n_value_words:
            counts.matched += 1
        else:
            counts.partial += 1
        called.update(first + i for i in matched)
    spans = [(words[i].start(), words[i].end()) for i in sorted(called)]
    return Conversion(text=text, spans=spans, counts=counts)


def char_call_labels(text: str, spans: list[tuple[int, int]] | list[list[int]]) -> np.ndarray:
    """One uint8 per character of ``text``: FACT for delegated characters, else OTHER."""
    labels = np.full(len(text), OTHER, dtype=np.uint8)
    for start, end in spans:
        if not 0 <= start <= end <= len(text):
            raise ValueError(f"span [{start}, {end}) outside a text of {len(text)} characters")
        labels[start:end] = FACT
    return labels


def token_call_labels(tokenizer: LacyTokenizer, text: str, spans) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of ``text`` (exactly ``tokenizer.encode(text)``) and their 0/1 CALL labels: a token
    is a call when it belongs to a delegated word (§A.2.2), by the tokenizer's label inheritance."""
    ids, labels = tokenizer.encode_with_char_labels(text, char_call_labels(text, spans))
    return ids, (labels == FACT).astype(np.uint8)


def shard_call_labels(corpus: Path, tokenizer: LacyTokenizer) -> tuple[np.ndarray, np.ndarray, dict]:
    """Token ids, 0/1 CALL labels and statistics of one corpus shard written by ``corpus-dwiki``.

    Documents are taken in file order and whitespace-only ones are skipped, exactly as the annotation
    stage does, so the arrays line up token by token with that stage's output.
    """
    ids_parts, call_parts = [], []
    counts = BlockCounts()
    documents = skipped = 0
    for line, record in tqdm(read_jsonl(corpus), desc=f"llm-judge {Path(corpus).name}", unit="doc",
                             mininterval=2):
        text = record.get("text")
        if not isinstance(text, str):
            raise ValueError(f"{corpus}:{line}: record has no 'text' string")
        if not text.strip():
            skipped += 1
            continue
        if "llm_judge_spans" not in record:
            raise ValueError(f"{corpus}:{line}: record has no 'llm_judge_spans' (build the corpus with "
                             f"'lacy corpus-dwiki')")
        try:
            ids, calls = token_call_labels(tokenizer, text, record["llm_judge_spans"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"{corpus}:{line}: bad llm_judge_spans ({err})") from err
        ids_parts.append(ids)
        call_parts.append(calls)
        counts.add(BlockCounts(**record.get("llm_judge_counts", {})))
        documents += 1
    ids = np.concatenate(ids_parts) if ids_parts else np.zeros(0, dtype=tokenizer.dtype)
    calls = np.concatenate(call_parts) if call_parts else np.zeros(0, dtype=np.uint8)
    stats = {"corpus": str(corpus), "documents": documents, "skipped_empty": skipped, "tokens": int(len(ids)),
             "call_tokens": int(calls.sum()), "lookups": asdict(counts)}
    return ids, calls, _with_fractions(stats)


def _with_fractions(stats: dict) -> dict:
    lookups = stats["lookups"]
    stats["call_fraction"] = stats["call_tokens"] / stats["tokens"] if stats["tokens"] else 0.0
    stats["unmatched_fraction"] = lookups["unmatched"] / lookups["blocks"] if lookups["blocks"] else 0.0
    return stats


def check_alignment(ids: np.ndarray, tokens_path: Path, corpus: Path) -> None:
    """Fail unless ``ids`` are exactly the tokens the annotation stage wrote for the same shard."""
    tokens = np.load(tokens_path, mmap_mode="r")
    if len(tokens) != len(ids):
        raise ValueError(f"{corpus}: {len(ids)} tokens, but {tokens_path} holds {len(tokens)}: "
                         f"the CALL labels would not line up")
    differ = np.flatnonzero(np.asarray(tokens) != ids)
    if len(differ):
        raise ValueError(f"{corpus}: token {differ[0]} is {ids[differ[0]]} here but {tokens[differ[0]]} "
                         f"in {tokens_path}: the CALL labels would not line up")


def write_shard_labels(corpus: Path, tokenizer_dir: Path, out: Path, stats_out: Path,
                       tokens: Path | None = None) -> dict:
    """``lacy llm-judge labels``: write the shard's uint8 CALL array (1 = call) and its statistics."""
    ids, calls, stats = shard_call_labels(corpus, LacyTokenizer.load(tokenizer_dir))
    if tokens is not None:
        check_alignment(ids, tokens, corpus)
    write_npy(out, calls)
    write_json(stats_out, stats)
    return stats


_TOTALLED = ("documents", "skipped_empty", "tokens", "call_tokens")


def summarise(stats_paths: list[Path]) -> dict:
    """Totals of shard statistics, per split (the corpus shard's directory) and overall."""
    splits: dict[str, dict] = {}
    overall = _empty_total()
    for path in stats_paths:
        stats = json.loads(Path(path).read_text())
        for total in (splits.setdefault(Path(stats["corpus"]).parent.name, _empty_total()), overall):
            total["shards"] += 1
            for key in _TOTALLED:
                total[key] += stats[key]
            for key, value in stats["lookups"].items():
                total["lookups"][key] += value
    return {"splits": {split: _with_fractions(total) for split, total in splits.items()},
            "total": _with_fractions(overall)}


def _empty_total() -> dict:
    return {"shards": 0, **dict.fromkeys(_TOTALLED, 0), "lookups": asdict(BlockCounts())}


def _labels_command(args: argparse.Namespace) -> None:
    stats = write_shard_labels(args.corpus, args.tokenizer, args.out, args.stats, args.tokens)
    lookups = stats["lookups"]
    log.info("%s: %d documents, %d tokens, %.1f%% calls; %d lookups, %d unmatched (%.1f%%), %d malformed",
             args.corpus, stats["documents"], stats["tokens"], 100 * stats["call_fraction"], lookups["blocks"],
             lookups["unmatched"], 100 * stats["unmatched_fraction"], lookups["malformed"])


def _summary_command(args: argparse.Namespace) -> None:
    summary = summarise(args.stats)
    write_json(args.out, summary)
    total = summary["total"]
    log.info("%d shards, %d tokens, %.1f%% calls, %.1f%% of lookups unmatched", total["shards"], total["tokens"],
             100 * total["call_fraction"], 100 * total["unmatched_fraction"])


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lacy llm-judge labels`` and ``lacy llm-judge summary``."""
    judge = subparsers.add_parser("llm-judge", help="LMLM's LLM-judge annotations as CALL labels (§A.2.2)")
    judge_sub = judge.add_subparsers(dest="llm_judge_command", required=True)
    labels = judge_sub.add_parser("labels", help="per-token CALL labels (1 = call) of one corpus shard",
                                  formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    labels.add_argument("--corpus", type=Path, required=True, help="corpus shard written by corpus-dwiki")
    labels.add_argument("--tokenizer", type=Path, required=True, help="tokenizer directory")
    labels.add_argument("--out", type=Path, required=True, help="uint8 .npy of CALL labels to write")
    labels.add_argument("--stats", type=Path, required=True, help="JSON statistics to write")
    labels.add_argument("--tokens", type=Path, default=None,
                        help="the annotation stage's token .npy of the same shard: fail unless identical")
    labels.set_defaults(func=_labels_command)
    summary = judge_sub.add_parser("summary", help="total the statistics of all shards")
    summary.add_argument("--out", type=Path, required=True, help="summary JSON to write")
    summary.add_argument("stats", type=Path, nargs="+", help="shard statistics from 'llm-judge labels'")
    summary.set_defaults(func=_summary_command)
