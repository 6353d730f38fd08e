"""The cascade-partner interface (§5.1, §A.5): the one thing the cascade, the partners and the judge share.

§5.1: "Whenever the SLM generates a <CALL> token, we pass the sequence generated so-far (including the prompt and
excluding the <CALL> token) to the cascade model." A partner is asked for a *view* of one sequence
(``session(entity, use_cache)``; ``entity`` is the subject, which only a RAG partner reads, §A.5), and the view for
its ranked next tokens after our text so far (``candidates(text, k)``, best first). Each candidate is its text and
whether it is a special (control) token; the cascade (``lacy.cascade.choose_partner_token``) appends the first one
our vocabulary can express.

Two abilities are optional, and the cascade checks for them:

* ``BatchedPartner.batch_candidates(views, texts, k)``: the calls of several sequences answered at once (a local
  partner, ``lacy.partners.local``: one packed forward pass); a partner without it is asked one view at a time.
* writing alone, token by token in the partner's own vocabulary (the reference bars of §5.2, a partner alone writing
  the whole biography). A ``WritingPartner`` (local) is decoded by the cascade: its views give its own ids for its
  whole input (``input_ids(text)``, a RAG partner's background included), and the partner the next-token logits
  after id sequences of several views in one pass, its end-of-sequence ids, its context and the text of its ids.
  A ``ContinuingView`` (served) writes on its server: ``continuation(text, max_new_tokens, repetition_penalty)``
  gives the text of each token and whether the partner ended the text itself.

Implementations: ``lacy.partners.local`` (any ``transformers`` causal LM, Gemma-3-270M from PyPI) and
``lacy.partners.rag`` (the RAG partner of §A.5: served, or the local model given the subject's article). No
partner imports the cascade.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Candidate:
    """One of the partner's ranked next tokens: its text and whether it is a special (control) token."""

    text: str
    special: bool


class PartnerView(Protocol):
    """What the cascade asks of a partner for one sequence: its ranked next tokens after our text so far."""

    def candidates(self, text: str, k: int) -> list[Candidate]: ...


class CascadePartner(Protocol):
    """A cascade partner: its name (as records and summaries report it) and a view per sequence."""

    name: str

    def session(self, entity: str | None, use_cache: bool) -> PartnerView: ...


@runtime_checkable
class BatchedPartner(Protocol):
    """A partner that answers the calls of several sequences at once."""

    def batch_candidates(self, views: list[PartnerView], texts: list[str], k: int) -> list[list[Candidate]]: ...


class WritingView(PartnerView, Protocol):
    """A view of a partner that can write alone: its own ids for its whole input after our ``text``, and where in
    those ids our text starts (after a RAG partner's instruction and background), the ids a repetition penalty
    counts."""

    def input_ids(self, text: str) -> list[int]: ...

    def text_start(self, ids: list[int]) -> int: ...


@runtime_checkable
class WritingPartner(Protocol):
    """A partner that writes alone: next-token logits (one row per view, over its vocabulary) after each view's
    ids, in one pass; the ids that end its text; the positions it can read (None: no limit known); the text of its
    ids."""

    name: str
    eos_ids: frozenset[int]
    context: int | None

    def session(self, entity: str | None, use_cache: bool) -> WritingView: ...

    def next_token_logits_for_ids(self, views: list[WritingView], ids: list[list[int]]): ...

    def decode(self, ids: list[int]) -> str: ...


@runtime_checkable
class ContinuingView(Protocol):
    """A view of a served partner that writes alone on its server: its greedy continuation of our ``text`` with the
    repetition penalty, at most ``max_new_tokens`` tokens, as the text of each token, and whether it ended the
    text itself (its end-of-sequence token)."""

    def continuation(self, text: str, max_new_tokens: int, repetition_penalty: float) -> tuple[list[str], bool]: ...
