"""``lacy generate`` and ``lacy cascade``: the cascade of §5.1 / §A.5 from the command line, and the partner alone.

The partner (``lacy.partners``) is chosen by ``--partner`` and the RAG options:

* ``--partner P``: the local partner P (``lacy.partners.local``: a ``transformers`` model name or directory, or
  ``gemma3-270m-gguf``);
* ``--partner P --rag-knowledge K``: P in process, given each subject's article from K in a plain-text RAG prompt
  (``lacy.partners.rag.LocalRagPartner``; a deviation from §A.5's chat prompt for base models);
* ``--partner P --rag-knowledge K --rag-base-url URL``: the served RAG partner of §A.5, P behind an
  OpenAI-compatible completions endpoint (``lacy.partners.rag.ServedRagPartner``).

``lacy cascade --partner-alone`` lets the partner (any of the three) write every token of each biography from the
same prompt, without the SLM (the reference bars of §5.2), into records of the cascade's schema. The commands live
apart from the cascade so that the cascade depends on the partner interface only (``lacy.partners.base``)."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import fields
from pathlib import Path

import torch

from lacy.cascade import (PARTNER_CALLS, CascadeSettings, bio_prompt, cascade_records, load_slm,
                          partner_alone_records, read_entity_records, summarise, with_split)
from lacy.distributed import default_device
from lacy.io import atomic_output, write_json, write_jsonl
from lacy.partners.base import CascadePartner
from lacy.local_models import GEMMA_GGUF
from lacy.partners.local import load_partner
from lacy.partners.rag import load_local_rag_partner, load_served_rag_partner
from lacy.render import format_marked, render_html, render_pdf

log = logging.getLogger(__name__)


def _settings(args: argparse.Namespace) -> CascadeSettings:
    alone = getattr(args, "partner_alone", False)  # `lacy generate` has no --partner-alone
    if args.call_rate is None and not alone:
        raise SystemExit("--call-rate is required (the paper's budget: 0.22 realised calls, §5.1)")
    call_rate = 1.0 if alone else args.call_rate  # the partner alone writes every token
    return CascadeSettings(call_rate=call_rate, max_new_tokens=args.max_new_tokens,
                           repetition_penalty=args.repetition_penalty, max_pieces=args.max_pieces,
                           partner_top_k=args.partner_top_k)


def partner_from_args(args: argparse.Namespace, entities: list[str | None]) -> CascadePartner:
    """The partner the options name (module docstring) for ``entities``; a served partner's key is checked here,
    before any request."""
    device = args.device or default_device()
    subjects = [e for e in entities if e is not None]
    if args.rag_base_url is None:
        if args.rag_knowledge:
            return load_local_rag_partner(args.partner, knowledge=args.rag_knowledge, entities=subjects,
                                          device=device)
        return load_partner(args.partner, device)
    if not args.rag_knowledge or args.cache_dir is None:
        raise SystemExit("a served RAG partner (--rag-base-url) needs --rag-knowledge and --cache-dir")
    return load_served_rag_partner(args.partner, base_url=args.rag_base_url, api_key_env=args.api_key_env,
                                   knowledge=args.rag_knowledge, entities=subjects, cache_dir=args.cache_dir)


def _run_generate(args: argparse.Namespace) -> None:
    partner = partner_from_args(args, [args.entity])
    slm, tokenizer = load_slm(args.model, args.device or default_device())
    record = cascade_records([args.prompt], [args.entity], slm, tokenizer, partner, _settings(args), 1)[0]
    colour = args.colour == "always" or (args.colour == "auto" and sys.stdout.isatty())
    print(format_marked(record, colour))
    print(f"({record['n_calls']} calls in {record['n_steps']} steps, call rate {record['call_rate']:.1%})")


def _run_cascade(args: argparse.Namespace) -> None:
    if args.partner_alone and args.model is not None:
        raise SystemExit("--partner-alone writes without the SLM: drop --model")
    if not args.partner_alone and args.model is None:
        raise SystemExit("lacy cascade needs --model (or --partner-alone)")
    if args.threads:
        torch.set_num_threads(args.threads)
    entity_records = read_entity_records(args.entities)
    if args.max_entities:
        entity_records = entity_records[: args.max_entities]
    entities = [e["entity"] for e in entity_records]
    partner = partner_from_args(args, entities)
    settings = _settings(args)
    prompts = [bio_prompt(e) for e in entities]
    if args.partner_alone:
        records = partner_alone_records(prompts, entities, partner, settings, args.batch_size)
        summary = {"model": None, "partner": partner.name, "partner_alone": True}
        title = f"{partner.name} alone"
    else:
        slm, tokenizer = load_slm(args.model, args.device or default_device())
        records = cascade_records(prompts, entities, slm, tokenizer, partner, settings, args.batch_size,
                                  args.partner_calls)
        summary = {"model": str(args.model), "partner": partner.name}
        title = f"{args.model} with cascade partner {partner.name}"
    records = [with_split(r, e) for r, e in zip(records, entity_records)]
    write_jsonl(args.out, records)
    summary = summarise(records, settings) | summary
    log.info("realised call rate %.1f%% (target %.1f%%)", 100 * summary["realised_call_rate"], 100 * settings.call_rate)
    if args.summary:
        write_json(args.summary, summary)
    if args.html:
        with atomic_output(args.html) as tmp:
            tmp.write_text(render_html(records, title))
    if args.pdf:
        render_pdf(records, args.pdf, title)


def _add_decoding_arguments(parser: argparse.ArgumentParser, model_required: bool = True) -> None:
    defaults = {f.name: f.default for f in fields(CascadeSettings)}
    parser.add_argument("--model", type=Path, required=model_required, default=None, help="trained SLM directory")
    parser.add_argument("--partner", default=GEMMA_GGUF,
                        help=f"cascade partner: transformers name or path, or {GEMMA_GGUF} (PyPI package)")
    parser.add_argument("--call-rate", type=float, default=None,
                        help="call budget: target share of decoding steps that call the partner (§5.1: 0.22; "
                             "required but with --partner-alone)")
    parser.add_argument("--max-new-tokens", type=int, required=True, help="§A.5: 256")
    parser.add_argument("--repetition-penalty", type=float, default=defaults["repetition_penalty"])
    parser.add_argument("--max-pieces", type=int, default=defaults["max_pieces"],
                        help="most of our pieces one partner token may map to")
    parser.add_argument("--partner-top-k", type=int, default=defaults["partner_top_k"],
                        help="partner candidates tried before falling back to the SLM's token")
    parser.add_argument("--device", default=None,
                        help="torch device of the SLM and a local partner (default: the GPU if there is one)")
    rag = parser.add_argument_group("RAG partner (§A.5, lacy.partners.rag): with --rag-knowledge alone the local "
                                    "--partner reads each subject's article in process; with --rag-base-url too, "
                                    "--partner names the served model, e.g. Qwen/Qwen3-32B")
    rag.add_argument("--rag-base-url", default=None,
                     help="OpenAI-compatible endpoint serving --partner (raw completions with logprobs)")
    rag.add_argument("--rag-knowledge", type=Path, nargs="+", default=None,
                     help="subjects' articles: FactScore's SQLite dump (*.db), JSONL {title, text}, or a corpus dir; "
                          "without --rag-base-url the local partner reads them")
    rag.add_argument("--api-key-env", default=None,
                     help="environment variable holding the endpoint's key (none: a keyless local server)")
    rag.add_argument("--cache-dir", type=Path, default=None, help="on-disk cache of the served partner's answers")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``generate`` (one prompt to the terminal) and ``cascade`` (biographies to JSONL)."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    gen = subparsers.add_parser("generate", help="one cascaded generation, partner tokens marked (§5.1)",
                                formatter_class=fmt)
    gen.add_argument("prompt")
    gen.add_argument("--entity", default=None, help="the prompt's subject (the RAG partner's background article)")
    _add_decoding_arguments(gen)
    gen.add_argument("--colour", choices=["auto", "always", "never"], default="auto",
                     help="ANSI colour for partner tokens (auto: on a terminal), else [brackets]")
    gen.set_defaults(func=_run_generate)

    cas = subparsers.add_parser("cascade", help="biography generations with a cascade partner (§5.2, §A.5)",
                                formatter_class=fmt)
    cas.add_argument("--entities", type=Path, required=True,
                     help="entities JSONL from 'lacy corpus entities' ({\"entity\": name, ...}), or one name per line")
    _add_decoding_arguments(cas, model_required=False)
    cas.add_argument("--partner-alone", action="store_true",
                     help="no SLM (no --model): the partner (plain, RAG, served RAG) writes every token after the "
                          "same prompt, greedy with the same repetition penalty and --max-new-tokens of its own tokens")
    cas.add_argument("--batch-size", type=int, required=True,
                     help="prompts per batched SLM pass (with --partner-alone: per batched partner pass)")
    cas.add_argument("--partner-calls", choices=PARTNER_CALLS, default=PARTNER_CALLS[0],
                     help="one partner pass for the calls of each step, or gathered until all sequences wait, or "
                          "one per call (same tokens; lacy.cascade docstring)")
    cas.add_argument("--max-entities", type=int, default=0, help="first N entities only (0: all)")
    cas.add_argument("--threads", type=int, default=0, help="CPU threads for PyTorch (0: its default)")
    cas.add_argument("--out", type=Path, required=True, help="JSONL, one generation per entity")
    cas.add_argument("--summary", type=Path, default=None, help="JSON: realised call rate and partner cases")
    cas.add_argument("--html", type=Path, default=None, help="HTML view with partner tokens highlighted (Figure 4)")
    cas.add_argument("--pdf", type=Path, default=None, help="the same view as PDF, one page per generation")
    cas.set_defaults(func=_run_cascade)
