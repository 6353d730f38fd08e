"""Cascade partners (§5.1, §A.5): the interface (``lacy.partners.base``) and its implementations, a local
``transformers`` model (``lacy.partners.local``) and the RAG partner, served or local (``lacy.partners.rag``).

Only the interface is imported here, so that depending on it costs no model library: import an implementation from
its module.
"""

from lacy.partners.base import (BatchedPartner, Candidate, CascadePartner, ContinuingView, PartnerView,
                                WritingPartner, WritingView)

__all__ = ["BatchedPartner", "Candidate", "CascadePartner", "ContinuingView", "PartnerView", "WritingPartner",
           "WritingView"]
