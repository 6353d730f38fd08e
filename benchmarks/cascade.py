"""Throughput of the KV-cached cascade, its partner calls batched across sequences or made one sequence at a time,
against the full-prefix loop (§5.1, §A.5), with identical outputs.

The SLM is a trained model directory (``--model``) or, if none is given, an untrained ``cpu-small`` GPT-2 with a
SentencePiece tokenizer trained on the embedded Wikipedia leads; an untrained model's ``<CALL>`` logit is noise,
and the call budget still forces calls at the target rate. The partner defaults to the real Gemma-3-270M.
Prints one JSON object, with the machine (CPU, torch threads, load average before and after: on a shared machine
the ratios of the timings are the robust numbers). The partner's forward passes are counted and timed apart.

    python benchmarks/cascade.py --prompts 4 --max-new-tokens 256
    python benchmarks/cascade.py --prompts 8 --max-new-tokens 128 --call-rate 0.22 --no-full-prefix \
        --partner-calls step sequence gather
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
import transformers

from lacy.cascade import PARTNER_CALLS, CascadeSettings, bio_prompt, generate_cached, generate_naive, load_slm
from lacy.local_models import GEMMA_GGUF
from lacy.partners.local import load_partner

ENTITIES = ["Ada Lovelace", "Wolfgang Amadeus Mozart", "Marie Curie", "Alan Turing", "Isaac Newton",
            "Frida Kahlo", "Nelson Mandela", "Emmy Noether"]


def untrained_slm(context: int, vocab_size: int):
    """An untrained ``cpu-small`` SLM and a tokenizer trained on the embedded Wikipedia leads."""
    from lacy.corpus.wiki_offline import read_wiki_offline
    from lacy.model import build_model
    from lacy.tokenizer import LacyTokenizer, train_sentencepiece

    out = Path(tempfile.mkdtemp(prefix="lacy-bench-"))
    train_sentencepiece((r["text"] for r in read_wiki_offline(max_documents=3000)), out, vocab_size)
    tokenizer = LacyTokenizer.load(out)
    torch.manual_seed(0)
    return build_model("cpu-small", tokenizer.vocab_size, context, tokenizer.call_id).eval(), tokenizer


def machine() -> dict:
    """CPU model, core count and library versions."""
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.exists() else []
    return {"cpu": names[0] if names else platform.processor(), "cores": os.cpu_count(), "torch": torch.__version__,
            "transformers": transformers.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="trained SLM directory (default: untrained)")
    parser.add_argument("--partner", default=GEMMA_GGUF)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--call-rate", type=float, default=0.15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--partner-calls", nargs="+", choices=PARTNER_CALLS, default=["step", "sequence"],
                        help="cached runs in the order given: one partner pass per decoding step (step), calls "
                             "gathered until all sequences wait (gather), one pass per call (sequence)")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each cached mode, the fastest reported")
    parser.add_argument("--no-full-prefix", action="store_true", help="skip the (slow) full-prefix loop")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    slm, tokenizer = load_slm(args.model) if args.model else untrained_slm(512, 4000)
    start = time.perf_counter()
    partner = load_partner(args.partner)
    load_s = time.perf_counter() - start
    settings = CascadeSettings(call_rate=args.call_rate, max_new_tokens=args.max_new_tokens)
    prompts = [bio_prompt(e) for e in (ENTITIES * args.prompts)[: args.prompts]]
    load_before = os.getloadavg()[0]

    counts = {"partner_forwards": 0, "partner_rows": 0, "partner_s": 0.0, "slm_passes": 0}
    next_token_logits, slm_forward = partner.next_token_logits, slm.forward

    def timed(sessions, texts):
        start = time.perf_counter()
        logits = next_token_logits(sessions, texts)
        counts["partner_forwards"] += 1
        counts["partner_rows"] += len(sessions)
        counts["partner_s"] += time.perf_counter() - start
        return logits

    def counted(*a, **kw):
        counts["slm_passes"] += 1
        return slm_forward(*a, **kw)

    partner.next_token_logits, slm.forward = timed, counted
    runs = {}
    modes = args.partner_calls
    for round_ in range(args.rounds):  # each round starts with the next mode, so no mode always runs first
        for mode in modes[round_ % len(modes):] + modes[:round_ % len(modes)]:
            counts.update(partner_forwards=0, partner_rows=0, partner_s=0.0, slm_passes=0)
            start = time.perf_counter()
            seqs = generate_cached(prompts, slm, tokenizer, partner, settings, partner_calls=mode)
            run = {"seqs": seqs, "s": time.perf_counter() - start} | counts
            if mode not in runs or run["s"] < runs[mode]["s"]:
                runs[mode] = run
    if not args.no_full_prefix:
        start = time.perf_counter()
        runs["full_prefix"] = {"seqs": [generate_naive(p, slm, tokenizer, partner, settings) for p in prompts],
                               "s": time.perf_counter() - start}

    first = modes[0]
    cached = runs[first]["seqs"]
    for mode, run in runs.items():
        for c, other in zip(cached, run["seqs"]):
            assert c.ids == other.ids and c.sources == other.sources, f"{first} and {mode} differ for {c.prompt!r}"
    tokens = sum(len(s.ids) - s.n_prompt for s in cached)
    calls = sum(s.budget.calls for s in cached)
    timings = {}
    for mode, run in runs.items():
        timings[f"{mode}_s"] = round(run["s"], 2)
        timings[f"{mode}_tokens_per_s"] = round(tokens / run["s"], 2)
        for key in sorted(counts.keys() & run.keys()):
            timings[f"{mode}_{key}"] = round(run[key], 2)
    print(json.dumps({
        "slm": str(args.model or "untrained cpu-small"), "slm_parameters": sum(p.numel() for p in slm.parameters()),
        "partner": args.partner, "partner_load_s": round(load_s, 1), "prompts": len(prompts),
        "max_new_tokens": args.max_new_tokens, "rounds": args.rounds, "generated_tokens": tokens, "calls": calls,
        "realised_call_rate": calls / sum(s.budget.steps for s in cached), "threads": args.threads,
    } | timings | {
        # time of each other run over the first run's: the speed-up of the first
        "speedup_over": {mode: round(run["s"] / runs[first]["s"], 2) for mode, run in runs.items() if mode != first},
        "partner_speedup_over": {mode: round(run["partner_s"] / runs[first]["partner_s"], 2)
                                 for mode, run in runs.items() if mode != first and "partner_s" in run},
        "identical_outputs": True,
        "machine": machine() | {"load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]},
    }, indent=2))


if __name__ == "__main__":
    main()
