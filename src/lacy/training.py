"""Pretraining one SLM with one token-selection method (§4, §5.1, §A.4, Tables 4 and 5).

One training step, for every method:

1. one forward pass gives the logits of a micro-batch;
2. from the same logits (detached) come the per-token losses that choose the masks, plus the reference
   model's losses for Rho-1 and spaCy+Refloss, computed online in the same step (§A.4.1);
3. ``lacy.masks.call_ignore_masks`` turns losses and labels into the call and ignore masks (Table 5);
4. ``lacy.losses.lacy_loss`` is Eq. A.3/A.4 on those masks; the context is never changed.

AdamW (weight decay 0.1), linear warmup then a constant learning rate, gradient accumulation (§A.4.1).
Checkpoints hold model, optimizer, scheduler and step; batches and random masks are functions of
``(seed, step, micro_step, rank)``, so a resumed run continues the uninterrupted one exactly.

``--export-at-fraction`` also publishes the model after that fraction of the steps (:class:`Export`): the
early checkpoint of the acceptability study (§C.1, Figure 8: "after training on 10B tokens" of ~50B).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import time
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lacy import distributed
from lacy.batches import Batch, TokenWindows
from lacy.io import atomic_output, partial_path, write_json
from lacy.losses import masked_loss, token_log_probs, true_token_losses
from lacy.masks import REFERENCE_METHODS, call_ignore_masks, realised_rates
from lacy.model import build_model, count_parameters, flops_per_token, load_trained

log = logging.getLogger(__name__)

#: Peak dense bf16 matmul throughput by GPU name, for model FLOPs utilisation (vendor data sheets).
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run's result depends on (Snakemake passes each value as a param). The values have
    no defaults here: the workflow's are in its config schema (lacy.plan.training_settings gathers them)."""

    method: str
    preset: str
    steps: int
    batch_size: int  # sequences per optimizer step, over all processes and accumulation steps
    grad_accum: int
    lr: float
    warmup: int
    context: int
    weight_decay: float
    grad_clip: float
    call_rate: float
    ignore_rate: float
    precision: str
    seed: int
    compile: bool
    checkpoint_every: int
    log_every: int
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW's, §A.4.1; not a setting of the workflow

    def fingerprint(self) -> str:
        """Identifies the run a checkpoint belongs to (logging cadence excluded)."""
        keys = asdict(self)
        for k in ("checkpoint_every", "log_every", "compile"):
            keys.pop(k)
        return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Export:
    """The model after ``step`` steps, saved at that step to ``kept`` in the run directory (which outlives a
    failed job) and published to ``out`` when the run ends: a run resumed past ``step`` publishes the kept
    copy, and fails if there is none, rather than silently going without."""

    step: int
    kept: Path
    out: Path
    tokenizer: Path


def export_step(steps: int, fraction: float) -> int:
    """The step ``--export-at-fraction`` saves: ``round(fraction * steps)``, at least 1."""
    if not 0 < fraction <= 1:
        raise ValueError(f"--export-at-fraction {fraction}: expected a fraction in (0, 1]")
    return max(1, round(fraction * steps))


def save_model_dir(path: Path, write) -> None:
    """``write(tmp)`` a model directory under a temporary name, then rename it to ``path`` (replacing it)."""
    tmp = partial_path(path)
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)


def save_export(model, export: Export, summary: dict) -> None:
    """The model as a loadable directory (weights, tokenizer, ``train.json``) at ``export.kept``."""
    from lacy.tokenizer import LacyTokenizer

    def write(tmp: Path) -> None:
        _unwrap(model).save_pretrained(tmp)
        LacyTokenizer.load(export.tokenizer).save_pretrained(tmp)
        write_json(tmp / "train.json", summary)

    save_model_dir(export.kept, write)
    log.info("step %d: kept the export in %s", export.step, export.kept)


