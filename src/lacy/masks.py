"""Call and ignore masks of every token-selection method (Table 5, §4, §5.4) and the validation call mask (§A.4.3).

Every mask is a boolean tensor shaped like the per-token losses of a micro-batch (e.g. [B, T]); position i
describes the *target* token x_{i+1}. Conventions shared by all methods:

* **Valid positions.** ``valid`` is False where no target exists (padding, the first token of a document).
  Those positions are never called or ignored, and a rate is a fraction of the *valid* positions.
* **Per mini-batch.** Rankings are over the whole batch, all sequences together (§4: "top n% of L(B; θ)").
* **Budgets.** A rate becomes a token count ``k = round(rate · n_valid)`` (round half to even). When fewer
  candidates exist than ``k`` (e.g. a batch with few facts), all candidates are selected and the realised
  rate, reported by :func:`realised_rates`, falls short of ``rate``.
* **Ties** in a ranking are broken by position in the flattened batch, earlier first (a stable sort), so a mask
  is a deterministic function of its inputs on every device.
* **No host synchronisation.** Budgets stay on the device as 0-d tensors; :func:`select_top` ranks with one
  stable sort over the batch and compares ranks with the budget, so no ``.item()`` is needed.
"""

from __future__ import annotations

import torch

#: Method names, one per row of Table 5 (spaCy ablations of §5.4 included).
METHODS = ("baseline", "loss_based", "rho1", "llm_judge", "spacy", "lacy", "spacy_refloss",
           "lacy_ignorefacts", "lacy_ignore")
#: Methods that rank by a reference model's per-token losses (Table 5: L_RefModel).
REFERENCE_METHODS = ("rho1", "spacy_refloss")


