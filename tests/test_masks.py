"""Call and ignore masks of Table 5 and the validation call mask of §A.4.3."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lacy import FACT, GRAMMATICAL, OTHER
from lacy.masks import METHODS, budget, call_ignore_masks, realised_rates, select_top, validation_call_mask

T_, F_ = True, False

# A 2 x 5 batch with distinct losses. Facts (loss): (0,1) .9, (0,2) .5, (0,4) .7, (1,0) .8, (1,2) .6.
# Others, neither fact nor grammatical (loss): (0,3) .3, (1,1) .2, (1,4) 1.0. Grammatical: (0,0), (1,3).
LOSSES = torch.tensor([[0.1, 0.9, 0.5, 0.3, 0.7], [0.8, 0.2, 0.6, 0.4, 1.0]])
FACTS = torch.tensor([[F_, T_, T_, F_, T_], [T_, F_, T_, F_, F_]])
GRAMMATICAL_ = torch.tensor([[T_, F_, F_, F_, F_], [F_, F_, F_, T_, F_]])
REF_LOSSES = torch.tensor([[0.0, 0.2, 0.1, 0.4, 0.3], [0.7, 0.5, 0.8, 0.1, 0.6]])
# Excess loss L - L_Ref:       [[.1, .7, .4, -.1, .4], [.1, -.3, -.2, .3, .4]]


def positions(*pairs) -> torch.Tensor:
    mask = torch.zeros(2, 5, dtype=torch.bool)
    for pair in pairs:
        mask[pair] = True
    return mask


def masks(method, rate=0.2, ignore_rate=0.15, **kw):
    return call_ignore_masks(method, LOSSES, FACTS, GRAMMATICAL_, ref_losses=REF_LOSSES, rate=rate,
                             ignore_rate=ignore_rate, **kw)


def test_baseline_has_no_masks():
    call, ignore = masks("baseline")
    assert not call.any() and not ignore.any()


def test_lacy_calls_the_highest_loss_facts():
    call, ignore = masks("lacy", rate=0.2)  # k = 2 of 10
    assert torch.equal(call, positions((0, 1), (1, 0)))
    assert not ignore.any()
    call, _ = masks("lacy", rate=0.3)  # k = 3
    assert torch.equal(call, positions((0, 1), (1, 0), (0, 4)))


def test_lacy_calls_all_facts_when_too_few():
    call, ignore = masks("lacy", rate=0.9)  # k = 9 > 5 facts
    assert torch.equal(call, FACTS)
    assert realised_rates(call, ignore)["call_rate"].item() == pytest.approx(0.5)


def test_spacy_refloss_ranks_facts_by_reference_loss():
    call, _ = masks("spacy_refloss", rate=0.2)  # reference losses of facts: .2 .1 .3 .7 .8
    assert torch.equal(call, positions((1, 0), (1, 2)))


def test_rho1_calls_the_lowest_excess_loss():
    call, ignore = masks("rho1", rate=0.3)  # excess -.3, -.2, -.1
    assert torch.equal(call, positions((1, 1), (1, 2), (0, 3)))
    assert not ignore.any()


def test_llm_judge_calls_every_label_without_rate_control():
    call, ignore = masks("llm_judge", rate=0.1)
    assert torch.equal(call, FACTS) and not ignore.any()


def test_lacy_ignorefacts_ignores_the_remaining_facts():
    call, ignore = masks("lacy_ignorefacts", rate=0.2)
    assert torch.equal(call, positions((0, 1), (1, 0)))
    assert torch.equal(ignore, positions((0, 2), (0, 4), (1, 2)))


def test_lacy_ignore_adds_the_highest_loss_other_tokens():
    call, ignore = masks("lacy_ignore", rate=0.2, ignore_rate=0.5)  # 3 remaining facts + 2 others
    assert torch.equal(call, positions((0, 1), (1, 0)))
    assert torch.equal(ignore, positions((0, 2), (0, 4), (1, 2), (1, 4), (0, 3)))


def test_lacy_ignore_keeps_all_remaining_facts_beyond_the_ignore_rate():
    _, ignore = masks("lacy_ignore", rate=0.2, ignore_rate=0.2)  # 3 remaining facts > k = 2
    assert torch.equal(ignore, positions((0, 2), (0, 4), (1, 2)))


def test_invalid_positions_are_never_selected_nor_counted():
    valid = ~positions((0, 1))  # the highest-loss fact has no target
    call, ignore = masks("lacy_ignorefacts", rate=0.2, valid=valid)  # k = round(1.8) = 2 of 9
    assert torch.equal(call, positions((1, 0), (0, 4)))
    assert torch.equal(ignore, positions((0, 2), (1, 2)))
    assert realised_rates(call, ignore, valid)["call_rate"].item() == pytest.approx(2 / 9)


def test_ties_go_to_the_earliest_position_of_the_batch():
    losses = torch.ones(2, 5)
    fact = torch.ones(2, 5, dtype=torch.bool)
    call, _ = call_ignore_masks("lacy", losses, fact, ~fact, rate=0.3, ignore_rate=0.15)
    assert torch.equal(call, positions((0, 0), (0, 1), (0, 2)))


def test_spacy_samples_facts_uniformly_regardless_of_loss():
    n = 64 * 64
    losses = torch.arange(n, dtype=torch.float32).reshape(64, 64)
    fact = torch.ones(64, 64, dtype=torch.bool)
    call, _ = call_ignore_masks("spacy", losses, fact, ~fact, rate=0.25, ignore_rate=0.15, generator=torch.Generator().manual_seed(0))
    assert call.sum().item() == n // 4
    assert losses[call].mean().item() == pytest.approx((n - 1) / 2, rel=0.05)
    again, _ = call_ignore_masks("spacy", losses, fact, ~fact, rate=0.25, ignore_rate=0.15, generator=torch.Generator().manual_seed(0))
    other, _ = call_ignore_masks("spacy", losses, fact, ~fact, rate=0.25, ignore_rate=0.15, generator=torch.Generator().manual_seed(1))
    assert torch.equal(call, again) and not torch.equal(call, other)


def test_loss_based_calls_are_bernoulli_at_the_rate():
    shape = (64, 1024)
    valid = torch.rand(shape, generator=torch.Generator().manual_seed(5)) > 0.1
    fact = torch.zeros(shape, dtype=torch.bool)
    args = ("loss_based", torch.rand(shape), fact, fact)
    call, ignore = call_ignore_masks(*args, rate=0.15, ignore_rate=0.15, valid=valid, generator=torch.Generator().manual_seed(0))
    assert realised_rates(call, ignore, valid)["call_rate"].item() == pytest.approx(0.15, abs=0.005)
    assert not (call & ~valid).any() and not ignore.any()
    again, _ = call_ignore_masks(*args, rate=0.15, ignore_rate=0.15, valid=valid, generator=torch.Generator().manual_seed(0))
    assert torch.equal(call, again)


def test_unknown_method_lists_the_valid_names():
    with pytest.raises(ValueError, match="lacy_ignorefacts"):
        masks("lacy+ignore")


@pytest.mark.parametrize("method", ["rho1", "spacy_refloss"])
def test_reference_methods_need_reference_losses(method):
    with pytest.raises(ValueError, match="ref_losses"):
        call_ignore_masks(method, LOSSES, FACTS, GRAMMATICAL_, rate=0.15, ignore_rate=0.15)


def test_labels_must_be_bool():
    with pytest.raises(ValueError, match="fact"):
        call_ignore_masks("lacy", LOSSES, FACTS.to(torch.uint8), GRAMMATICAL_, rate=0.15, ignore_rate=0.15)


def test_select_top_with_a_device_budget():
    scores = torch.tensor([3.0, 1.0, 2.0, 5.0])
    eligible = torch.tensor([T_, T_, T_, F_])
    assert select_top(scores, eligible, torch.tensor(2.0)).tolist() == [T_, F_, T_, F_]
    assert select_top(scores, eligible, 1, highest=False).tolist() == [F_, T_, F_, F_]
    assert not select_top(scores, eligible, torch.tensor(-1.0)).any()


# ---- properties -------------------------------------------------------------------------------------------------

@st.composite
def batches(draw):
    b, t = draw(st.integers(1, 3)), draw(st.integers(1, 12))
    n = b * t
    value = st.sampled_from([0.0, 1.0, 2.0]) | st.floats(0, 10, allow_nan=False, width=32)
    as_tensor = lambda values, dtype: torch.tensor(values, dtype=dtype).reshape(b, t)  # noqa: E731
    labels = as_tensor(draw(st.lists(st.sampled_from([OTHER, GRAMMATICAL, FACT]), min_size=n, max_size=n)), torch.long)
    return dict(losses=as_tensor(draw(st.lists(value, min_size=n, max_size=n)), torch.float32),
                ref_losses=as_tensor(draw(st.lists(value, min_size=n, max_size=n)), torch.float32),
                fact=labels == FACT, grammatical=labels == GRAMMATICAL,
                valid=as_tensor(draw(st.lists(st.booleans(), min_size=n, max_size=n)), torch.bool),
                rate=draw(st.sampled_from([0.0, 0.15, 0.3, 0.5, 1.0])),
                ignore_rate=draw(st.sampled_from([0.0, 0.15, 0.3, 0.6])))


def run(method, batch, seed=0):
    return call_ignore_masks(method, generator=torch.Generator().manual_seed(seed), **batch)


def spread(scores, chosen, pool):
    """(lowest score among chosen, highest score among pool - chosen), with empty sets neutral."""
    low = scores[chosen].min().item() if chosen.any() else float("inf")
    high = scores[pool & ~chosen].max().item() if (pool & ~chosen).any() else float("-inf")
    return low, high


@settings(max_examples=60, deadline=None)
@given(batch=batches(), method=st.sampled_from(METHODS))
def test_masks_are_disjoint_and_on_valid_positions_only(batch, method):
    call, ignore = run(method, batch)
    assert call.dtype == ignore.dtype == torch.bool and call.shape == ignore.shape == batch["losses"].shape
    assert not (call & ignore).any()
    assert not ((call | ignore) & ~batch["valid"]).any()


@settings(max_examples=60, deadline=None)
@given(batch=batches(), method=st.sampled_from(["lacy", "spacy", "spacy_refloss", "lacy_ignorefacts", "lacy_ignore"]))
def test_fact_calls_meet_the_budget_or_take_every_fact(batch, method):
    call, _ = run(method, batch)
    facts = batch["fact"] & batch["valid"]
    k = round(batch["rate"] * batch["valid"].sum().item())
    assert not (call & ~facts).any()
    assert call.sum().item() == min(k, facts.sum().item())


@settings(max_examples=60, deadline=None)
@given(batch=batches(), method=st.sampled_from(["lacy", "spacy_refloss"]))
def test_called_facts_outrank_the_other_facts(batch, method):
    call, _ = run(method, batch)
    scores = batch["losses"] if method == "lacy" else batch["ref_losses"]
    low, high = spread(scores, call, batch["fact"] & batch["valid"])
    assert low >= high


@settings(max_examples=60, deadline=None)
@given(batch=batches())
def test_rho1_calls_the_rate_with_lowest_excess_loss(batch):
    call, _ = run("rho1", batch)
    assert call.sum().item() == round(batch["rate"] * batch["valid"].sum().item())
    low, high = spread(-(batch["losses"] - batch["ref_losses"]), call, batch["valid"])
    assert low >= high


@settings(max_examples=60, deadline=None)
@given(batch=batches())
def test_lacy_ignore_reaches_the_ignore_rate_with_remaining_facts_and_high_loss_others(batch):
    call, ignore = run("lacy_ignore", batch)
    valid = batch["valid"]
    remaining = batch["fact"] & valid & ~call
    others = valid & ~batch["fact"] & ~batch["grammatical"]
    k = round(batch["ignore_rate"] * valid.sum().item())
    n_remaining, n_others = remaining.sum().item(), others.sum().item()
    assert ignore.sum().item() == min(max(k, n_remaining), n_remaining + n_others)
    assert torch.equal(ignore & batch["fact"], remaining)
    assert not (ignore & batch["grammatical"]).any()
    low, high = spread(batch["losses"], ignore & others, others)
    assert low >= high


@settings(max_examples=60, deadline=None)
@given(batch=batches())
def test_llm_judge_and_lacy_ignorefacts_follow_the_labels(batch):
    facts = batch["fact"] & batch["valid"]
    call, _ = run("llm_judge", batch)
    assert torch.equal(call, facts)
    call, ignore = run("lacy_ignorefacts", batch)
    assert torch.equal(call | ignore, facts)


# ---- validation call mask (§A.4.3) ------------------------------------------------------------------------------

CALL_LOGITS = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0], [0.0, -1.0, -2.0, -3.0, -4.0]])


def test_validation_mask_caps_top_positions_to_the_highest_call_logits():
    is_top = positions((0, 1), (0, 2), (0, 4), (1, 0))  # 4 > k = 2
    assert torch.equal(validation_call_mask(CALL_LOGITS, is_top, rate=0.2), positions((0, 1), (0, 2)))


def test_validation_mask_tops_up_with_the_next_highest_call_logits():
    is_top = positions((1, 3))  # 1 < k = 2; every non-top position but one has a higher call logit
    assert torch.equal(validation_call_mask(CALL_LOGITS, is_top, rate=0.2), positions((1, 3), (0, 0)))


def test_validation_mask_skips_invalid_positions():
    is_top = positions((0, 0), (1, 3))
    valid = ~positions((0, 0), (0, 1))  # k = round(0.2 * 8) = 2
    mask = validation_call_mask(CALL_LOGITS, is_top, rate=0.2, valid=valid)
    assert torch.equal(mask, positions((1, 3), (0, 2)))


@settings(max_examples=60, deadline=None)
@given(batch=batches(), top=st.integers(0, 2**36))
def test_validation_mask_has_the_rate_and_prefers_top_positions(batch, top):
    call_logits, valid = batch["losses"], batch["valid"]
    is_top = torch.rand(call_logits.shape, generator=torch.Generator().manual_seed(top)) < 0.3
    mask = validation_call_mask(call_logits, is_top, rate=batch["rate"], valid=valid)
    k = round(batch["rate"] * valid.sum().item())
    n_top = (is_top & valid).sum().item()
    assert mask.sum().item() == k and not (mask & ~valid).any()
    if n_top <= k:
        assert not (is_top & valid & ~mask).any()
        low, high = spread(call_logits, mask & ~is_top, valid & ~is_top)
    else:
        assert not (mask & ~is_top).any()
        low, high = spread(call_logits, mask, is_top & valid)
    assert low >= high


def test_budget_rounds_like_python():
    valid = torch.ones(10, dtype=torch.bool)
    rates = (0.15, 0.25, 0.35, 1.0)
    assert [budget(valid, r).item() for r in rates] == [round(r * 10) for r in rates]


def test_section_4_worked_example_25_percent_facts_and_15_percent_calls():
    """§4: "we pick n such that 15% of tokens are calls in each mini-batch. This means that the 60% highest-loss
    fact tokens are delegated and the 40% lowest-loss fact tokens, as well as all non-fact tokens, are learned as
    normal" (with the spaCy annotation's 25 % facts). Table 5, LaCy row: C = L_spaCy · top n % of L(B; θ)."""
    losses = torch.randperm(200, generator=torch.Generator().manual_seed(0)).float().view(2, 100)
    fact = torch.zeros(2, 100, dtype=torch.bool)
    fact.view(-1)[torch.randperm(200, generator=torch.Generator().manual_seed(1))[:50]] = True  # 25 % facts
    call, ignore = call_ignore_masks("lacy", losses, fact, torch.zeros_like(fact), rate=0.15, ignore_rate=0.15)
    assert call.sum().item() == 30 == 0.6 * fact.sum().item()  # 15 % of 200 tokens = 60 % of the 50 facts
    assert not (call & ~fact).any() and not ignore.any()
    fact_losses = losses[fact].sort(descending=True).values
    assert torch.equal(losses[call].sort(descending=True).values, fact_losses[:30])  # the highest-loss facts