class StopRequested(SystemExit):
    """SIGTERM / SIGUSR1 arrived (e.g. SLURM's time limit): checkpoint written; exit non-zero to be retried."""


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warmup to ``lr`` over ``warmup`` steps, then constant (§A.4.1: "warmup only")."""
    return config.lr * min(1.0, (step + 1) / max(1, config.warmup))


def micro_batch_size(config: TrainConfig, world_size: int) -> int:
    per_step = config.grad_accum * world_size
    if config.batch_size % per_step:
        raise ValueError(f"training.batch_size {config.batch_size} is not divisible by grad_accum "
                         f"{config.grad_accum} x {world_size} processes")
    return config.batch_size // per_step


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices and embeddings only, not on biases and LayerNorm gains."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = next(model.parameters()).is_cuda
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, fused=fused)


def autocast(config: TrainConfig, device: torch.device):
    """bf16 autocast keeps LayerNorm and the attention softmax in fp32 (§A.3); "fp32" disables it."""
    if config.precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@functools.cache
def compiled_token_log_probs():
    """``token_log_probs`` fused by ``torch.compile``: it avoids a float32 copy of the logits."""
    return torch.compile(token_log_probs)


def selection_losses(model, reference, batch: Batch, config: TrainConfig, call_id: int, device):
    """One forward pass: log-probabilities for the loss, the model's per-token losses (detached) that
    choose the masks, and the reference model's per-token losses where the method needs them."""
    with autocast(config, device):
        logits = model(batch.x).logits
    log_probs = (compiled_token_log_probs() if config.compile else token_log_probs)(logits, batch.y, call_id)
    losses = -log_probs.true_without_call.detach()
    ref_losses = None
    if reference is not None:
        with torch.no_grad(), autocast(config, device):
            ref_losses = true_token_losses(reference(batch.x).logits, batch.y, call_id)
    return log_probs, losses, ref_losses


def mask_generator(seed: int, step: int, micro: int, rank: int, device: torch.device) -> torch.Generator:
    """Randomness of loss_based and spacy masks, a function of the step like the batches are."""
    state = np.random.SeedSequence([seed, step, micro, rank, 1]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator(device=device).manual_seed(int(state) & (2**63 - 1))


def training_step(model, reference, windows: TokenWindows, optimizer, step: int, config: TrainConfig,
                  runtime: distributed.Runtime, micro_bs: int, call_id: int) -> dict:
    """One optimizer step over ``grad_accum`` micro-batches; returns loss and realised rates."""
    totals = torch.zeros(3, device=runtime.device)
    for micro in range(config.grad_accum):
        batch = windows.batch(micro_bs, step, micro, runtime.rank).to(runtime.device)
        sync = micro == config.grad_accum - 1 or not hasattr(model, "no_sync")
        with contextlib.nullcontext() if sync else model.no_sync():
            log_probs, losses, ref_losses = selection_losses(model, reference, batch, config, call_id, runtime.device)
            generator = mask_generator(config.seed, step, micro, runtime.rank, runtime.device)
            fact = batch.llm_judge if config.method == "llm_judge" else batch.fact
            call, ignore = call_ignore_masks(config.method, losses, fact, batch.grammatical, ref_losses=ref_losses,
                                             rate=config.call_rate, ignore_rate=config.ignore_rate,
                                             generator=generator, valid=batch.valid)
            loss = masked_loss(log_probs, call, ignore, batch.valid)
            (loss / config.grad_accum).backward()
        rates = realised_rates(call, ignore, batch.valid)
        totals += torch.stack([loss.detach().float(), torch.as_tensor(rates["call_rate"], device=runtime.device),
                               torch.as_tensor(rates["ignore_rate"], device=runtime.device)])
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(step, config)
    if config.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    loss, call_rate, ignore_rate = (distributed.all_reduce_mean(totals / config.grad_accum, runtime)).tolist()
    return {"step": step + 1, "loss": loss, "call_rate": call_rate, "ignore_rate": ignore_rate,
            "lr": learning_rate(step, config)}


def save_checkpoint(path: Path, model, optimizer, step: int, config: TrainConfig) -> None:
    """Everything needed to continue exactly: weights, optimizer state, step, run fingerprint."""
    state = {"model": _unwrap(model).state_dict(), "optimizer": optimizer.state_dict(), "step": step,
             "fingerprint": config.fingerprint(), "config": asdict(config)}
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, model, optimizer, config: TrainConfig) -> int:
    """Restore a checkpoint of this same run and return its step; 0 if there is none (or a stale one)."""
    if not path.is_file():
        return 0
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state["fingerprint"] != config.fingerprint():
        log.warning("%s belongs to a run with other settings; starting from scratch", path)
        return 0
    _unwrap(model).load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    log.info("resumed from %s at step %d", path, state["step"])
    return state["step"]


