"""Cost of LaCy's token selection: one training step of the baseline loss vs. the LaCy loss (§4, §5.6).

Same model, same batches, in one run; prints JSON with tokens/s, model FLOPs utilisation (on GPUs whose
peak we know) and the LaCy/baseline step-time ratio (target: at most 1.03).

    python benchmarks/train_step.py                      # GPU: the 334M `medium` preset in bf16
    python benchmarks/train_step.py --preset cpu-small   # CPU
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from lacy import FACT, GRAMMATICAL, OTHER
from lacy.batches import Shard, TokenWindows
from lacy.model import build_model, count_parameters, flops_per_token
from lacy.training import TrainConfig, make_optimizer, peak_flops, training_step
from lacy.distributed import init_runtime
from lacy.config import load_schema, schema_defaults

#: The workflow's training settings (its config schema's defaults) that a benchmark does not vary.
WORKFLOW_TRAINING = schema_defaults(load_schema(Path(__file__).parents[1] / "workflow/schemas/config.schema.yaml"),
                                    "training")
FIXED_SETTINGS = ("weight_decay", "grad_clip", "call_rate", "ignore_rate", "compile", "checkpoint_every", "log_every")


def synthetic_windows(vocab: int, context: int, n_tokens: int = 4_000_000) -> TokenWindows:
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, vocab - 1, n_tokens).astype(np.uint16 if vocab <= 65536 else np.uint32)
    labels = rng.choice([OTHER, GRAMMATICAL, FACT], n_tokens, p=[0.45, 0.3, 0.25]).astype(np.uint8)
    doc_start = np.zeros(n_tokens, dtype=bool)
    doc_start[:: 700] = True
    return TokenWindows([Shard(tokens, labels, doc_start, None)], context, seed=0)


def time_steps(method, model, optimizer, windows, config, runtime, micro_bs, call_id, steps):
    config = TrainConfig(**{**vars(config), "method": method})
    for step in range(3):  # warm-up (and compilation)
        training_step(model, None, windows, optimizer, step, config, runtime, micro_bs, call_id)
    if runtime.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for step in range(steps):
        training_step(model, None, windows, optimizer, 3 + step, config, runtime, micro_bs, call_id)
    if runtime.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None, help="default: medium on GPU, cpu-small on CPU")
    parser.add_argument("--vocab", type=int, default=None, help="ids incl. <CALL> (default 32001 / 8001)")
    parser.add_argument("--context", type=int, default=None)
    parser.add_argument("--micro-batch", type=int, default=None)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="alternating baseline/LaCy rounds")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None)
    args = parser.parse_args()
    runtime = init_runtime()
    gpu = runtime.device.type == "cuda"
    preset = args.preset or ("medium" if gpu else "cpu-small")
    vocab = args.vocab or (32001 if gpu else 8001)
    context = args.context or (1024 if gpu else 128)
    micro = args.micro_batch or (16 if gpu else 16)
    compile_ = args.compile if args.compile is not None else gpu
    config = TrainConfig(method="baseline", preset=preset, steps=10**9, batch_size=micro, grad_accum=1, lr=2e-4,
                         warmup=10, context=context, precision="bf16" if gpu else "fp32", compile=compile_, seed=0,
                         **{k: v for k, v in WORKFLOW_TRAINING.items() if k in FIXED_SETTINGS and k != "compile"})
    torch.manual_seed(0)
    model = build_model(preset, vocab, context, vocab - 1).to(runtime.device)
    optimizer = make_optimizer(model, config)
    n_params = count_parameters(model)
    flops = flops_per_token(model)
    if compile_:
        model = torch.compile(model)
    windows = synthetic_windows(vocab, context)
    times = {"baseline": [], "lacy": []}
    for _ in range(args.rounds):
        for method in times:
            times[method].append(time_steps(method, model, optimizer, windows, config, runtime, micro, vocab - 1,
                                            args.steps))
    tokens = micro * context
    result = {"device": torch.cuda.get_device_name() if gpu else platform.processor() or "cpu",
              "torch": torch.__version__, "preset": preset, "parameters": n_params, "vocab": vocab,
              "context": context, "micro_batch": micro, "precision": config.precision, "compile": compile_,
              "threads": torch.get_num_threads()}
    peak = peak_flops(runtime.device)
    for method, samples in times.items():
        best = min(samples)
        result[f"{method}_step_s"] = best
        result[f"{method}_tokens_per_s"] = tokens / best
        if peak:
            result[f"{method}_mfu"] = flops * tokens / best / peak
    result["lacy_over_baseline_step_time"] = result["lacy_step_s"] / result["baseline_step_s"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
