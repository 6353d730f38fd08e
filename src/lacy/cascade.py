"""Cascaded generation: the SLM writes, and its ``<CALL>`` tokens are answered by a cascade partner (§5.1, §A.5).

The paper (§5.1): "Whenever the SLM generates a <CALL> token, we pass the sequence generated so-far (including the
prompt and excluding the <CALL> token) to the cascade model. In generation tasks, models are evaluated on an equal
call budget of 22% of tokens, which we enforce by thresholding the <CALL> logit based on a running quantile that
adjusts based on the number of <CALL>s generated so far." §A.5: "We fix a maximum generation length of 256, and
use greedy decoding with a repetition penalty 1.2. [...] we calibrate the <CALL> token's appearance rate by
estimating a running threshold on the <CALL> token's logit during generation. Due to the nonstationarity of the
call logits during generation, the 15% target calling ratio corresponds to an actual calling ratio of about 22%
across all methods." The paper gives no formula; ours, per sequence, is:

**Call budget (running quantile).** Let ρ be the target call rate, ``H`` the history of the SLM's ``<CALL>`` logits
(warm-started with its logits at the prompt positions, then extended by the logit of every decoding step), ``σ``
its standard deviation, ``s`` the decoding steps so far and ``c`` the calls among them. A step calls iff its
``<CALL>`` logit exceeds

    θ = q_{1-ρ}(H) - κ·σ·(ρ·s - c)        (κ = ``CallBudget.correction`` = 1)

the ``(1 - ρ)``-quantile of the history (linear interpolation), lowered by κ standard deviations of the history for
every call the sequence is behind its budget and raised as much for every call ahead of it; otherwise the SLM's
greedy token is taken, with ``<CALL>`` excluded. The correction is integral action on the call deficit ``ρ·s - c``:
it grows without bound while the budget is missed, so a sequence whose ``<CALL>`` logits drift (they do, and in
different directions for different methods) is still held to its budget, and it is measured in σ, so that it does
not depend on the scale of a method's ``<CALL>`` logit. Every method thereby realises the same share of calls, the
condition of the paper's comparison ("evaluated on an equal call budget of 22% of tokens", §5.1). The paper gives no
formula; its rule overshoots its 15 % target to ~22 % "due to the nonstationarity of the call logits" (§A.5). An
earlier rule of ours, a quantile level ``clip(2ρ - c/s, 0, 1)`` of the same history, let the realised rate drift
with the logits, apart for each method, because no level can reach below the smallest logit seen; the rule above
holds every method to its target (both measured on the default run: ``benchmarks/RESULTS.md``). So that our
comparison is at the paper's realised budget, the configs set the target to 0.22 itself. The realised rate (calls
per decoding step) is reported next to the target.

**Repetition penalty** (as ``transformers``' ``RepetitionPenaltyLogitsProcessor``): the logits of ids already in
the sequence (prompt included) are divided by the penalty when positive and multiplied by it when negative.
It applies to the SLM's token choice; the partner's answer is its plain highest-probability token (§A.5).

**Partner answer.** The partner (``lacy.partners``: the interface in ``lacy.partners.base``) reads our text so far
(``LacyTokenizer.decode``) tokenised by its own tokenizer. Its candidates are taken in order of probability, each as
its text and whether it is a special token (a local partner, ``lacy.partners.local``, decodes its top ids; the RAG
partner of §A.5, ``lacy.partners.rag``, reads the subject's article first). A candidate is *expressible* iff it is
not a special token, its text is non-empty and is whole UTF-8 (no U+FFFD from a byte-level piece), and the text can
be segmented into at most ``max_pieces`` (3: the paper saw no more) pieces of our dictionary, byte-fallback pieces
excluded (a byte piece stands for a character our dictionary lacks). The segmentation uses the fewest pieces, ties
broken by the higher total SentencePiece score; the partner's leading space becomes our ``▁`` so that decoding our
ids reproduces the appended text exactly. The first expressible candidate is appended, all its pieces (§A.5); a call
whose top-``partner_top_k`` candidates are all inexpressible falls back to the SLM's own greedy token.
``partner_cases`` counts calls answered by one piece, by several, by a lower-ranked candidate, and not at all.

**KV caches.** The SLM runs batched over prompts (left padding, explicit positions) and extends its cache one token
per step; a partner answer of k pieces is fed over the next k steps, the SLM deciding again after the last. Each
sequence has its own partner view (``session(entity, use_cache=True)``); a local partner's view keeps the ids it has
read and their keys and values and feeds only what follows their common prefix with the new text (a served
partner's server keeps its own prefix cache). ``generate_naive`` reads everything again at every step, without
caches: the reference that tests and the benchmark check the cached loop against.

**Batched partner calls.** The calls of the sequences that call at one decoding step go to the partner together
where it has ``batch_candidates`` (a local partner: one packed forward pass, ``lacy.partners.local``); a partner
without it (the served RAG partner) is asked one sequence at a time. ``partner_calls`` chooses when the parked calls
are answered: ``step`` at every decoding step that has one, ``gather`` (the default) only once every unfinished
sequence waits for the partner, the others writing on meanwhile (fewer, fuller partner passes for more SLM passes,
and more slots in the SLM's cache, which the masks and explicit positions make harmless; worth it when the SLM is
much cheaper than the partner), ``sequence`` one pass per call (the benchmark's per-sequence comparison). A
sequence's tokens depend only on its own text, so all three give the same tokens.

**Context.** Generation stops at ``max_new_tokens`` or when the sequence fills the SLM's context
(``n_positions``; learned absolute positions cannot slide without recomputing the cache). A partner answer is
cut to the room left.

**The partner alone** (``generate_partner_alone``; the reference bars of §5.2: Llama-3.2-1B alone, Qwen3-32B + RAG
alone). The partner writes every token of the biography after the same prompt, in its own vocabulary: greedy over
its next-token logits with the same repetition penalty over the ids of the biography (the prompt and what it has
written; a local RAG partner's instruction and background are not penalised, or a small base model stops copying
the facts it is given; ``transformers``' ``generate`` and vLLM, which a served partner writes with, penalise every
id of the input), at most ``max_new_tokens`` of its own
tokens, ending at its end-of-sequence token or its context. A local partner's sequences of a batch go through it
together, each step feeding only each sequence's newest id (``lacy.partners.base.WritingPartner``); a served
partner writes on its server with the same settings, one request per biography (``ContinuingView``). The record has
the cascade's schema, every token from the partner (the text of each of its tokens), every step a call.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from lacy.io import read_jsonl
from lacy.model import load_trained
from lacy.partners.base import (BatchedPartner, Candidate, CascadePartner, ContinuingView, PartnerView,
                                WritingPartner)
from lacy.tokenizer import LacyTokenizer

log = logging.getLogger(__name__)

PROMPT_TEMPLATE = "Tell me a bio of {name}. {name} is"


@dataclass(frozen=True)
class CascadeSettings:
    """Decoding settings: the call budget (§5.1's 22 % and §A.5's 256 tokens are the workflow's, in its config
    schema and config/paper.yaml), §A.5's repetition penalty 1.2, and how partner answers map to our pieces."""

    call_rate: float
    max_new_tokens: int
    repetition_penalty: float = 1.2
    max_pieces: int = 3
    partner_top_k: int = 20


