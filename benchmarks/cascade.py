"""Throughput of the KV-cached cascade against the full-prefix loop (§5.1, §A.5), with identical outputs.

The SLM is a trained model directory (``--model``) or, if none is given, an untrained ``cpu-small`` GPT-2 with a
SentencePiece tokenizer trained on the embedded Wikipedia leads; an untrained model's ``<CALL>`` logit is noise,
and the call budget still forces calls at the target rate. The partner defaults to the real Gemma-3-270M.
Prints one JSON object, with the machine (CPU, torch threads, load average before and after: on a shared machine
the ratio of the two timings is the robust number).

    python benchmarks/cascade.py --prompts 4 --max-new-tokens 256
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

from lacy.cascade import (GEMMA_GGUF, CascadeSettings, bio_prompt, generate_cached, generate_naive, load_partner,
                          load_slm)

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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    slm, tokenizer = load_slm(args.model) if args.model else untrained_slm(512, 4000)
    start = time.perf_counter()
    partner = load_partner(args.partner)
    load_s = time.perf_counter() - start
    settings = CascadeSettings(call_rate=args.call_rate, max_new_tokens=args.max_new_tokens)
    prompts = [bio_prompt(e) for e in (ENTITIES * args.prompts)[: args.prompts]]
    load_before = os.getloadavg()[0]

    start = time.perf_counter()
    cached = generate_cached(prompts, slm, tokenizer, partner, settings)
    cached_s = time.perf_counter() - start
    start = time.perf_counter()
    naive = [generate_naive(p, slm, tokenizer, partner, settings) for p in prompts]
    naive_s = time.perf_counter() - start

    for c, n in zip(cached, naive):
        assert c.ids == n.ids and c.sources == n.sources, f"cached and full-prefix outputs differ for {c.prompt!r}"
    tokens = sum(len(s.ids) - s.n_prompt for s in cached)
    calls = sum(s.budget.calls for s in cached)
    print(json.dumps({
        "slm": str(args.model or "untrained cpu-small"), "slm_parameters": sum(p.numel() for p in slm.parameters()),
        "partner": args.partner, "partner_load_s": round(load_s, 1), "prompts": len(prompts),
        "max_new_tokens": args.max_new_tokens, "generated_tokens": tokens, "calls": calls,
        "realised_call_rate": calls / sum(s.budget.steps for s in cached), "threads": args.threads,
        "cached_s": round(cached_s, 2), "full_prefix_s": round(naive_s, 2),
        "cached_tokens_per_s": round(tokens / cached_s, 2), "full_prefix_tokens_per_s": round(tokens / naive_s, 2),
        "speedup": round(naive_s / cached_s, 2), "identical_outputs": True,
        "machine": machine() | {"load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]},
    }, indent=2))


if __name__ == "__main__":
    main()