def _unwrap(model):
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), None)


def _install_stop_handlers() -> dict:
    requested = {"stop": False}

    def handler(signum, frame):
        requested["stop"] = True

    for sig in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, handler)
    return requested


def train(config: TrainConfig, windows: TokenWindows, tokenizer_meta: dict, out_dir: Path, checkpoint: Path,
          metrics_path: Path, reference_dir: Path | None = None, export: Export | None = None) -> dict:
    """Train ``config.method`` to ``config.steps`` steps, resuming from ``checkpoint`` if it exists.

    Writes the final model to ``out_dir`` with ``save_pretrained`` (and the ``export``, if any) and returns the
    run summary.
    """
    runtime = distributed.init_runtime()
    torch.manual_seed(config.seed)
    call_id = tokenizer_meta["call_id"]
    model = build_model(config.preset, tokenizer_meta["vocab_size"], config.context, call_id).to(runtime.device)
    n_params = count_parameters(model)
    if runtime.is_main:
        log.info("method %s, preset %s: %.2fM parameters (embeddings included), device %s x %d",
                 config.method, config.preset, n_params / 1e6, runtime.device, runtime.world_size)
    optimizer = make_optimizer(model, config)
    start = load_checkpoint(checkpoint, model, optimizer, config)
    if export and start >= export.step and not export.kept.is_dir():
        raise FileNotFoundError(f"resuming at step {start}, past the export step {export.step}, but its kept copy "
                                f"{export.kept} is missing; delete {checkpoint} to train again")
    reference = None
    if config.method in REFERENCE_METHODS:
        if reference_dir is None:
            raise ValueError(f"method {config.method!r} needs a reference model")
        reference = load_trained(reference_dir, runtime.device)
    if config.compile:
        model = torch.compile(model)
    model = distributed.wrap_model(model, runtime)
    micro_bs = micro_batch_size(config, runtime.world_size)
    tokens_per_step = config.batch_size * config.context
    flops = flops_per_token(_unwrap(model)) * tokens_per_step / runtime.world_size
    peak = peak_flops(runtime.device)

    def summary(steps: int) -> dict:
        return {"method": config.method, "preset": config.preset, "parameters": n_params, "steps": steps,
                "tokens": steps * tokens_per_step, "config": asdict(config)}

    stop = _install_stop_handlers()
    _truncate_metrics(metrics_path, start)
    progress = tqdm(total=config.steps, initial=start, desc=f"train {config.method}", unit="step",
                    disable=not runtime.is_main, mininterval=5)
    tick = time.perf_counter()
    for step in range(start, config.steps):
        record = training_step(model, reference, windows, optimizer, step, config, runtime, micro_bs, call_id)
        progress.update(1)
        if record["step"] % config.log_every == 0 or record["step"] == config.steps:
            if runtime.device.type == "cuda":
                torch.cuda.synchronize()
            seconds = (time.perf_counter() - tick) / config.log_every
            tick = time.perf_counter()
            record["tokens_per_s"] = tokens_per_step / seconds
            if peak:
                record["mfu"] = flops / seconds / peak
            progress.set_postfix(loss=f"{record['loss']:.3f}", call=f"{record['call_rate']:.3f}")
            if runtime.is_main:
                _append_metrics(metrics_path, record)
        if not math.isfinite(record["loss"]):
            raise FloatingPointError(f"loss is {record['loss']} at step {record['step']}")
        if runtime.is_main and export and record["step"] == export.step:  # before the checkpoint that passes it
            save_export(model, export, {**summary(export.step), "of_steps": config.steps})
        if runtime.is_main and (record["step"] % config.checkpoint_every == 0 or stop["stop"]):
            save_checkpoint(checkpoint, model, optimizer, record["step"], config)
        if stop["stop"]:
            raise StopRequested(f"stopped at step {record['step']}; checkpoint {checkpoint}")
    progress.close()
    if runtime.is_main:
        _unwrap(model).save_pretrained(out_dir)
        save_checkpoint(checkpoint, model, optimizer, config.steps, config)
        if export:
            save_model_dir(export.out, lambda tmp: shutil.copytree(export.kept, tmp))
    distributed.barrier(runtime)
    distributed.shutdown(runtime)
    return summary(config.steps)