def bio_prompt(name: str) -> str:
    """The FactScore prompt for non-instruction-tuned models (§B, after Zhao et al. 2025)."""
    return PROMPT_TEMPLATE.format(name=name)


# ---------------------------------------------------------------------------------------------------------------
# Call budget and token choice


class CallBudget:
    """The running-quantile threshold on the ``<CALL>`` logit of one sequence (module docstring, §5.1, §A.5)."""

    correction = 1.0  # κ: standard deviations of the history per call behind (or ahead of) the budget

    def __init__(self, target: float, warm_start: list[float]):
        if not 0.0 <= target <= 1.0:
            raise ValueError(f"target call rate {target} is not in [0, 1]")
        self.target = target
        self.history = list(warm_start)
        self.steps = 0
        self.calls = 0

    def threshold(self) -> float:
        """``θ = q_{1-ρ}(H) - κ·σ(H)·(ρ·s - c)``: the logit a step must exceed to call."""
        history = np.asarray(self.history)
        deficit = self.target * self.steps - self.calls
        return float(np.quantile(history, 1.0 - self.target) - self.correction * history.std() * deficit)

    def should_call(self, call_logit: float) -> bool:
        """Decide one decoding step and record it (no call before any logit is known, none at target 0)."""
        call = self.target > 0 and bool(self.history) and call_logit > self.threshold()
        self.history.append(call_logit)
        self.steps += 1
        self.calls += call
        return call


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """Penalise the ids in ``seen`` (1-D): positive logits / penalty, negative ones * penalty (HF's rule)."""
    out = logits.clone()
    picked = out[seen]
    out[seen] = torch.where(picked < 0, picked * penalty, picked / penalty)
    return out


