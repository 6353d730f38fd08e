"""Training loss with call and ignore tokens (Eq. A.3/A.4) and validation losses (Eq. A.5/A.6)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lacy.losses import call_and_noncall_losses, lacy_loss, token_log_probs, true_token_losses
from lacy.masks import call_ignore_masks

B, T, V = 3, 7, 11
CALL_ID = V - 1


@pytest.fixture()
def batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(B, T, V, generator=g) * 3
    targets = torch.randint(0, CALL_ID, (B, T), generator=g)
    valid = torch.rand(B, T, generator=g) > 0.2
    call = (torch.rand(B, T, generator=g) < 0.3) & valid
    ignore = (torch.rand(B, T, generator=g) < 0.3) & ~call
    return logits, targets, valid, call, ignore


def reference_log_probs(logits, targets):
    """log p_\\CALL(x), log p(<CALL>) and log p(x) with two full log-softmaxes."""
    full = F.log_softmax(logits.double(), -1)
    without_call = F.log_softmax(logits[..., :CALL_ID].double(), -1)
    pick = lambda lp: lp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # noqa: E731
    return pick(without_call), full[..., CALL_ID], pick(full)


def test_token_log_probs_match_two_log_softmaxes(batch):
    logits, targets, *_ = batch
    before = logits.clone()
    ours = token_log_probs(logits, targets, CALL_ID)
    assert torch.equal(logits, before)  # <CALL> is set to -inf in a copy
    for got, want in zip(ours, reference_log_probs(logits, targets)):
        torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=0)


def test_call_must_be_the_last_token_id(batch):
    logits, targets, *_ = batch
    with pytest.raises(ValueError, match="last token id"):
        token_log_probs(logits, targets, CALL_ID - 1)


def test_bf16_logits_are_computed_in_float32(batch):
    logits, targets, valid, call, ignore = batch
    low = logits.bfloat16().requires_grad_()
    ours = token_log_probs(low, targets, CALL_ID)
    assert all(t.dtype == torch.float32 for t in ours)
    torch.testing.assert_close(ours.true, token_log_probs(low.detach().float(), targets, CALL_ID).true)
    loss = lacy_loss(low, targets, call, ignore, valid, CALL_ID)
    assert loss.dtype == torch.float32
    loss.backward()
    assert low.grad.dtype == torch.bfloat16


def test_baseline_is_cross_entropy_without_call(batch):
    logits, targets, valid, *_ = batch
    none = torch.zeros_like(valid)
    loss = lacy_loss(logits, targets, none, none, valid, CALL_ID)
    torch.testing.assert_close(loss, F.cross_entropy(logits[..., :CALL_ID][valid], targets[valid]))


def test_call_positions_are_trained_towards_call(batch):
    logits, targets, valid, *_ = batch
    everything = valid.clone()
    loss = lacy_loss(logits, targets, everything, torch.zeros_like(valid), valid, CALL_ID)
    torch.testing.assert_close(loss, -F.log_softmax(logits, -1)[..., CALL_ID][valid].mean())


def test_eq_a4_sums_calls_and_learned_tokens_over_all_valid_positions(batch):
    logits, targets, valid, call, ignore = batch
    without_call, log_p_call, _ = reference_log_probs(logits, targets)
    learned = valid & ~call & ~ignore
    expected = (-log_p_call[call].sum() - without_call[learned].sum()) / valid.sum()  # N counts ignored positions
    torch.testing.assert_close(lacy_loss(logits, targets, call, ignore, valid, CALL_ID).double(), expected)


def test_only_called_and_learned_positions_get_gradient(batch):
    logits, targets, valid, call, ignore = batch
    logits = logits.clone().requires_grad_()
    lacy_loss(logits, targets, call, ignore, valid, CALL_ID).backward()
    touched = logits.grad.abs().sum(-1) > 0
    assert torch.equal(touched, valid & ~ignore)
    assert (logits.grad[call][:, CALL_ID] < 0).all()  # the <CALL> logit is pushed up where called
    assert (logits.grad[valid & ~call & ~ignore][:, CALL_ID] == 0).all()  # p_\CALL does not depend on it


def test_selection_changes_targets_not_context():
    """Ignored tokens still serve as context: their inputs get gradient through later positions (Eq. A.4)."""
    torch.manual_seed(0)
    embed, head = torch.nn.Embedding(V, 8), torch.nn.Linear(8, V)
    inputs = torch.randint(0, CALL_ID, (1, T))
    targets = torch.randint(0, CALL_ID, (1, T))
    kept_targets = targets.clone()
    hidden = embed(inputs)
    hidden.retain_grad()
    logits = head(hidden.cumsum(1))  # causal: position i sees inputs 0..i
    valid = torch.ones(1, T, dtype=torch.bool)
    ignore = valid.clone()
    ignore[0, -1] = False  # only the last position is learned
    lacy_loss(logits, targets, torch.zeros_like(valid), ignore, valid, CALL_ID).backward()
    assert (hidden.grad.abs().sum(-1) > 0).all()
    assert torch.equal(targets, kept_targets)


def test_one_forward_pass_training_step(batch):
    """logits -> detached per-token losses -> masks -> loss on the same logits."""
    logits, targets, valid, *_ = batch
    logits = logits.clone().requires_grad_()
    losses = true_token_losses(logits, targets, CALL_ID)
    assert not losses.requires_grad
    torch.testing.assert_close(losses.double(), -reference_log_probs(logits.detach(), targets)[0])
    fact = torch.rand(B, T, generator=torch.Generator().manual_seed(1)) < 0.4
    call, ignore = call_ignore_masks("lacy_ignorefacts", losses, fact, ~fact, rate=0.15, ignore_rate=0.15, valid=valid)
    lacy_loss(logits, targets, call, ignore, valid, CALL_ID).backward()
    assert torch.equal(logits.grad.abs().sum(-1) > 0, valid & ~ignore)


def test_validation_losses_follow_eq_a5_and_a6(batch):
    logits, targets, valid, call_mask, _ = batch
    without_call, _, full = reference_log_probs(logits, targets)
    sums = call_and_noncall_losses(logits, targets, call_mask, valid, CALL_ID)
    called, not_called = valid & call_mask, valid & ~call_mask
    expected = {
        "call_loss_sum": -full[called].sum(),  # Eq. A.5 uses p, the full distribution
        "call_loss_without_call_sum": -without_call[called].sum(),
        "call_count": called.sum(),
        "noncall_loss_sum": -without_call[not_called].sum(),  # Eq. A.6 uses p_\CALL
        "noncall_count": not_called.sum(),
        "loss_sum": -without_call[valid].sum(),
        "count": valid.sum(),
    }
    assert sums.keys() == expected.keys()
    for key, want in expected.items():
        torch.testing.assert_close(sums[key].double(), want.double(), msg=key)
    assert sums["call_loss_sum"] > sums["call_loss_without_call_sum"]


def test_validation_sums_accumulate_over_batches(batch):
    logits, targets, valid, call_mask, _ = batch
    whole = call_and_noncall_losses(logits, targets, call_mask, valid, CALL_ID)
    halves = [call_and_noncall_losses(logits[s], targets[s], call_mask[s], valid[s], CALL_ID)
              for s in (slice(0, 1), slice(1, None))]
    for key in whole:
        torch.testing.assert_close(halves[0][key] + halves[1][key], whole[key])
