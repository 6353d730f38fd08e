"""``lacy generate`` and ``lacy cascade``: the cascade of §5.1 / §A.5 from the command line, and the partner alone.

The partner (``lacy.partners``) is chosen by ``--partner`` and the RAG options:

* ``--partner P``: the local partner P (``lacy.partners.local``: a ``transformers`` model name or directory, or
  ``gemma3-270m-gguf``);
* ``--partner P --rag-knowledge K``: P in process, given each subject's article from K in a plain-text RAG prompt
  (``lacy.partners.rag.LocalRagPartner``; a deviation from §A.5's chat prompt for base models);
* ``--partner P --rag-knowledge K --rag-base-url URL``: the served RAG partner of §A.5, P behind an
  OpenAI-compatible completions endpoint (``lacy.partners.rag.ServedRagPartner``).

``lacy cascade --partner-alone`` lets the partner (any of the three) write every token of each biography from the
same prompt, without the SLM (the reference bars of §5.2), into records of the cascade's schema. The workflow's rules
call what ``lacy cascade`` calls, :func:`write_cascade`, with the partner's ``cascade.partners`` entry of the
configuration (:func:`load_cascade_partner`). The commands live apart from the cascade so that the cascade depends on
the partner interface only (``lacy.partners.base``)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from lacy.cascade import (PARTNER_CALLS, CascadeSettings, bio_prompt, cascade_records, load_slm,
                          partner_alone_records, read_entity_records, summarise, with_split)
from lacy.defaults import keyword_defaults
from lacy.distributed import default_device
from lacy.io import atomic_output, write_json, write_jsonl
from lacy.partners.base import CascadePartner
from lacy.local_models import GEMMA_GGUF
from lacy.partners.local import load_partner
from lacy.partners.rag import load_local_rag_partner, load_served_rag_partner
from lacy.render import format_marked, render_html, render_pdf

log = logging.getLogger(__name__)

#: :class:`CascadeSettings`' own values of the settings the workflow leaves to the package.
DEFAULTS = keyword_defaults(CascadeSettings)


def decoding_settings(call_rate: float | None, max_new_tokens: int, *, partner_alone: bool,
                      repetition_penalty: float = DEFAULTS["repetition_penalty"],
                      max_pieces: int = DEFAULTS["max_pieces"],
                      partner_top_k: int = DEFAULTS["partner_top_k"]) -> CascadeSettings:
    """The decoding settings of a cascade at call budget ``call_rate`` (§5.1: 0.22), or of the partner alone, which
    writes every token (call rate 1; ``call_rate`` unused). The one check that a cascade has its budget, for the
    commands and the workflow alike."""
    if call_rate is None and not partner_alone:
        raise ValueError("a cascade needs its call budget, a call rate (the paper's: 0.22 realised calls, §5.1)")
    return CascadeSettings(call_rate=1.0 if partner_alone else call_rate, max_new_tokens=max_new_tokens,
                           repetition_penalty=repetition_penalty, max_pieces=max_pieces, partner_top_k=partner_top_k)


def load_cascade_partner(spec: dict, *, knowledge: list[Path], entities: list[str | None], cache_dir: Path | None,
                         device: torch.device | str) -> CascadePartner:
    """The cascade partner a ``cascade.partners`` entry of the configuration names (§5.1, §A.5; module docstring):
    ``spec["model"]`` alone (no ``rag``); with ``rag``, the same model given each subject's article from
    ``knowledge`` (the files ``rag.knowledge`` names), in process, or with ``rag.base_url`` the served model of §A.5,
    its key read from the variable ``rag.api_key_env`` (checked here, before any request) and its answers cached in
    ``cache_dir``. Articles are read for ``entities`` only."""
    subjects = [e for e in entities if e is not None]
    if "rag" not in spec:
        return load_partner(spec["model"], device)
    rag = spec["rag"]
    if rag["base_url"] is None:
        return load_local_rag_partner(spec["model"], knowledge=knowledge, entities=subjects, device=device)
    if cache_dir is None:
        raise ValueError("a served RAG partner needs a cache directory for its answers")
    return load_served_rag_partner(spec["model"], base_url=rag["base_url"], api_key_env=rag["api_key_env"],
                                   knowledge=knowledge, entities=subjects, cache_dir=cache_dir)


def _partner_spec(args: argparse.Namespace) -> dict:
    """The ``cascade.partners`` entry the options name (without ``rag.knowledge``: the files are
    ``--rag-knowledge``; ``--partner-top-k`` stands for ``rag.top_logprobs``)."""
    if args.rag_base_url is not None and (not args.rag_knowledge or args.cache_dir is None):
        raise SystemExit("a served RAG partner (--rag-base-url) needs --rag-knowledge and --cache-dir")
    spec = {"model": args.partner}
    if args.rag_knowledge:
        spec["rag"] = {"base_url": args.rag_base_url, "api_key_env": args.api_key_env, "top_logprobs": None}
    return spec


def partner_from_args(args: argparse.Namespace, entities: list[str | None]) -> CascadePartner:
    """The partner the options name (module docstring) for ``entities`` (:func:`load_cascade_partner`)."""
    return load_cascade_partner(_partner_spec(args), knowledge=args.rag_knowledge, entities=entities,
                                cache_dir=args.cache_dir, device=args.device or default_device())


def _run_generate(args: argparse.Namespace) -> None:
    settings = decoding_settings(args.call_rate, args.max_new_tokens, partner_alone=False,
                                 repetition_penalty=args.repetition_penalty, max_pieces=args.max_pieces,
                                 partner_top_k=args.partner_top_k)
    partner = partner_from_args(args, [args.entity])
    slm, tokenizer = load_slm(args.model, args.device or default_device())
    record = cascade_records([args.prompt], [args.entity], slm, tokenizer, partner, settings, 1)[0]
    colour = args.colour == "always" or (args.colour == "auto" and sys.stdout.isatty())
    print(format_marked(record, colour))
    print(f"({record['n_calls']} calls in {record['n_steps']} steps, call rate {record['call_rate']:.1%})")


def write_cascade(entities: Path, partner: dict, *, model: Path | None, knowledge: list[Path], cache_dir: Path | None,
                  call_rate: float | None, max_new_tokens: int, batch_size: int,
                  partner_calls: str = PARTNER_CALLS[0], out: Path, summary: Path | None = None,
                  html: Path | None = None, pdf: Path | None = None, threads: int = 0, max_entities: int = 0,
                  device: torch.device | str | None = None,
                  repetition_penalty: float = DEFAULTS["repetition_penalty"], max_pieces: int = DEFAULTS["max_pieces"],
                  partner_top_k: int = DEFAULTS["partner_top_k"]) -> dict:
    """Biographies of the subjects in ``entities`` (§5.2, §B's prompt) written by the trained SLM ``model`` in a
    cascade with ``partner`` (§5.1, §A.5) at call budget ``call_rate``, or, with ``model`` None, by the partner alone
    (the paper's reference bars), into JSONL records ``out`` (each with its entity's split), and the ``summary`` JSON
    (realised call rate, partner cases), an ``html`` and a ``pdf`` view with the partner's tokens marked (Figure 4).

    ``partner`` is a ``cascade.partners`` entry (:func:`load_cascade_partner`, which reads its articles from
    ``knowledge`` and caches a served partner's answers in ``cache_dir``); a served RAG partner's ``rag.top_logprobs``,
    where set, is the number of candidates asked per call in place of ``partner_top_k``. The SLM decodes
    ``batch_size`` prompts at a time, the partner answering their calls as ``partner_calls`` says (the same tokens
    either way); ``threads`` CPU threads for PyTorch (0: its default), the first ``max_entities`` subjects (0: all),
    on ``device`` (None: the GPU if there is one). Returns the summary."""
    alone = model is None
    if threads:
        torch.set_num_threads(threads)
    device = device or default_device()
    entity_records = read_entity_records(entities)
    if max_entities:
        entity_records = entity_records[:max_entities]
    names = [e["entity"] for e in entity_records]
    served = "rag" in partner and partner["rag"]["base_url"] is not None
    if served and partner["rag"]["top_logprobs"] is not None:
        partner_top_k = partner["rag"]["top_logprobs"]
    settings = decoding_settings(call_rate, max_new_tokens, partner_alone=alone,
                                 repetition_penalty=repetition_penalty, max_pieces=max_pieces,
                                 partner_top_k=partner_top_k)
    cascade_partner = load_cascade_partner(partner, knowledge=knowledge, entities=names, cache_dir=cache_dir,
                                           device=device)
    prompts = [bio_prompt(e) for e in names]
    if alone:
        records = partner_alone_records(prompts, names, cascade_partner, settings, batch_size)
        about = {"model": None, "partner": cascade_partner.name, "partner_alone": True}
        title = f"{cascade_partner.name} alone"
    else:
        slm, tokenizer = load_slm(model, device)
        records = cascade_records(prompts, names, slm, tokenizer, cascade_partner, settings, batch_size,
                                  partner_calls)
        about = {"model": str(model), "partner": cascade_partner.name}
        title = f"{model} with cascade partner {cascade_partner.name}"
    records = [with_split(r, e) for r, e in zip(records, entity_records)]
    write_jsonl(out, records)
    result = summarise(records, settings) | about
    log.info("realised call rate %.1f%% (target %.1f%%)", 100 * result["realised_call_rate"], 100 * settings.call_rate)
    if summary:
        write_json(summary, result)
    if html:
        with atomic_output(html) as tmp:
            tmp.write_text(render_html(records, title))
    if pdf:
        render_pdf(records, pdf, title)
    return result


#: :func:`write_cascade`'s own values of the options ``lacy cascade`` leaves out.
WRITE_DEFAULTS = keyword_defaults(write_cascade)


def _run_cascade(args: argparse.Namespace) -> None:
    if args.partner_alone and args.model is not None:
        raise SystemExit("--partner-alone writes without the SLM: drop --model")
    if not args.partner_alone and args.model is None:
        raise SystemExit("lacy cascade needs --model (or --partner-alone)")
    write_cascade(args.entities, _partner_spec(args), model=args.model, knowledge=args.rag_knowledge, cache_dir=args.cache_dir,
                  call_rate=args.call_rate, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                  partner_calls=args.partner_calls, out=args.out, summary=args.summary, html=args.html, pdf=args.pdf,
                  threads=args.threads, max_entities=args.max_entities, device=args.device,
                  repetition_penalty=args.repetition_penalty, max_pieces=args.max_pieces,
                  partner_top_k=args.partner_top_k)


def _add_decoding_arguments(parser: argparse.ArgumentParser, model_required: bool = True) -> None:
    parser.add_argument("--model", type=Path, required=model_required, default=None, help="trained SLM directory")
    parser.add_argument("--partner", default=GEMMA_GGUF,
                        help=f"cascade partner: transformers name or path, or {GEMMA_GGUF} (PyPI package)")
    parser.add_argument("--call-rate", type=float, default=None,
                        help="call budget: target share of decoding steps that call the partner (§5.1: 0.22; "
                             "required but with --partner-alone)")
    parser.add_argument("--max-new-tokens", type=int, required=True, help="§A.5: 256")
    parser.add_argument("--repetition-penalty", type=float, default=DEFAULTS["repetition_penalty"])
    parser.add_argument("--max-pieces", type=int, default=DEFAULTS["max_pieces"],
                        help="most of our pieces one partner token may map to")
    parser.add_argument("--partner-top-k", type=int, default=DEFAULTS["partner_top_k"],
                        help="partner candidates tried before falling back to the SLM's token")
    parser.add_argument("--device", default=None,
                        help="torch device of the SLM and a local partner (default: the GPU if there is one)")
    rag = parser.add_argument_group("RAG partner (§A.5, lacy.partners.rag): with --rag-knowledge alone the local "
                                    "--partner reads each subject's article in process; with --rag-base-url too, "
                                    "--partner names the served model, e.g. Qwen/Qwen3-32B")
    rag.add_argument("--rag-base-url", default=None,
                     help="OpenAI-compatible endpoint serving --partner (raw completions with logprobs)")
    rag.add_argument("--rag-knowledge", type=Path, nargs="+", default=None,
                     help="subjects' articles: FactScore's SQLite dump (*.db), JSONL {title, text}, or a corpus dir "
                          "(or its corpus.json); "
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
    cas.add_argument("--partner-calls", choices=PARTNER_CALLS, default=WRITE_DEFAULTS["partner_calls"],
                     help="one partner pass for the calls of each step, or gathered until all sequences wait, or "
                          "one per call (same tokens; lacy.cascade docstring)")
    cas.add_argument("--max-entities", type=int, default=WRITE_DEFAULTS["max_entities"],
                     help="first N entities only (0: all)")
    cas.add_argument("--threads", type=int, default=WRITE_DEFAULTS["threads"],
                     help="CPU threads for PyTorch (0: its default)")
    cas.add_argument("--out", type=Path, required=True, help="JSONL, one generation per entity")
    cas.add_argument("--summary", type=Path, default=None, help="JSON: realised call rate and partner cases")
    cas.add_argument("--html", type=Path, default=None, help="HTML view with partner tokens highlighted (Figure 4)")
    cas.add_argument("--pdf", type=Path, default=None, help="the same view as PDF, one page per generation")
    cas.set_defaults(func=_run_cascade)