def greedy_slm_token(logits: torch.Tensor, ids: list[int], call_id: int, penalty: float) -> int:
    """The SLM's own next token: greedy over the penalised logits, ``<CALL>`` excluded."""
    seen = torch.tensor(sorted(set(ids)), dtype=torch.long, device=logits.device)
    scores = apply_repetition_penalty(logits, seen, penalty)
    scores[call_id] = -torch.inf
    return int(scores.argmax())


# ---------------------------------------------------------------------------------------------------------------
# Mapping partner tokens into our vocabulary


class PieceSegmenter:
    """Segments a text into the fewest pieces of our dictionary (ties: highest total score), no byte pieces."""

    def __init__(self, tokenizer: LacyTokenizer):
        sp = tokenizer.sp
        self.pieces = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())
                       if not (sp.is_byte(i) or sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i))}
        self.scores = {i: sp.get_score(i) for i in self.pieces.values()}
        self.longest = max(len(p) for p in self.pieces)

    def segment(self, text: str, max_pieces: int) -> list[int] | None:
        """Our ids for ``text`` (a space is ``▁``), or None if it needs more than ``max_pieces`` pieces."""
        surface = text.replace(" ", "\u2581")
        n = len(surface)
        best: list[tuple[int, float, list[int]] | None] = [None] * (n + 1)
        best[0] = (0, 0.0, [])
        for end in range(1, n + 1):
            for start in range(max(0, end - self.longest), end):
                piece = self.pieces.get(surface[start:end])
                if piece is None or best[start] is None:
                    continue
                count, score, ids = best[start]
                candidate = (count + 1, score + self.scores[piece], ids + [piece])
                if best[end] is None or (candidate[0], -candidate[1]) < (best[end][0], -best[end][1]):
                    best[end] = candidate
        if best[n] is None or best[n][0] > max_pieces or n == 0:
            return None
        return best[n][2]


def inexpressible_reason(text: str, is_special: bool, pieces: list[int] | None) -> str | None:
    """Why a partner token cannot be appended (module docstring), or None if it can."""
    if is_special:
        return "special"
    if not text:
        return "empty"
    if "\ufffd" in text:
        return "partial_utf8"
    if pieces is None:
        return "not_in_vocabulary"
    return None


@dataclass
class PartnerAnswer:
    """The partner token appended at one call: its text, our ids for it, and its rank among the candidates."""

    text: str
    ids: list[int]
    rank: int


def choose_partner_token(candidates: list[Candidate], segmenter: PieceSegmenter, max_pieces: int,
                         rejected: Counter) -> PartnerAnswer | None:
    """The first expressible candidate (best first); rejections are counted by reason."""
    for rank, candidate in enumerate(candidates):
        text = candidate.text
        pieces = segmenter.segment(text, max_pieces) if text and "\ufffd" not in text else None
        reason = inexpressible_reason(text, candidate.special, pieces)
        if reason is None:
            return PartnerAnswer(text=text, ids=pieces, rank=rank)
        rejected[reason] += 1
    return None


# ---------------------------------------------------------------------------------------------------------------
# Asking the partner


def ask_partner(partner: CascadePartner, views: list[PartnerView], texts: list[str], k: int,
                batched: bool) -> list[list[Candidate]]:
    """Each view's ``k`` best candidates after its text: in one batched call where ``batched`` and the partner can
    (``batch_candidates``), else one view at a time."""
    if batched and views and isinstance(partner, BatchedPartner):
        return partner.batch_candidates(views, texts, k)
    return [view.candidates(text, k) for view, text in zip(views, texts)]


