"""Training and validation batches from the annotated token shards (§5.1, §A.4).

The annotation stage writes, per shard, memory-mapped ``tokens``, ``labels`` (fact / grammatical / other,
§A.2.1) and document offsets; the LLM-judge stage adds per-token CALL labels (§A.2.2). A batch is a set of
windows of ``context + 1`` consecutive tokens. Documents are packed back to back, as in GPT-2 pretraining;
the first token of a document is never a target (its context belongs to another document), so those
positions are invalid: never called, ignored or trained.

Every batch is a pure function of ``(seed, step, micro_step, rank)``: a resumed run draws exactly the batches
the uninterrupted run would have drawn, without saving any sampler state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lacy import FACT, GRAMMATICAL


@dataclass
class Batch:
    """Inputs ``x`` and targets ``y`` [B, T]; label masks describe the *targets*."""

    x: torch.Tensor
    y: torch.Tensor
    fact: torch.Tensor
    grammatical: torch.Tensor
    valid: torch.Tensor
    llm_judge: torch.Tensor | None = None

    def to(self, device: torch.device) -> "Batch":
        moved = {k: (v.to(device, non_blocking=True) if v is not None else None) for k, v in vars(self).items()}
        return Batch(**moved)


@dataclass
class Shard:
    tokens: np.ndarray
    labels: np.ndarray
    doc_start: np.ndarray  # bool per token: first token of a document
    llm_judge: np.ndarray | None


def open_shard(prefix: Path, llm_judge_dir: Path | None = None) -> Shard:
    """Memory-map one annotated shard (``<prefix>.tokens.npy`` ...), checking that its arrays align."""
    prefix = Path(prefix)
    tokens = np.load(f"{prefix}.tokens.npy", mmap_mode="r")
    labels = np.load(f"{prefix}.labels.npy", mmap_mode="r")
    docs = np.load(f"{prefix}.docs.npy")
    if len(tokens) != len(labels) or (len(docs) and docs[-1] != len(tokens)):
        raise ValueError(f"{prefix}: tokens ({len(tokens)}), labels ({len(labels)}) and document offsets "
                         f"(end {docs[-1] if len(docs) else None}) disagree; rerun its annotation job")
    doc_start = np.zeros(len(tokens), dtype=bool)
    doc_start[docs[:-1][docs[:-1] < len(tokens)]] = True
    calls = None
    if llm_judge_dir is not None:
        calls = np.load(Path(llm_judge_dir) / f"{prefix.name}.calls.npy", mmap_mode="r")
        if len(calls) != len(tokens):
            raise ValueError(f"{llm_judge_dir}/{prefix.name}.calls.npy has {len(calls)} labels for "
                             f"{len(tokens)} tokens")
    return Shard(tokens=tokens, labels=labels, doc_start=doc_start, llm_judge=calls)


def shard_prefixes(annotation_dir: Path, split: str) -> list[Path]:
    """Prefixes of the annotated shards of ``split``, in shard order."""
    stats = sorted((Path(annotation_dir) / split).glob("part-*.json"))
    if not stats:
        raise FileNotFoundError(f"{annotation_dir}/{split}: no annotated shards")
    return [p.with_suffix("") for p in stats]


class TokenWindows:
    """Samples windows of ``context + 1`` tokens from shards, proportionally to shard length."""

    def __init__(self, shards: list[Shard], context: int, seed: int):
        self.shards = [s for s in shards if len(s.tokens) > context + 1]
        if not self.shards:
            raise ValueError(f"no shard holds more than context + 1 = {context + 1} tokens")
        self.context = context
        self.seed = seed
        sizes = np.array([len(s.tokens) - context - 1 for s in self.shards], dtype=np.float64)
        self.shard_weights = sizes / sizes.sum()
        self.n_tokens = int(sum(len(s.tokens) for s in self.shards))

    @classmethod
    def from_directory(cls, annotation_dir: Path, split: str, context: int, seed: int,
                       llm_judge_dir: Path | None = None) -> "TokenWindows":
        judge = Path(llm_judge_dir) / split if llm_judge_dir else None
        return cls([open_shard(p, judge) for p in shard_prefixes(annotation_dir, split)], context, seed)

    def batch(self, batch_size: int, step: int, micro_step: int = 0, rank: int = 0) -> Batch:
        """The batch for ``(step, micro_step, rank)``: the same arguments always give the same batch."""
        rng = np.random.default_rng([self.seed, step, micro_step, rank])
        which = rng.choice(len(self.shards), size=batch_size, p=self.shard_weights)
        starts = [rng.integers(0, len(self.shards[k].tokens) - self.context - 1) for k in which]
        return self._stack([(self.shards[k], s) for k, s in zip(which, starts)])

    def sequential(self, batch_size: int, max_batches: int | None = None):
        """Consecutive non-overlapping windows over every shard (validation, §A.4.3)."""
        windows = [(shard, start) for shard in self.shards
                   for start in range(0, len(shard.tokens) - self.context - 1, self.context)]
        if max_batches is not None:
            windows = windows[: max_batches * batch_size]
        for i in range(0, len(windows), batch_size):
            yield self._stack(windows[i:i + batch_size])

    def _stack(self, windows: list[tuple[Shard, int]]) -> Batch:
        t = self.context
        tokens = np.stack([np.asarray(s.tokens[a:a + t + 1], dtype=np.int64) for s, a in windows])
        labels = np.stack([np.asarray(s.labels[a + 1:a + t + 1]) for s, a in windows])
        starts = np.stack([s.doc_start[a + 1:a + t + 1] for s, a in windows])
        judge = None
        if windows[0][0].llm_judge is not None:
            judge = torch.from_numpy(np.stack([np.asarray(s.llm_judge[a + 1:a + t + 1]) for s, a in windows]) > 0)
        tokens = torch.from_numpy(tokens)
        return Batch(x=tokens[:, :-1], y=tokens[:, 1:], fact=torch.from_numpy(labels == FACT),
                     grammatical=torch.from_numpy(labels == GRAMMATICAL), valid=torch.from_numpy(~starts),
                     llm_judge=judge)


def read_tokenizer_meta(tokenizer_dir: Path) -> dict:
    from lacy.tokenizer import META_FILE

    return json.loads((Path(tokenizer_dir) / META_FILE).read_text())
