"""The small language model: a GPT-2 style decoder (§5.1, §A.3, Table 3).

We train ``transformers``' ``GPT2LMHeadModel`` directly — one model definition, which lm-eval, the cascade and
any user load with ``AutoModelForCausalLM.from_pretrained`` — rather than a private module plus an exporter.
It is the architecture of Table 3: pre-LayerNorm blocks, learned positions, a GELU MLP of 4x the width and
input/output embeddings tied; attention runs through PyTorch's fused scaled-dot-product attention.

The vocabulary is the SentencePiece vocabulary plus ``<CALL>`` (32,001 in the paper); ``<CALL>`` is the last id.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel


@dataclass(frozen=True)
class ModelShape:
    """Width, heads and depth of a preset; the vocabulary and context come from the data."""

    n_embd: int
    n_head: int
    n_layer: int


#: Table 3 (``medium``: 334M, ``xl``: 1.27B with a 32,001-id vocabulary, context 1,024) and CPU-sized presets
#: for the embedded default (their speed on CPU: ``benchmarks/RESULTS.md``).
PRESETS = {
    "medium": ModelShape(n_embd=1024, n_head=16, n_layer=24),
    "xl": ModelShape(n_embd=2048, n_head=16, n_layer=24),
    "cpu-small": ModelShape(n_embd=128, n_head=4, n_layer=4),
    "cpu-reference": ModelShape(n_embd=192, n_head=6, n_layer=6),
    "test-tiny": ModelShape(n_embd=32, n_head=2, n_layer=2),
}


def gpt2_config(preset: str, vocab_size: int, context: int, call_id: int) -> GPT2Config:
    """A ``GPT2Config`` for ``preset``; dropout is off (pretraining on ~16 epochs of clean data, §5.1)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; choose one of {sorted(PRESETS)}")
    if call_id != vocab_size - 1:
        raise ValueError(f"<CALL> must be the last id: call_id {call_id}, vocab_size {vocab_size}")
    shape = PRESETS[preset]
    return GPT2Config(
        vocab_size=vocab_size,
        n_positions=context,
        n_ctx=context,
        **asdict(shape),
        n_inner=4 * shape.n_embd,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=None,
        call_token_id=call_id,
    )


def build_model(preset: str, vocab_size: int, context: int, call_id: int) -> GPT2LMHeadModel:
    """A freshly initialised model of ``preset`` with fused SDPA attention."""
    config = gpt2_config(preset, vocab_size, context, call_id)
    config._attn_implementation = "sdpa"
    return GPT2LMHeadModel(config)


def load_trained(model_dir, device: torch.device | str = "cpu") -> GPT2LMHeadModel:
    """A trained SLM or the reference model (``results/models/{run}/seed{seed}``) on ``device`` in float32, for
    inference: evaluation mode, no gradients."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device).eval()
    model.requires_grad_(False)
    return model


def count_parameters(model) -> int:
    """Parameters with the (tied) embeddings counted once, as Table 3 counts them."""
    return sum(p.numel() for p in model.parameters())


def flops_per_token(model) -> float:
    """Training FLOPs per token: 6 N plus attention's 12 L d T (Kaplan et al. 2020; PaLM appendix B)."""
    config = model.config
    return 6 * count_parameters(model) + 12 * config.n_layer * config.n_embd * config.n_positions