# ---------------------------------------------------------------------------------------------------------------
# One sequence


class Sequence:
    """One prompt's cascade state: our ids with their source, the call budget and the partner session."""

    def __init__(self, prompt: str, tokenizer: LacyTokenizer, session: PartnerView, settings: CascadeSettings,
                 context: int):
        self.prompt = prompt
        self.ids = [int(i) for i in tokenizer.encode(prompt)]
        if not 0 < len(self.ids) < context:
            raise ValueError(f"prompt of {len(self.ids)} tokens does not fit the SLM context of {context}")
        self.n_prompt = len(self.ids)
        self.sources: list[str] = []
        self.pending: list[int] = []  # committed ids the SLM has not read yet
        self.call: torch.Tensor | None = None  # the SLM's logits at a call that waits for the partner
        self.budget: CallBudget | None = None
        self.session = session
        self.cases: Counter = Counter()
        self.rejected: Counter = Counter()
        self.limit = min(self.n_prompt + settings.max_new_tokens, context)
        self.stopped_by_context = context < self.n_prompt + settings.max_new_tokens

    @property
    def done(self) -> bool:
        return len(self.ids) >= self.limit

    def commit(self, ids: list[int], source: str) -> None:
        ids = ids[: self.limit - len(self.ids)]
        self.ids += ids
        self.sources += [source] * len(ids)
        self.pending += ids


def decide(step: list[tuple[Sequence, torch.Tensor]], tokenizer: LacyTokenizer, settings: CascadeSettings) -> None:
    """One decoding step of some sequences from their SLM next-token ``logits``: a sequence within budget parks the
    step's logits to wait for the partner (``answer_calls``), the others take the SLM's greedy token."""
    for seq, logits in step:
        if seq.budget.should_call(float(logits[tokenizer.call_id])):
            seq.call = logits
        else:
            seq.commit([greedy_slm_token(logits, seq.ids, tokenizer.call_id, settings.repetition_penalty)], "slm")


def answer_calls(seqs: list[Sequence], tokenizer: LacyTokenizer, segmenter: PieceSegmenter,
                 settings: CascadeSettings, partner: CascadePartner, batched: bool) -> None:
    """The partner's answers to the parked calls of ``seqs`` (all at once where ``batched``, ``ask_partner``); a call
    whose candidates are all inexpressible falls back to the SLM's greedy token."""
    answers = ask_partner(partner, [seq.session for seq in seqs], [tokenizer.decode(seq.ids) for seq in seqs],
                          settings.partner_top_k, batched)
    for seq, candidates in zip(seqs, answers):
        logits, seq.call = seq.call, None
        answer = choose_partner_token(candidates, segmenter, settings.max_pieces, seq.rejected)
        if answer is not None:
            seq.cases["single" if len(answer.ids) == 1 else "multi"] += 1
            seq.cases["next_best"] += answer.rank > 0
            seq.commit(answer.ids, "partner")
        else:
            seq.cases["slm_fallback"] += 1
            seq.commit([greedy_slm_token(logits, seq.ids, tokenizer.call_id, settings.repetition_penalty)], "slm")


# ---------------------------------------------------------------------------------------------------------------
# Generation loops

#: When a local partner answers the parked calls (module docstring); the first is the default.
PARTNER_CALLS = ("gather", "step", "sequence")


