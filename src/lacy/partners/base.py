"""The cascade-partner interface (§5.1, §A.5): the one thing the cascade, the partners and the judge share.

§5.1: "Whenever the SLM generates a <CALL> token, we pass the sequence generated so-far (including the prompt and
excluding the <CALL> token) to the cascade model." A partner is asked for a *view* of one sequence
(``session(entity, use_cache)``; ``entity`` is the subject, which only a RAG partner reads, §A.5), and the view for
its ranked next tokens after our text so far (``candidates(text, k)``, best first). Each candidate is its text and
whether it is a special (control) token; the cascade (``lacy.cascade.choose_partner_token``) appends the first one
our vocabulary can express.

One ability is optional, and the cascade checks for it:

* ``BatchedPartner.batch_candidates(views, texts, k)``: the calls of several sequences answered at once (a local
  partner, ``lacy.partners.local``: one packed forward pass); a partner without it is asked one view at a time.

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
