"""Where a CPU training step goes, and what a smaller vocabulary buys (the embedded default's budget, §5.1).

One run, alternating rounds: a LaCy training step (``lacy.training.training_step``) of the CPU preset at each
vocabulary size, and the output layer alone (tied embedding matrix, log-softmax and its backward) on the
hidden states of the same batch. Prints JSON: tokens/s per thread at each size, the output layer's share of a
step, and the step-time ratio between the sizes.

    python benchmarks/cpu_vocab.py                     # 8,001 vs 4,001 ids, one thread
    python benchmarks/cpu_vocab.py --vocab 8001 2001 --threads 2
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from lacy.distributed import init_runtime
from lacy.model import build_model, count_parameters
from lacy.training import TrainConfig, make_optimizer
from train_step import FIXED_SETTINGS, WORKFLOW_TRAINING, synthetic_windows, time_steps


def head_seconds(model, micro: int, context: int, steps: int) -> float:
    """Seconds of the output layer alone per step: logits from the tied embeddings, log-softmax, backward."""
    weight = model.get_output_embeddings().weight
    hidden = torch.randn(micro, context, weight.shape[1], requires_grad=True)
    targets = torch.randint(0, weight.shape[0], (micro, context))
    start = time.perf_counter()
    for _ in range(steps):
        logits = hidden @ weight.T
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten()).backward()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-small")
    parser.add_argument("--vocab", type=int, nargs="+", default=[8001, 4001], help="ids incl. <CALL>")
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--micro-batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runtime = init_runtime()
    setups = {}
    for vocab in args.vocab:
        config = TrainConfig(method="lacy", preset=args.preset, steps=10**9, batch_size=args.micro_batch, grad_accum=1,
                             lr=1e-3, warmup=10, context=args.context, precision="fp32", compile=False, seed=0,
                             **{k: v for k, v in WORKFLOW_TRAINING.items() if k in FIXED_SETTINGS and k != "compile"})
        torch.manual_seed(0)
        model = build_model(args.preset, vocab, args.context, vocab - 1)
        setups[vocab] = (config, model, make_optimizer(model, config), synthetic_windows(vocab, args.context, 400_000))
    step_s = {vocab: [] for vocab in args.vocab}
    head_s = {vocab: [] for vocab in args.vocab}
    for _ in range(args.rounds):
        for vocab, (config, model, optimizer, windows) in setups.items():
            step_s[vocab].append(time_steps("lacy", model, optimizer, windows, config, runtime, args.micro_batch,
                                            vocab - 1, args.steps))
            head_s[vocab].append(head_seconds(model, args.micro_batch, args.context, args.steps))
    tokens = args.micro_batch * args.context
    result = {"device": platform.processor() or "cpu", "torch": torch.__version__, "threads": args.threads,
              "preset": args.preset, "context": args.context, "micro_batch": args.micro_batch, "sizes": {}}
    for vocab, (_, model, _, _) in setups.items():
        step, head = min(step_s[vocab]), min(head_s[vocab])
        result["sizes"][str(vocab)] = {"parameters": count_parameters(model), "step_s": step,
                                       "tokens_per_s_per_thread": tokens / step / args.threads,
                                       "output_layer_share": head / step}
    first, last = (str(v) for v in (args.vocab[0], args.vocab[-1]))
    result[f"step_time_{first}_over_{last}"] = result["sizes"][first]["step_s"] / result["sizes"][last]["step_s"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