@torch.no_grad()
def generate_cached(prompts: list[str], slm, tokenizer: LacyTokenizer, partner: CascadePartner,
                    settings: CascadeSettings, entities: list[str | None] | None = None,
                    partner_calls: str = PARTNER_CALLS[0]) -> list[Sequence]:
    """The cascade for a batch of prompts with both models' KV caches kept across steps, each model on its own
    device; ``entities`` (the subjects, for the RAG partner's background) default to none. ``partner_calls`` (module
    docstring, batching): ``step`` answers the calls of each decoding step in one partner forward pass, ``gather``
    lets the other sequences write on until every unfinished one waits for the partner, then answers all,
    ``sequence`` answers each call alone. The tokens are the same."""
    if partner_calls not in PARTNER_CALLS:
        raise ValueError(f"partner_calls {partner_calls!r} is not one of {', '.join(PARTNER_CALLS)}")
    context = slm.config.n_positions
    entities = entities or [None] * len(prompts)
    seqs = [Sequence(p, tokenizer, partner.session(e, use_cache=True), settings, context)
            for p, e in zip(prompts, entities)]
    segmenter = PieceSegmenter(tokenizer)
    width = max(s.n_prompt for s in seqs)
    device = slm.device
    input_ids = torch.zeros(len(seqs), width, dtype=torch.long, device=device)
    mask = torch.zeros(len(seqs), width, dtype=torch.long, device=device)
    for b, s in enumerate(seqs):
        input_ids[b, width - s.n_prompt:] = torch.tensor(s.ids, device=device)
        mask[b, width - s.n_prompt:] = 1
    out = slm(input_ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0), use_cache=True)
    for b, s in enumerate(seqs):
        s.budget = CallBudget(settings.call_rate, out.logits[b, width - s.n_prompt:-1, tokenizer.call_id].tolist())
    decide(list(zip(seqs, out.logits[:, -1])), tokenizer, settings)
    cache, positions = out.past_key_values, torch.tensor([s.n_prompt for s in seqs], device=device)
    while not all(s.done for s in seqs):
        parked = [s for s in seqs if s.call is not None]
        if parked and (partner_calls != "gather" or all(s.done or s.call is not None for s in seqs)):
            answer_calls(parked, tokenizer, segmenter, settings, partner, partner_calls != "sequence")
            continue
        running = [not s.done and s.call is None for s in seqs]
        step = torch.tensor([[s.pending.pop(0) if r else 0] for s, r in zip(seqs, running)], device=device)
        active = torch.tensor(running, device=device).long()
        mask = torch.cat([mask, active[:, None]], 1)
        out = slm(step, attention_mask=mask, position_ids=positions[:, None], past_key_values=cache, use_cache=True)
        cache, positions = out.past_key_values, positions + active
        decide([(s, out.logits[b, -1]) for b, (s, r) in enumerate(zip(seqs, running)) if r and not s.pending],
               tokenizer, settings)
    return seqs


@torch.no_grad()
def generate_naive(prompt: str, slm, tokenizer: LacyTokenizer, partner: CascadePartner, settings: CascadeSettings,
                   entity: str | None = None) -> Sequence:
    """The same cascade without caches: both models re-read the whole prefix at every step (the reference)."""
    seq = Sequence(prompt, tokenizer, partner.session(entity, use_cache=False), settings, slm.config.n_positions)
    segmenter = PieceSegmenter(tokenizer)
    logits = slm(torch.tensor([seq.ids], device=slm.device)).logits[0]
    seq.budget = CallBudget(settings.call_rate, logits[:-1, tokenizer.call_id].tolist())
    decide([(seq, logits[-1])], tokenizer, settings)
    while not seq.done:
        if seq.call is not None:
            answer_calls([seq], tokenizer, segmenter, settings, partner, batched=False)
            continue
        seq.pending.clear()
        decide([(seq, slm(torch.tensor([seq.ids], device=slm.device)).logits[0, -1])], tokenizer, settings)
    return seq


@dataclass
class PartnerText:
    """A biography the partner wrote alone: the text of each of its tokens, and how it stopped; a local partner's
    ids too (its whole input, then what it wrote)."""

    prompt: str
    tokens: list[str]
    ended: bool  # by the partner's end-of-sequence token
    stopped_by_context: bool
    ids: list[int] = field(default_factory=list)
    n_input: int = 0


@torch.no_grad()
def generate_partner_alone(prompts: list[str], partner: CascadePartner, settings: CascadeSettings,
                           entities: list[str | None] | None = None) -> list[PartnerText]:
    """The partner alone writes after each prompt (module docstring): a local partner (``WritingPartner``) here,
    all unfinished sequences in one pass per step; a served one on its server, one request per sequence
    (``ContinuingView``). ``entities`` (the subjects, for a RAG partner's background) default to none."""
    entities = entities or [None] * len(prompts)
    views = [partner.session(entity, use_cache=True) for entity in entities]
    if isinstance(partner, WritingPartner):
        return _write_locally(prompts, views, partner, settings)
    if not all(isinstance(view, ContinuingView) for view in views):
        raise TypeError(f"partner {partner.name} cannot write alone")
    return [PartnerText(prompt, *view.continuation(prompt, settings.max_new_tokens, settings.repetition_penalty),
                        stopped_by_context=False) for prompt, view in zip(prompts, views)]