def call_ignore_masks(method: str, losses: torch.Tensor, fact: torch.Tensor, grammatical: torch.Tensor, *,
                      rate: float, ignore_rate: float, ref_losses: torch.Tensor | None = None,
                      generator: torch.Generator | None = None,
                      valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Call mask C and ignore mask I of ``method`` for one mini-batch (Table 5).

    ``losses``: per-target-token loss of the current model, detached (``lacy.losses.true_token_losses``).
    ``fact``, ``grammatical``: bool labels of the target tokens (spaCy, §A.2.1); for ``llm_judge`` pass the
    converted LLM-judge call labels (§A.2.2) as ``fact``. ``ref_losses``: the reference model's per-token
    losses (``rho1``, ``spacy_refloss``). ``rate``: the call budget, 15 % of valid tokens in the paper;
    ``ignore_rate``: the ignore budget of ``lacy_ignore``. ``generator`` drives ``loss_based`` and ``spacy``.

    Rows of Table 5:

    * ``baseline``: no call, no ignore.
    * ``loss_based``: C ~ Bernoulli(rate), independently per valid position.
    * ``rho1``: C = the ``rate`` of valid positions with the lowest excess loss L − L_RefModel.
    * ``llm_judge``: C = the LLM-judge labels, all of them (≈ 15 % by construction, no rate control).
    * ``spacy``: C = facts sampled uniformly without replacement, ``rate`` of valid positions (§5.4 "spaCy only").
    * ``lacy``: C = the highest-loss facts, ``rate`` of valid positions (§4: with 25 % facts, the 60 %
      highest-loss facts).
    * ``spacy_refloss``: as ``lacy``, ranked by the reference model's loss (§5.4 "spaCy + Reference Model").
    * ``lacy_ignorefacts``: C as ``lacy``; I = the remaining facts, fact · (1 − C).
    * ``lacy_ignore``: C as ``lacy``; I = the remaining facts plus the highest-loss *other* tokens (neither
      fact nor grammatical, §5.4 and §A.2.1), as many as needed for ``ignore_rate`` of valid positions in
      total. Table 5 adds the remaining facts unconditionally, so when they alone exceed ``ignore_rate``, just
      they are ignored (the loss-ranked term is empty) and the realised ignore rate exceeds ``ignore_rate``.

    C and I are disjoint for every method. Returns ``(call, ignore)``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown token-selection method {method!r}; valid names: {', '.join(METHODS)}")
    if method in REFERENCE_METHODS and ref_losses is None:
        raise ValueError(f"method {method!r} ranks by a reference model's losses: pass ref_losses")
    for name, value in (("rate", rate), ("ignore_rate", ignore_rate)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {value}")
    valid = torch.ones_like(fact) if valid is None else valid
    for name, mask in (("fact", fact), ("grammatical", grammatical), ("valid", valid)):
        if mask.dtype != torch.bool or mask.shape != losses.shape:
            raise ValueError(f"{name} must be a bool tensor shaped like losses {tuple(losses.shape)}, "
                             f"got {mask.dtype} {tuple(mask.shape)}")

    facts = fact & valid
    call_budget = budget(valid, rate)
    nothing = torch.zeros_like(valid)
    if method == "baseline":
        call = nothing
    elif method == "loss_based":
        draw = torch.rand(losses.shape, generator=generator, device=losses.device)
        call = valid & (draw < rate)
    elif method == "rho1":
        call = select_top(losses - ref_losses, valid, call_budget, highest=False)
    elif method == "llm_judge":
        call = facts
    elif method == "spacy":
        draw = torch.rand(losses.shape, generator=generator, device=losses.device)
        call = select_top(draw, facts, call_budget)
    elif method == "spacy_refloss":
        call = select_top(ref_losses, facts, call_budget)
    else:  # lacy, lacy_ignorefacts, lacy_ignore
        call = select_top(losses, facts, call_budget)

    if method == "lacy_ignorefacts":
        ignore = facts & ~call
    elif method == "lacy_ignore":
        remaining_facts = facts & ~call
        others = valid & ~fact & ~grammatical
        # A negative remaining budget (remaining facts already exceed ignore_rate) selects nothing.
        other_budget = budget(valid, ignore_rate) - remaining_facts.sum()
        ignore = remaining_facts | select_top(losses, others, other_budget)
    else:
        ignore = nothing.clone()
    return call, ignore


def budget(valid: torch.Tensor, rate: float) -> torch.Tensor:
    """Number of positions ``round(rate · n_valid)`` a rate allows, as a 0-d tensor on ``valid``'s device.

    Computed in float64, so it equals Python's ``round(rate * n_valid)`` (both round half to even).
    """
    return torch.round(valid.sum(dtype=torch.float64) * rate)


def select_top(scores: torch.Tensor, eligible: torch.Tensor, k: torch.Tensor | int,
               highest: bool = True) -> torch.Tensor:
    """Mask of the ``k`` eligible positions with the highest (``highest=False``: lowest) scores, over the batch.

    All eligible positions when fewer than ``k`` exist; none when ``k <= 0``. Ties go to the earlier position
    of the flattened batch. ``k`` may be a 0-d device tensor: the selection compares each position's rank among
    eligible positions with ``k`` instead of slicing, so it never waits for the device.
    """
    order = torch.sort(scores.reshape(-1), descending=highest, stable=True).indices
    eligible_sorted = eligible.reshape(-1)[order]
    rank_among_eligible = torch.cumsum(eligible_sorted, 0) - 1
    chosen_sorted = eligible_sorted & (rank_among_eligible < k)
    chosen = torch.empty_like(eligible_sorted).scatter_(0, order, chosen_sorted)
    return chosen.view(eligible.shape)


def realised_rates(call: torch.Tensor, ignore: torch.Tensor,
                   valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Fractions of valid positions that are called and ignored, as 0-d float tensors (no host sync)."""
    valid = torch.ones_like(call) if valid is None else valid
    n_valid = valid.sum().clamp(min=1)
    return {"call_rate": (call & valid).sum() / n_valid, "ignore_rate": (ignore & valid).sum() / n_valid}


def validation_call_mask(call_logits: torch.Tensor, is_top: torch.Tensor, *, rate: float,
                         valid: torch.Tensor | None = None) -> torch.Tensor:
    """The call mask C_M a calling model decodes on validation data (§A.4.3).

    ``call_logits``: the <CALL> logit per position; ``is_top``: where it is the top logit. "We record the
    positions where the call logit is the top logit. If this occurs for more than 15 % of tokens, we cap to
    15 %, keeping the positions with highest call logits. If the call logit is the top logit for less than
    15 % of tokens, we add the next highest call logits to reach 15 % calls."

    With ``k = round(rate · n_valid)``: the top positions, capped to the ``k`` with the highest call logits,
    then the highest-call-logit other positions up to ``k``. Every top position is kept in the top-up branch
    even where a non-top position has a higher call logit (whether the call logit is the top one depends on
    the other logits, not on its own value alone).
    """
    valid = torch.ones_like(is_top) if valid is None else valid
    k = budget(valid, rate)
    top = is_top & valid
    kept_top = select_top(call_logits, top, k)
    topped_up = select_top(call_logits, valid & ~top, k - top.sum())
    return kept_top | topped_up
