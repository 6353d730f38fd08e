"""CPU training steps with glibc's default allocator thresholds vs. ``lacy.cli.retain_freed_memory`` (every
``lacy`` command applies it).

Each setting runs in its own process (the thresholds are process-wide), the two alternate for ``--rounds``
rounds, and the best round of each is reported with its user and kernel CPU time per step. Prints JSON.

    python benchmarks/cpu_allocator.py                        # cpu-small, LaCy loss, one thread
    python benchmarks/cpu_allocator.py --method baseline --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import FIXED_SETTINGS, WORKFLOW_TRAINING, synthetic_windows  # noqa: E402  (train_step.py's batches)

from lacy.cli import retain_freed_memory  # noqa: E402
from lacy.distributed import init_runtime  # noqa: E402
from lacy.model import build_model  # noqa: E402
from lacy.training import TrainConfig, make_optimizer, training_step  # noqa: E402


def measure(args: argparse.Namespace) -> dict:
    """Seconds, user and kernel CPU seconds per training step in this process."""
    torch.set_num_threads(args.threads)
    retained = retain_freed_memory() if args.retain else False
    runtime = init_runtime()
    vocab, call_id = args.vocab, args.vocab - 1
    model = build_model(args.preset, vocab, args.context, call_id)
    config = TrainConfig(method=args.method, preset=args.preset, steps=args.steps + 3, batch_size=args.micro_batch,
                         grad_accum=1, lr=1e-3, warmup=1, context=args.context, precision="fp32", seed=0,
                         **{k: v for k, v in WORKFLOW_TRAINING.items() if k in FIXED_SETTINGS})
    optimizer = make_optimizer(model, config)
    windows = synthetic_windows(vocab, args.context)
    for step in range(3):
        training_step(model, None, windows, optimizer, step, config, runtime, args.micro_batch, call_id)
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for step in range(3, 3 + args.steps):
        training_step(model, None, windows, optimizer, step, config, runtime, args.micro_batch, call_id)
    seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return {"retained": retained, "step_s": seconds / args.steps,
            "user_s": (after.ru_utime - before.ru_utime) / args.steps,
            "kernel_s": (after.ru_stime - before.ru_stime) / args.steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-small")
    parser.add_argument("--vocab", type=int, default=8001, help="ids incl. <CALL> (the default config's)")
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--micro-batch", type=int, default=16)
    parser.add_argument("--method", default="lacy")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--retain", action="store_true", help=argparse.SUPPRESS)  # one measuring child process
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    runs: dict[str, list[dict]] = {"default": [], "retained": []}
    for _ in range(args.rounds):
        for name, extra in (("default", []), ("retained", ["--retain"])):
            out = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--child", *extra], check=True,
                                 capture_output=True, text=True).stdout
            runs[name].append(json.loads(out.strip().splitlines()[-1]))
    best = {name: min(rounds, key=lambda r: r["step_s"]) for name, rounds in runs.items()}
    print(json.dumps({
        "benchmark": "cpu_allocator", "preset": args.preset, "method": args.method, "threads": args.threads,
        "micro_batch_x_context": [args.micro_batch, args.context], "vocab": args.vocab, "steps": args.steps,
        "rounds": args.rounds, "machine": {"cpu": platform.processor() or platform.machine(),
                                           "cores": os.cpu_count(), "torch": torch.__version__,
                                           "load_avg": os.getloadavg()},
        "default": best["default"], "retained": best["retained"],
        "speedup": best["default"]["step_s"] / best["retained"]["step_s"],
    }, indent=2))


if __name__ == "__main__":
    main()