def _write_locally(prompts: list[str], views: list, partner: WritingPartner,
                   settings: CascadeSettings) -> list[PartnerText]:
    """Greedy over the partner's penalised logits, at most ``settings.max_new_tokens`` of its tokens, until its
    end-of-sequence token or its context."""
    ids, limits = [view.input_ids(prompt) for view, prompt in zip(views, prompts)], []
    for sequence in ids:
        context = partner.context or len(sequence) + settings.max_new_tokens
        if len(sequence) >= context:
            raise ValueError(f"the partner's input of {len(sequence)} tokens does not fit its context of {context}")
        limits.append(min(len(sequence) + settings.max_new_tokens, context))
    n_input, ended = [len(sequence) for sequence in ids], [False] * len(ids)
    text_starts = [view.text_start(sequence) for view, sequence in zip(views, ids)]
    running = [b for b in range(len(ids)) if len(ids[b]) < limits[b]]
    while running:
        logits = partner.next_token_logits_for_ids([views[b] for b in running], [ids[b] for b in running])
        for b, row in zip(running, logits):
            seen = torch.tensor(sorted(set(ids[b][text_starts[b]:])), dtype=torch.long, device=row.device)
            token = int(apply_repetition_penalty(row, seen, settings.repetition_penalty).argmax())
            if token in partner.eos_ids:
                ended[b] = True
            else:
                ids[b].append(token)
        running = [b for b in running if not ended[b] and len(ids[b]) < limits[b]]
    return [PartnerText(prompt, token_texts(partner.decode, sequence, start), end,
                        stopped_by_context=not end and limit < start + settings.max_new_tokens, ids=sequence,
                        n_input=start)
            for prompt, sequence, start, end, limit in zip(prompts, ids, n_input, ended, limits)]


# ---------------------------------------------------------------------------------------------------------------
# Records and views


def token_texts(decode: Callable[[list[int]], str], ids: list[int], start: int) -> list[str]:
    """The text each of ``ids[start:]`` adds to the decoded sequence (``decode``: our tokenizer's, or a partner's); an
    incomplete UTF-8 byte run adds "" until the byte that completes it, so the texts concatenate to the generation."""
    texts, emitted = [], decode(ids[:start])
    for k in range(start, len(ids)):
        full = decode(ids[: k + 1])
        if full.endswith("\ufffd") and k + 1 < len(ids):
            texts.append("")
            continue
        texts.append(full[len(emitted):])
        emitted = full
    return texts


def sequence_record(seq: Sequence, tokenizer: LacyTokenizer, entity: str | None) -> dict:
    """The JSONL record of one generation, with each token's source (``slm`` or ``partner``)."""
    texts = token_texts(tokenizer.decode, seq.ids, seq.n_prompt)
    cases = {k: seq.cases[k] for k in ("single", "multi", "next_best", "slm_fallback")}
    cases["rejected"] = dict(seq.rejected)
    return {
        "entity": entity,
        "prompt": seq.prompt,
        "generation": "".join(texts),
        "tokens": [{"text": t, "source": s} for t, s in zip(texts, seq.sources)],
        "n_tokens": len(texts),
        "n_steps": seq.budget.steps,
        "n_calls": seq.budget.calls,
        "call_rate": seq.budget.calls / max(seq.budget.steps, 1),
        "partner_token_share": seq.sources.count("partner") / max(len(seq.sources), 1),
        "partner_cases": cases,
        "stopped_by_context": seq.stopped_by_context,
    }