def _append_metrics(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def _truncate_metrics(path: Path, step: int) -> None:
    """Keep the metrics logged up to the resumed ``step`` so the curve continues without duplicates."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    with atomic_output(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in kept))


def add_train_arguments(parser) -> None:
    """``lacy train`` options: data locations, then one option per ``TrainConfig`` field."""
    parser.add_argument("--annotation", type=Path, required=True, help="annotation directory (token shards)")
    parser.add_argument("--tokenizer", type=Path, required=True, help="tokenizer directory")
    parser.add_argument("--llm-judge", type=Path, default=None, help="LLM-judge label directory (llm_judge)")
    parser.add_argument("--reference", type=Path, default=None, help="reference model (rho1, spacy_refloss)")
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for PyTorch (0: its default)")
    parser.add_argument("--run-dir", type=Path, required=True,
                        help="rolling checkpoint and metrics, kept outside the rule's outputs so a killed job "
                             "resumes on retry")
    parser.add_argument("--export-at-fraction", type=float, default=None,
                        help="also publish the model after this fraction of the steps (with --export-dir)")
    parser.add_argument("--export-dir", type=Path, default=None, help="directory of --export-at-fraction's model")
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "betas":
            parser.add_argument(flag, type=float, nargs=2, default=defaults[f.name])
        elif f.type in ("bool", bool):  # a flag: absent is off
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=False)
        else:
            kind = {"int": int, "float": float, "str": str}[str(f.type)]
            parser.add_argument(flag, type=kind, required=f.name not in defaults, default=defaults.get(f.name))


@contextlib.contextmanager
def attempt_log(run_dir: Path):
    """Log this attempt (a SLURM job, its retry, a rerun) to its own file in ``run_dir/attempts/``, beside the
    checkpoint it resumes from: Snakemake deletes a job's declared log before a retry, this one stays."""
    job = os.environ.get("SLURM_JOB_ID")
    rank = os.environ.get("RANK", "0")
    name = time.strftime("%Y%m%dT%H%M%S") + (f"-slurm{job}" if job else f"-pid{os.getpid()}")
    path = run_dir / "attempts" / (name + (f"-rank{rank}" if rank != "0" else "") + ".log")
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    log.info("attempt on %s%s; its log: %s", os.uname().nodename, f", SLURM job {job}" if job else "", path)
    try:
        yield path
    except BaseException as err:
        log.error("attempt ended: %r", err, exc_info=not isinstance(err, SystemExit))
        raise
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def run_training(args) -> dict:
    """``lacy train``: build the config and data, train, and publish the model with its metrics."""
    from lacy.batches import read_tokenizer_meta
    from lacy.tokenizer import LacyTokenizer

    config = TrainConfig(**{f.name: (tuple(v) if isinstance(v := getattr(args, f.name), list) else v)
                            for f in fields(TrainConfig)})
    if args.threads:
        torch.set_num_threads(args.threads)
    meta = read_tokenizer_meta(args.tokenizer)
    windows = TokenWindows.from_directory(args.annotation, "train", config.context, config.seed,
                                          llm_judge_dir=args.llm_judge if config.method == "llm_judge" else None)
    if (args.export_at_fraction is None) != (args.export_dir is None):
        raise ValueError("--export-at-fraction and --export-dir go together")
    export = None
    if args.export_at_fraction is not None:
        step = export_step(config.steps, args.export_at_fraction)
        # named by the run's fingerprint: a copy kept by a run with other settings is never published
        export = Export(step, args.run_dir / f"model-step{step}-{config.fingerprint()}", args.export_dir,
                        args.tokenizer)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    metrics = args.run_dir / "metrics.jsonl"
    with attempt_log(args.run_dir):
        summary = train(config, windows, meta, args.out, args.run_dir / "latest.pt", metrics, args.reference, export)
    LacyTokenizer.load(args.tokenizer).save_pretrained(args.out)
    shutil.copyfile(metrics, args.out / "metrics.jsonl")
    write_json(args.out / "train.json", summary)
    return summary