def partner_alone_record(text: PartnerText, entity: str | None) -> dict:
    """The JSONL record of a biography the partner wrote alone, in the schema of :func:`sequence_record`: every token
    the partner's, every step a call; no call was mapped into our vocabulary, so the partner cases are all zero."""
    n = len(text.tokens)
    return {
        "entity": entity,
        "prompt": text.prompt,
        "generation": "".join(text.tokens),
        "tokens": [{"text": t, "source": "partner"} for t in text.tokens],
        "n_tokens": n,
        "n_steps": n,
        "n_calls": n,
        "call_rate": n / max(n, 1),
        "partner_token_share": n / max(n, 1),
        "partner_cases": {"single": 0, "multi": 0, "next_best": 0, "slm_fallback": 0, "rejected": {}},
        "stopped_by_context": text.stopped_by_context,
    }


def summarise(records: list[dict], settings: CascadeSettings) -> dict:
    """Realised call rate against the target, and the partner cases summed over all generations."""
    steps = sum(r["n_steps"] for r in records)
    tokens = sum(r["n_tokens"] for r in records)
    cases = Counter()
    rejected = Counter()
    for r in records:
        cases.update({k: v for k, v in r["partner_cases"].items() if k != "rejected"})
        rejected.update(r["partner_cases"]["rejected"])
    return {
        "generations": len(records),
        "target_call_rate": settings.call_rate,
        "realised_call_rate": sum(r["n_calls"] for r in records) / max(steps, 1),
        "partner_token_share": sum(r["partner_token_share"] * r["n_tokens"] for r in records) / max(tokens, 1),
        "tokens": tokens,
        "partner_cases": dict(cases) | {"rejected": dict(rejected)},
    }


# ---------------------------------------------------------------------------------------------------------------
# Commands


def load_slm(model_dir: Path, device: torch.device | str = "cpu"):
    """A trained SLM directory (``results/models/{method}/seed{seed}``): the model on ``device`` and its tokenizer."""
    return load_trained(model_dir, device), LacyTokenizer.load(model_dir)


def read_entity_records(path: Path) -> list[dict]:
    """The entity records of ``lacy corpus entities`` JSONL (``{"entity", "split", "description"}``), or
    ``{"entity": name}`` for each line of a plain list of names."""
    if Path(path).suffix == ".jsonl":
        return [record for _, record in read_jsonl(path)]
    return [{"entity": line.strip()} for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def with_split(record: dict, entity: dict) -> dict:
    """A generation record with its entity's ``split`` (train / validation: whether the SLM saw its article) after
    the ``entity`` field, where the entity record has one."""
    if "split" not in entity:
        return record
    return {"entity": record["entity"], "split": entity["split"]} | record


def cascade_records(prompts: list[str], entities: list[str | None], slm, tokenizer: LacyTokenizer,
                    partner: CascadePartner, settings: CascadeSettings, batch_size: int,
                    partner_calls: str = PARTNER_CALLS[0]) -> list[dict]:
    """JSONL records of the cascade for all prompts, the SLM batched ``batch_size`` prompts at a time."""
    records = []
    for start in range(0, len(prompts), batch_size):
        seqs = generate_cached(prompts[start:start + batch_size], slm, tokenizer, partner, settings,
                               entities[start:start + batch_size], partner_calls)
        for seq, entity in zip(seqs, entities[start:start + batch_size]):
            records.append(sequence_record(seq, tokenizer, entity))
            log.info("%s: %d tokens, %d calls (%.1f%%)", entity, records[-1]["n_tokens"], records[-1]["n_calls"],
                     100 * records[-1]["call_rate"])
    return records


def partner_alone_records(prompts: list[str], entities: list[str | None], partner: CascadePartner,
                          settings: CascadeSettings, batch_size: int) -> list[dict]:
    """JSONL records of the partner writing alone after all prompts, ``batch_size`` prompts at a time."""
    records = []
    for start in range(0, len(prompts), batch_size):
        texts = generate_partner_alone(prompts[start:start + batch_size], partner, settings,
                                       entities[start:start + batch_size])
        for text, entity in zip(texts, entities[start:start + batch_size]):
            records.append(partner_alone_record(text, entity))
            log.info("%s: %d partner tokens%s", entity, records[-1]["n_tokens"],
                     ", ended by its end-of-sequence token" if text.ended else "")
    return records
