"""The cascade (§5.1, §A.5) with a tiny random SLM and a tiny random GPT-2 partner with its own byte-level BPE."""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

from lacy import cascade, cascade_cli, plan, render
from lacy.cascade import (CallBudget, CascadeSettings, PieceSegmenter, apply_repetition_penalty, choose_partner_token,
                          generate_cached, generate_naive, sequence_record)
from lacy.model import build_model
from lacy.partners.local import LocalPartner, LocalSession

PROMPTS = [cascade.bio_prompt("Ada Lovelace"), cascade.bio_prompt("Carl Friedrich Gauss"), cascade.bio_prompt("Mo")]


@pytest.fixture(scope="module")
def slm(small_tokenizer):
    torch.manual_seed(0)
    return build_model("test-tiny", small_tokenizer.vocab_size, 96, small_tokenizer.call_id).double().eval()


@pytest.fixture(scope="module")
def partner(wiki_records) -> LocalPartner:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator((r["text"] for r in wiki_records[:300]),
                            trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    torch.manual_seed(1)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=512, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=0, eos_token_id=0)
    return LocalPartner(model=GPT2LMHeadModel(config).double(), tokenizer=tokenizer, name="tiny-bpe")


def test_cached_cascade_equals_full_prefix_loop(slm, small_tokenizer, partner):
    settings = CascadeSettings(call_rate=0.3, max_new_tokens=40)
    cached = generate_cached(PROMPTS, slm, small_tokenizer, partner, settings)
    for seq in cached:
        naive = generate_naive(seq.prompt, slm, small_tokenizer, partner, settings)
        assert seq.ids == naive.ids
        assert seq.sources == naive.sources
        assert seq.cases == naive.cases
        assert "partner" in seq.sources and "slm" in seq.sources
        # the partner read each of its ids about once, not the whole prefix at every call
        assert seq.session.fed < len(seq.session.ids) + 2 * seq.budget.calls


def test_calls_are_made_at_the_budget_rate(slm, small_tokenizer, partner):
    settings = CascadeSettings(call_rate=0.2, max_new_tokens=60)
    records = [sequence_record(s, small_tokenizer, None)
               for s in generate_cached(PROMPTS[:2], slm, small_tokenizer, partner, settings)]
    summary = cascade.summarise(records, settings)
    # 2 x 60 steps of a random model: met to about one call per sequence (exactness: the budget tests below)
    assert abs(summary["realised_call_rate"] - 0.2) <= 0.03


def _realised_rate(target: float, drift: float, steps: int = 1000) -> float:
    rng = np.random.default_rng(0)
    budget = CallBudget(target, warm_start=list(rng.normal(size=10)))
    for value in rng.normal(size=steps) + np.linspace(0, drift, steps):
        budget.should_call(float(value))
    return budget.calls / budget.steps


@pytest.mark.parametrize("target", [0.05, 0.15, 0.3])
def test_running_quantile_meets_the_target_on_stationary_logits(target):
    assert abs(_realised_rate(target, drift=0.0) - target) < 0.01


@pytest.mark.parametrize("target", [0.05, 0.15, 0.3])
@pytest.mark.parametrize("drift", [-5.0, 5.0])
def test_drifting_logits_are_held_to_the_budget(target, drift):
    """Equal call budgets (§5.1) although <CALL> logits drift by 5 sd within one 100-token generation: at most
    two calls off (a plain running quantile realised 1-4 % falling and 10-53 % rising for these targets)."""
    assert abs(100 * _realised_rate(target, drift, steps=100) - 100 * target) <= 2 + 1e-9


def test_deficit_lowers_the_threshold_by_one_sd_per_call():
    budget = CallBudget(0.25, warm_start=[0.0, 1.0, 2.0, 3.0, 4.0])
    quantile, sd = np.quantile(budget.history, 0.75), np.std(budget.history)
    assert budget.threshold() == pytest.approx(quantile)
    budget.steps, budget.calls = 8, 0  # two calls behind
    assert budget.threshold() == pytest.approx(quantile - 2 * sd)
    budget.calls = 4  # two ahead
    assert budget.threshold() == pytest.approx(quantile + 2 * sd)


def test_budget_zero_never_calls():
    budget = CallBudget(0.0, warm_start=[0.0, 1.0])
    assert not any(budget.should_call(v) for v in [0.5, 0.2, 0.9])


def test_the_baseline_writes_alone_and_calling_methods_at_the_budget(slm, small_tokenizer, partner):
    """§5.2: "the baseline with no <CALL> augmentation" writes its biography alone, even where its untrained
    <CALL> logit would pass the running quantile; a calling method at the same budget calls."""
    assert plan.call_budget_of("baseline", 0.22) == 0.0
    assert plan.call_budget_of("lacy", 0.22) == plan.call_budget_of("rho1", 0.22) == 0.22
    for method, calls in (("baseline", False), ("loss_based", True)):
        settings = CascadeSettings(call_rate=plan.call_budget_of(method, 0.22), max_new_tokens=30)
        record = sequence_record(generate_cached(PROMPTS[:1], slm, small_tokenizer, partner, settings)[0],
                                 small_tokenizer, "Ada Lovelace")
        assert (record["n_calls"] > 0) is calls
        assert ({t["source"] for t in record["tokens"]} == {"slm"}) is not calls


def test_repetition_penalty_matches_transformers():
    torch.manual_seed(0)
    logits = torch.randn(1, 50)
    seen = torch.tensor([[3, 7, 7, 12, 49]])
    expected = RepetitionPenaltyLogitsProcessor(1.2)(seen, logits.clone())
    got = apply_repetition_penalty(logits[0], seen[0].unique(), 1.2)
    torch.testing.assert_close(got, expected[0])


def test_greedy_token_never_calls_and_avoids_repeats():
    logits = torch.tensor([2.0, 1.9, 0.0, 5.0])  # id 3 is <CALL>
    assert cascade.greedy_slm_token(logits, [1], call_id=3, penalty=1.2) == 0
    assert cascade.greedy_slm_token(logits, [0], call_id=3, penalty=1.2) == 1


def test_every_expressible_partner_token_decodes_exactly(small_tokenizer, partner):
    segmenter = PieceSegmenter(small_tokenizer)
    prefix = small_tokenizer.encode(PROMPTS[0]).tolist()
    lengths = Counter()
    for token in range(len(partner.tokenizer)):
        text = partner.tokenizer.decode([token])
        ids = segmenter.segment(text, 3) if text and "\ufffd" not in text else None
        if ids is not None:
            lengths[len(ids)] += 1
            assert small_tokenizer.decode(prefix + ids) == PROMPTS[0] + text
    assert lengths[1] and lengths[2] and lengths[3]


def test_multi_piece_partner_token_is_appended_whole(small_tokenizer, partner):
    segmenter = PieceSegmenter(small_tokenizer)
    token = next(t for t in range(len(partner.tokenizer))
                 if len(segmenter.segment(partner.tokenizer.decode([t]), 3) or []) == 3)
    answer = choose_partner_token(partner.describe([token]), segmenter, 3, Counter())
    assert answer.rank == 0 and len(answer.ids) == 3
    assert small_tokenizer.decode(answer.ids) == partner.tokenizer.decode([token]).lstrip(" ") or \
        small_tokenizer.decode([0] + answer.ids).endswith(partner.tokenizer.decode([token]))


def test_inexpressible_candidates_fall_to_the_next_best(small_tokenizer, partner):
    segmenter = PieceSegmenter(small_tokenizer)
    vocab = range(len(partner.tokenizer))
    partial = next(t for t in vocab if "\ufffd" in partner.tokenizer.decode([t]))
    too_long = next(t for t in vocab if t not in partner.special_ids and "\ufffd" not in
                    partner.tokenizer.decode([t]) and segmenter.segment(partner.tokenizer.decode([t]), 1) is None)
    good = partner.tokenizer.convert_tokens_to_ids("Ġthe")
    rejected = Counter()
    answer = choose_partner_token(partner.describe([partner.tokenizer.eos_token_id, partial, too_long, good]),
                                  segmenter, 1, rejected)
    assert answer.rank == 3 and answer.text == " the"
    assert rejected == Counter(special=1, partial_utf8=1, not_in_vocabulary=1)


def test_record_keeps_provenance(slm, small_tokenizer, partner):
    seq = generate_cached(PROMPTS[:1], slm, small_tokenizer, partner, CascadeSettings(call_rate=0.3,
                                                                                      max_new_tokens=30))[0]
    record = sequence_record(seq, small_tokenizer, "Ada Lovelace")
    assert record["n_tokens"] == 30 == len(record["tokens"])
    assert [t["source"] for t in record["tokens"]] == seq.sources
    assert record["generation"] == "".join(t["text"] for t in record["tokens"])
    assert record["prompt"] + record["generation"] == small_tokenizer.decode(seq.ids)
    cases = record["partner_cases"]
    assert record["n_calls"] == cases["single"] + cases["multi"] + cases["slm_fallback"]
    assert sum(t["source"] == "partner" for t in record["tokens"]) >= cases["single"] + cases["multi"] - 2


def test_generation_stops_at_the_slm_context(small_tokenizer, partner):
    torch.manual_seed(0)
    short = build_model("test-tiny", small_tokenizer.vocab_size, 32, small_tokenizer.call_id).eval()
    seq = generate_cached(PROMPTS[:1], short, small_tokenizer, partner, CascadeSettings(call_rate=0.22, max_new_tokens=100))[0]
    assert len(seq.ids) == 32 and seq.stopped_by_context


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    cascade_cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.fixture(scope="module")
def saved(tmp_path_factory, small_tokenizer, partner):
    root = tmp_path_factory.mktemp("cascade")
    torch.manual_seed(0)
    build_model("test-tiny", small_tokenizer.vocab_size, 96, small_tokenizer.call_id).save_pretrained(root / "slm")
    small_tokenizer.save_pretrained(root / "slm")
    partner.model.float().save_pretrained(root / "partner")
    partner.tokenizer.save_pretrained(root / "partner")
    partner.model.double()
    return root


def test_generate_command_marks_partner_tokens(saved, capsys):
    args = _parser().parse_args(["generate", PROMPTS[0], "--model", str(saved / "slm"), "--partner",
                                 str(saved / "partner"), "--call-rate", "0.4", "--max-new-tokens", "20",
                                 "--colour", "never"])
    args.func(args)
    out = capsys.readouterr().out
    assert out.startswith(PROMPTS[0]) and "[" in out and "]" in out and "call rate" in out


def test_cascade_command_writes_jsonl_summary_html_and_pdf(saved, tmp_path):
    entities = tmp_path / "entities.txt"
    entities.write_text("Ada Lovelace\nAlan Turing\nMarie Curie\n")
    args = _parser().parse_args(["cascade", "--call-rate", "0.22", "--entities", str(entities), "--model", str(saved / "slm"),
                                 "--partner", str(saved / "partner"), "--max-new-tokens", "12", "--batch-size", "2",
                                 "--out", str(tmp_path / "gen.jsonl"), "--summary", str(tmp_path / "summary.json"),
                                 "--html", str(tmp_path / "gen.html"), "--pdf", str(tmp_path / "gen.pdf")])
    args.func(args)
    records = [json.loads(line) for line in (tmp_path / "gen.jsonl").read_text().splitlines()]
    assert [r["entity"] for r in records] == ["Ada Lovelace", "Alan Turing", "Marie Curie"]
    assert records[1]["prompt"] == "Tell me a bio of Alan Turing. Alan Turing is"
    assert json.loads((tmp_path / "summary.json").read_text())["generations"] == 3
    assert "<mark>" in (tmp_path / "gen.html").read_text()
    assert (tmp_path / "gen.pdf").read_bytes().startswith(b"%PDF")


def test_pdf_view_has_one_page_per_generation(tmp_path, slm, small_tokenizer, partner):
    seqs = generate_cached(PROMPTS, slm, small_tokenizer, partner, CascadeSettings(call_rate=0.3, max_new_tokens=40))
    records = [sequence_record(s, small_tokenizer, e) for s, e in zip(seqs, ["Ada Lovelace", "C. F. Gauss", None])]
    records[0]["tokens"].append({"text": " costs $5 and\n50% of {x}", "source": "partner"})  # no mathtext
    render.render_pdf(records, tmp_path / "view.pdf", "test-tiny with tiny-bpe")
    data = (tmp_path / "view.pdf").read_bytes()
    assert data.startswith(b"%PDF") and len(re.findall(rb"/Type /Page\b", data)) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["view.pdf"]  # written under a temporary name, then renamed


# --- the RAG cascade partner of §A.5 against a local server playing the served model -----------------------

ARTICLE = "Augusta Ada King, Countess of Lovelace, was an English mathematician. " * 140  # 9,940 characters


@pytest.fixture()
def knowledge(tmp_path):
    path = tmp_path / "articles.jsonl"
    path.write_text(json.dumps({"title": "Ada Lovelace", "text": ARTICLE}) + "\n")
    return path


def _rag_partner(server, knowledge, tmp_path, **kwargs):
    from lacy.partners.rag import load_served_rag_partner

    return load_served_rag_partner("Qwen/Qwen3-32B", base_url=server.base_url, knowledge=[knowledge],
                                   entities=["Ada Lovelace", "Mo"], cache_dir=tmp_path / "cache", **kwargs)


def test_rag_prompt_holds_the_name_the_truncated_article_and_the_text_so_far(slm, small_tokenizer, knowledge,
                                                                             tmp_path):
    from lacy.partners.rag import RAG_PROMPT
    from test_llm import FakeCompletionsServer

    with FakeCompletionsServer(lambda prompt: {" the": -0.4, " of": -1.5}) as server:
        rag = _rag_partner(server, knowledge, tmp_path, api_key_env=None)
        ada, mo = generate_cached(PROMPTS[::2], slm, small_tokenizer, rag, CascadeSettings(call_rate=0.3,
                                                                                            max_new_tokens=30),
                                  ["Ada Lovelace", "Mo"])
    head = RAG_PROMPT.split("{person_name}")[0]
    ada_prompts = [r["prompt"] for r in server.requests if "about Ada Lovelace." in r["prompt"]]
    assert len(ada_prompts) == ada.budget.calls > 0 and len(server.requests) == ada.budget.calls + mo.budget.calls
    background = ARTICLE[:8000]
    assert len(ARTICLE) > 8000 and not background[-1].isspace()
    for prompt in ada_prompts:
        assert prompt.startswith(head + "Ada Lovelace. Here is some background information:\n" + background +
                                 "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n" + PROMPTS[0])
    # the text so far grows from call to call; a subject without an article gets no background
    assert len(set(ada_prompts)) == len(ada_prompts)
    assert any("about Mo. Here is some background information:\n<|im_end|>" in r["prompt"] for r in server.requests)
    assert ada.sources.count("partner") == ada.cases["single"] + ada.cases["multi"] > 0
    assert small_tokenizer.decode(ada.ids).count(" the") >= ada.cases["single"]


def test_rag_partner_takes_the_next_best_token_when_the_top_one_is_not_expressible(slm, small_tokenizer, knowledge,
                                                                                  tmp_path):
    from test_llm import FakeCompletionsServer

    top = {"<|im_end|>": -0.1, " Supercalifragilisticexpialidocious": -0.7, "\ufffd": -0.9, " the": -2.0}
    with FakeCompletionsServer(lambda prompt: top) as server:
        rag = _rag_partner(server, knowledge, tmp_path, api_key_env=None)
        seq = generate_cached(PROMPTS[:1], slm, small_tokenizer, rag, CascadeSettings(call_rate=0.3,
                                                                                     max_new_tokens=30),
                              ["Ada Lovelace"])[0]
    calls = seq.budget.calls
    assert calls > 0 and seq.cases["next_best"] == calls and seq.cases["slm_fallback"] == 0
    assert seq.rejected == Counter(special=calls, not_in_vocabulary=calls, partial_utf8=calls)
    record = sequence_record(seq, small_tokenizer, "Ada Lovelace")
    # a dangling byte-fallback piece of the random SLM just before a call renders as U+FFFD in front of it
    assert {t["text"].lstrip("\ufffd") for t in record["tokens"] if t["source"] == "partner"} == {" the"}


def test_rag_cascade_command_caches_answers_and_never_writes_the_key(saved, knowledge, tmp_path, monkeypatch):
    from test_llm import FakeCompletionsServer

    monkeypatch.setenv("LACY_TEST_RAG_KEY", "sk-rag-secret-42")
    entities = tmp_path / "entities.txt"
    entities.write_text("Ada Lovelace\nMo\n")

    def run(server, out):
        args = _parser().parse_args(["cascade", "--batch-size", "2", "--entities", str(entities), "--model", str(saved / "slm"),
                                     "--partner", "Qwen/Qwen3-32B", "--rag-base-url", server.base_url,
                                     "--rag-knowledge", str(knowledge), "--api-key-env", "LACY_TEST_RAG_KEY",
                                     "--cache-dir", str(tmp_path / "cache"), "--call-rate", "0.3",
                                     "--max-new-tokens", "16", "--out", str(out), "--summary", str(out) + ".json",
                                     "--html", str(out) + ".html", "--pdf", str(out) + ".pdf"])
        args.func(args)

    with FakeCompletionsServer(lambda prompt: {" the": -0.4, " of": -1.5}) as server:
        run(server, tmp_path / "first.jsonl")
        n_requests = len(server.requests)
        assert n_requests > 0 and {h["Authorization"] for h in server.headers} == {"Bearer sk-rag-secret-42"}
        run(server, tmp_path / "again.jsonl")
        assert len(server.requests) == n_requests  # every answer came from the cache
    assert (tmp_path / "first.jsonl").read_text() == (tmp_path / "again.jsonl").read_text()
    summary = json.loads((tmp_path / "first.jsonl.json").read_text())
    assert summary["partner"] == "Qwen/Qwen3-32B + RAG" and summary["partner_cases"]["single"] > 0
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"sk-rag-secret-42" not in path.read_bytes(), path


def test_rag_partner_without_its_key_stops_before_any_request(saved, knowledge, tmp_path, monkeypatch):
    from lacy.llm import MissingCredentialsError
    from test_llm import FakeCompletionsServer

    monkeypatch.delenv("LACY_TEST_RAG_KEY", raising=False)
    with FakeCompletionsServer(lambda prompt: {" the": -0.4}) as server:
        args = _parser().parse_args(["generate", PROMPTS[0], "--entity", "Ada Lovelace", "--model",
                                     str(saved / "slm"), "--partner", "Qwen/Qwen3-32B", "--rag-base-url",
                                     server.base_url, "--rag-knowledge", str(knowledge), "--api-key-env",
                                     "LACY_TEST_RAG_KEY", "--cache-dir", str(tmp_path / "cache"),
                                     "--call-rate", "0.22", "--max-new-tokens", "12"])
        with pytest.raises(MissingCredentialsError, match="LACY_TEST_RAG_KEY"):
            args.func(args)
        assert server.requests == []


def _tiny_gemma(partner) -> LocalPartner:
    """A random Gemma 3 with the real one's alternation of sliding (window 8 here, 512 there) and full layers."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=len(partner.tokenizer), hidden_size=32, intermediate_size=64,
                              num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                              sliding_window=8, layer_types=["sliding_attention", "full_attention"])
    return LocalPartner(model=Gemma3ForCausalLM(config).double(), tokenizer=partner.tokenizer, name="tiny-gemma")


def _full_prefix_logits(partner: LocalPartner, text: str) -> torch.Tensor:
    return LocalSession(partner, use_cache=False).next_token_logits(text)


SHORT, LONG = "Ada was a", "Ada was an English mathematician and writer, chiefly known for her work"


def test_partner_cache_is_exact_across_a_sliding_window(partner):
    """Crops before and past a sliding window keep the partner's logits exact (transformers raised a shape error
    cropping the real Gemma-3-270M's own sliding cache at 668 tokens, window 512: our masks do the window)."""
    gemma = _tiny_gemma(partner)
    assert len(partner.tokenizer(SHORT).input_ids) < 8 < len(partner.tokenizer(LONG).input_ids)
    cached = LocalSession(gemma, use_cache=True)
    for text, fed in ((SHORT, None), (SHORT + "n", 1), (LONG, None), (LONG + "s", 1), (LONG + " on", None)):
        before = cached.fed
        torch.testing.assert_close(cached.next_token_logits(text), _full_prefix_logits(gemma, text))
        assert cached.ids == partner.tokenizer(text).input_ids
        if fed is not None:  # "work" -> "works": the cache was cropped by one id and one id fed, not the whole text
            assert cached.fed - before == fed, text


@pytest.mark.parametrize("model", ["gpt2", "gemma3"])
def test_batched_partner_logits_equal_each_text_read_alone(partner, model):
    """One forward pass over sequences with caches of different lengths (none, short, past the window), new ids of
    different lengths, and a crop, gives each text's full-prefix logits."""
    lm = partner if model == "gpt2" else _tiny_gemma(partner)
    sessions = [LocalSession(lm, use_cache=True) for _ in range(4)]
    lm.next_token_logits(sessions[1:], [SHORT, LONG, LONG + " and"])
    texts = [LONG + " in 1815", SHORT + "n", LONG + "s", LONG + " and a"]  # fresh, crop, crop past window, extend
    logits = lm.next_token_logits(sessions, texts)
    for row, text in zip(logits, texts):
        expected = _full_prefix_logits(lm, text)
        torch.testing.assert_close(row, expected)
        assert row.topk(20).indices.tolist() == expected.topk(20).indices.tolist()
    assert [s.ids for s in sessions] == [partner.tokenizer(t).input_ids for t in texts]
    assert sessions[1].fed == len(sessions[1].ids) + 1 and sessions[3].fed == len(sessions[3].ids)
    # each session's stored keys and values serve its next call, in any company
    for some in (sessions[:1], sessions[::-1]):
        more = [s.partner.tokenizer.decode(s.ids) + "," for s in some]
        for row, text in zip(lm.next_token_logits(some, more), more):
            torch.testing.assert_close(row, _full_prefix_logits(lm, text))


def test_batched_cascade_gives_the_per_sequence_tokens(slm, small_tokenizer, partner, monkeypatch):
    """All sequences calling at a step go through the partner together; prompts of different lengths, steps where
    some call and others do not, multi-piece answers: the same tokens as one call at a time, as calls gathered
    across steps (the SLM's cache then holds more slots than its 96 positions) and as the reference."""
    prompts = PROMPTS + [cascade.bio_prompt("Wolfgang Amadeus Mozart"), "Ada"]
    settings = CascadeSettings(call_rate=0.3, max_new_tokens=40)
    sizes = []
    next_token_logits = partner.next_token_logits

    def recording(sessions, texts):
        sizes.append(len(sessions))
        return next_token_logits(sessions, texts)

    monkeypatch.setattr(partner, "next_token_logits", recording)
    batched = generate_cached(prompts, slm, small_tokenizer, partner, settings)
    assert sum(sizes) == sum(s.budget.calls for s in batched) and len(sizes) < sum(sizes)
    assert max(sizes) >= 3 and min(sizes) < len(prompts)  # several sequences at once, and some steps mixed
    assert sum(s.cases["multi"] for s in batched) > 0
    sizes.clear()
    one_by_one = generate_cached(prompts, slm, small_tokenizer, partner, settings, partner_calls="sequence")
    assert set(sizes) == {1} and len(sizes) == sum(s.budget.calls for s in one_by_one)
    sizes.clear()
    slm_passes = []
    forward = slm.forward
    monkeypatch.setattr(slm, "forward", lambda *args, **kwargs: slm_passes.append(1) or forward(*args, **kwargs))
    gathered = generate_cached(prompts, slm, small_tokenizer, partner, settings, partner_calls="gather")
    assert max(s.n_prompt for s in gathered) + len(slm_passes) - 1 > slm.config.n_positions  # cache slots
    assert sum(sizes) == sum(s.budget.calls for s in gathered) and max(sizes) == len(prompts)
    assert len(sizes) < sum(s.budget.calls for s in gathered) / 3  # over three calls per partner pass
    for seq, alone, gather in zip(batched, one_by_one, gathered):
        naive = generate_naive(seq.prompt, slm, small_tokenizer, partner, settings)
        assert seq.ids == alone.ids == gather.ids == naive.ids, seq.prompt
        assert seq.sources == alone.sources == gather.sources == naive.sources
        assert seq.cases == alone.cases == gather.cases == naive.cases
        assert seq.session.fed == alone.session.fed == gather.session.fed


# --- the local RAG partner and the partner alone from the command line ----------------------------------------


@pytest.fixture()
def entity_records(tmp_path):
    path = tmp_path / "entities.jsonl"
    path.write_text("".join(json.dumps({"entity": e, "split": s, "description": "x"}) + "\n"
                            for e, s in [("Ada Lovelace", "train"), ("Alan Turing", "validation"), ("Mo", "train")]))
    return path


def _run(argv: list[str]) -> None:
    args = _parser().parse_args(argv)
    args.func(args)


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_rag_knowledge_without_an_endpoint_gives_the_local_rag_partner(saved, entity_records, tmp_path):
    knowledge = tmp_path / "articles.jsonl"
    knowledge.write_text(json.dumps({"title": "Ada Lovelace", "text": ARTICLE[:300]}) + "\n")
    common = ["cascade", "--batch-size", "2", "--entities", str(entity_records), "--model", str(saved / "slm"), "--partner",
              str(saved / "partner"), "--call-rate", "0.4", "--max-new-tokens", "16"]
    _run(common + ["--rag-knowledge", str(knowledge), "--out", str(tmp_path / "rag.jsonl"), "--summary",
                   str(tmp_path / "rag.json")])
    _run(common + ["--out", str(tmp_path / "plain.jsonl")])
    summary = json.loads((tmp_path / "rag.json").read_text())
    assert summary["partner"] == f"{saved / 'partner'} + RAG (local)" and summary["partner_cases"]["single"] > 0
    rag, plain = _lines(tmp_path / "rag.jsonl"), _lines(tmp_path / "plain.jsonl")
    assert [r["entity"] for r in rag] == ["Ada Lovelace", "Alan Turing", "Mo"]
    assert rag[0]["generation"] != plain[0]["generation"]  # Ada's background changed the partner's answers


def test_partner_alone_writes_cascade_records_that_score_offline(saved, entity_records, tmp_path):
    from test_factscore import main as factscore

    _run(["cascade", "--batch-size", "2", "--call-rate", "0.22", "--entities", str(entity_records), "--model", str(saved / "slm"), "--partner",
          str(saved / "partner"), "--max-new-tokens", "12", "--out", str(tmp_path / "cascade.jsonl")])
    outputs = {name: tmp_path / f"alone.{name}" for name in ("jsonl", "json", "html", "pdf")}
    _run(["cascade", "--partner-alone", "--entities", str(entity_records), "--partner", str(saved / "partner"),
          "--max-new-tokens", "12", "--batch-size", "2", "--out", str(outputs["jsonl"]), "--summary",
          str(outputs["json"]), "--html", str(outputs["html"]), "--pdf", str(outputs["pdf"])])
    cascaded, alone = _lines(tmp_path / "cascade.jsonl"), _lines(outputs["jsonl"])
    assert [list(r) for r in alone] == [list(r) for r in cascaded]  # the same fields in the same order
    assert [r["entity"] for r in alone] == ["Ada Lovelace", "Alan Turing", "Mo"]
    for record in alone:
        assert record["prompt"] == cascade.bio_prompt(record["entity"])
        assert {t["source"] for t in record["tokens"]} == {"partner"} and record["n_tokens"] <= 12
        assert record["generation"] == "".join(t["text"] for t in record["tokens"])
    summary = json.loads(outputs["json"].read_text())
    assert summary["partner_alone"] and summary["model"] is None and summary["partner_token_share"] == 1.0
    assert "<mark>" in outputs["html"].read_text() and outputs["pdf"].read_bytes().startswith(b"%PDF")
    # scored as it stands by the offline fact precision
    knowledge = tmp_path / "corpus.jsonl"
    knowledge.write_text(json.dumps({"title": "Ada Lovelace", "text": ARTICLE[:300]}) + "\n")
    factscore(["factscore", "offline", "--generations", str(outputs["jsonl"]), "--knowledge", str(knowledge),
               "--out", str(tmp_path / "scores.json")])
    assert json.loads((tmp_path / "scores.json").read_text())["n_entities"] == 3


def test_partner_alone_command_is_the_same_batched_and_one_at_a_time(saved, entity_records, tmp_path):
    for batch in ("1", "3"):
        _run(["cascade", "--partner-alone", "--entities", str(entity_records), "--partner", str(saved / "partner"),
              "--max-new-tokens", "10", "--batch-size", batch, "--out", str(tmp_path / f"b{batch}.jsonl")])
    assert (tmp_path / "b1.jsonl").read_text() == (tmp_path / "b3.jsonl").read_text()


def test_partner_alone_and_the_cascade_need_their_own_options(saved, tmp_path):
    entities = tmp_path / "entities.txt"
    entities.write_text("Ada Lovelace\n")
    for extra, message in ([["--partner-alone", "--model", str(saved / "slm")], "drop --model"], [[], "needs --model"]):
        with pytest.raises(SystemExit, match=message):
            _run(["cascade", "--batch-size", "2", "--max-new-tokens", "12", "--call-rate", "0.22", "--entities", str(entities), "--partner", str(saved / "partner"),
                  "--out", str(tmp_path / "x.jsonl")] + extra)


def test_a_cascade_without_its_call_budget_stops_before_loading_a_model(tmp_path, monkeypatch):
    """One check, in decoding_settings, for `lacy generate`, `lacy cascade` and the cascade rule's write_cascade alike:
    no call rate, no cascade (a bad input's ValueError, which `lacy` prints), before a partner or SLM is loaded."""
    entities = tmp_path / "entities.txt"
    entities.write_text("Ada Lovelace\n")

    def no_loading(*args, **kwargs):
        raise AssertionError("loaded a model before checking the call budget")

    monkeypatch.setattr(cascade_cli, "load_cascade_partner", no_loading)
    monkeypatch.setattr(cascade_cli, "load_slm", no_loading)
    for argv in (["generate", PROMPTS[0], "--model", "slm", "--max-new-tokens", "12"],
                 ["cascade", "--model", "slm", "--entities", str(entities), "--max-new-tokens", "12", "--batch-size",
                  "2", "--out", str(tmp_path / "x.jsonl")]):
        with pytest.raises(ValueError, match="needs its call budget"):
            _run(argv)
    assert not (tmp_path / "x.jsonl").exists()


def test_cascade_command_gives_write_cascade_its_own_defaults():
    """`lacy cascade` without its optional flags calls write_cascade with its own defaults, the decoding settings of
    CascadeSettings (§A.5's repetition penalty 1.2; 3 pieces per partner token, 20 partner candidates); `lacy
    generate` shares these options."""
    from command_calls import command_call, function_defaults

    got, defaults = command_call(cascade_cli, "write_cascade",
                                 ["cascade", "--call-rate", "0.22", "--model", "slm", "--entities", "e.jsonl",
                                  "--max-new-tokens", "256", "--batch-size", "8", "--out", "o.jsonl"])
    assert got == defaults
    settings = {"repetition_penalty": 1.2, "max_pieces": 3, "partner_top_k": 20}
    assert {k: function_defaults(CascadeSettings)[k] for k in settings} == settings
    assert defaults == settings | {"partner_calls": "gather", "summary": None, "html": None, "pdf": None, "threads": 0,
                                   "max_entities": 0, "device": None}
    assert {k: function_defaults(cascade_cli.decoding_settings)[k] for k in settings} == settings


def test_served_rag_partner_alone_writes_on_its_server_with_the_same_settings(knowledge, entity_records, tmp_path):
    from lacy.partners.rag import background, rag_prompt
    from test_llm import FakeCompletionsServer

    class ContinuingServer(FakeCompletionsServer):
        def respond(self, body: dict) -> tuple[int, dict]:
            tokens = [" an", " English", " mathemat", "ician", "."][:body["max_tokens"]]
            logprobs = {"tokens": tokens, "token_logprobs": [-0.1] * len(tokens),
                        "top_logprobs": [{t: -0.1} for t in tokens], "text_offset": list(range(len(tokens)))}
            finish = "stop" if len(tokens) < body["max_tokens"] else "length"
            return 200, {"id": "cmpl-test", "object": "text_completion", "created": 0, "model": body["model"],
                         "choices": [{"index": 0, "text": "".join(tokens), "finish_reason": finish,
                                      "logprobs": logprobs}],
                         "usage": {"prompt_tokens": 1, "completion_tokens": len(tokens), "total_tokens": 2}}

    def run(server, out, max_new_tokens):
        _run(["cascade", "--batch-size", "2", "--partner-alone", "--entities", str(entity_records), "--partner", "Qwen/Qwen3-32B",
              "--rag-base-url", server.base_url, "--rag-knowledge", str(knowledge), "--cache-dir",
              str(tmp_path / "cache"), "--max-new-tokens", max_new_tokens, "--out", str(out), "--summary",
              str(out) + ".json"])

    with ContinuingServer(lambda prompt: {}) as server:
        run(server, tmp_path / "alone.jsonl", "16")
        assert len(server.requests) == 3
        run(server, tmp_path / "again.jsonl", "16")
        assert len(server.requests) == 3  # every biography came from the cache
        run(server, tmp_path / "short.jsonl", "3")
    first = server.requests[0]
    assert first["prompt"] == rag_prompt("Ada Lovelace", background(ARTICLE), cascade.bio_prompt("Ada Lovelace"))
    assert (first["max_tokens"], first["temperature"], first["repetition_penalty"]) == (16, 0.0, 1.2)
    records = _lines(tmp_path / "alone.jsonl")
    assert (tmp_path / "alone.jsonl").read_text() == (tmp_path / "again.jsonl").read_text()
    assert [t["text"] for t in records[0]["tokens"]] == [" an", " English", " mathemat", "ician", "."]
    assert records[0]["generation"] == " an English mathematician."
    assert [r["n_tokens"] for r in _lines(tmp_path / "short.jsonl")] == [3, 3, 3]
    summary = json.loads((tmp_path / "alone.jsonl.json").read_text())
    assert summary["partner"] == "Qwen/Qwen3-32B + RAG" and summary["partner_alone"]


def test_records_carry_the_split_of_their_entity(saved, entity_records, tmp_path):
    """Whether the SLM trained on the subject's article: the split of ``lacy corpus entities``, after the entity."""
    common = ["--partner", str(saved / "partner"), "--max-new-tokens", "4"]
    _run(["cascade", "--batch-size", "2", "--call-rate", "0.22", "--entities", str(entity_records),
          "--model", str(saved / "slm"), "--out", str(tmp_path / "cascade.jsonl")] + common)
    _run(["cascade", "--batch-size", "2", "--partner-alone", "--entities", str(entity_records),
          "--out", str(tmp_path / "alone.jsonl")] + common)
    for name in ("cascade", "alone"):
        records = _lines(tmp_path / f"{name}.jsonl")
        assert [(r["entity"], r["split"]) for r in records] == [("Ada Lovelace", "train"),
                                                                ("Alan Turing", "validation"), ("Mo", "train")]
        assert list(records[0])[:3] == ["entity", "split", "prompt"]
    plain = tmp_path / "entities.txt"
    plain.write_text("Ada Lovelace\n")
    _run(["cascade", "--batch-size", "2", "--max-new-tokens", "12", "--call-rate", "0.22", "--entities", str(plain), "--model", str(saved / "slm"), "--out", str(tmp_path / "gen.jsonl")]
         + common)
    assert "split" not in _lines(tmp_path / "gen.jsonl")[0]


# --- write_cascade: what the cascade_generate and partner_alone rules call, with a partner's config entry -------


def test_write_cascade_with_a_partner_entry_writes_what_the_command_writes(saved, entity_records, tmp_path):
    spec = {"name": "tiny", "model": str(saved / "partner")}  # a `cascade.partners` entry without rag
    for alone in (False, True):
        cli, rule = (tmp_path / f"{name}{int(alone)}" for name in ("cli", "rule"))
        _run(["cascade", "--entities", str(entity_records), "--partner", str(saved / "partner"), "--max-new-tokens",
              "12", "--batch-size", "2", "--partner-calls", "step", "--out", f"{cli}.jsonl", "--summary",
              f"{cli}.json", "--html", f"{cli}.html"]
             + (["--partner-alone"] if alone else ["--model", str(saved / "slm"), "--call-rate", "0.22"]))
        summary = cascade_cli.write_cascade(
            entity_records, spec, model=None if alone else saved / "slm", knowledge=[], cache_dir=tmp_path / "cache",
            call_rate=None if alone else 0.22, max_new_tokens=12, batch_size=2, partner_calls="step",
            out=rule.with_suffix(".jsonl"), summary=rule.with_suffix(".json"), html=rule.with_suffix(".html"))
        for suffix in (".jsonl", ".json", ".html"):
            assert rule.with_suffix(suffix).read_bytes() == cli.with_suffix(suffix).read_bytes(), (alone, suffix)
        assert summary == json.loads(rule.with_suffix(".json").read_text())
        assert summary["target_call_rate"] == (1.0 if alone else 0.22) and summary["generations"] == 3
    with pytest.raises(ValueError, match="call budget"):
        cascade_cli.write_cascade(entity_records, spec, model=saved / "slm", knowledge=[], cache_dir=None,
                                  call_rate=None, max_new_tokens=12, batch_size=2, out=tmp_path / "x.jsonl")


def test_write_cascade_asks_a_served_rag_partner_for_its_top_logprobs_from_the_declared_corpus(
        saved, entity_records, tmp_path):
    """A served RAG entry (§A.5) with ``top_logprobs``, its knowledge the corpus's ``corpus.json`` (as the workflow
    declares ``corpus``): the requests ask for that many candidates, and Ada's prompt holds her article."""
    from lacy.corpus import write_corpus
    from lacy.partners.rag import background
    from test_llm import FakeCompletionsServer

    write_corpus(iter([{"id": "1", "title": "Ada Lovelace", "text": ARTICLE[:300]}]), tmp_path / "corpus", 1, 0.5, 0,
                 "test")
    with FakeCompletionsServer(lambda prompt: {" the": -0.4, " of": -1.5}) as server:
        spec = {"name": "qwen3_rag", "model": "Qwen/Qwen3-32B", "rag": {
            "base_url": server.base_url, "api_key_env": None, "knowledge": "corpus", "top_logprobs": 7}}
        summary = cascade_cli.write_cascade(
            entity_records, spec, model=saved / "slm", knowledge=[tmp_path / "corpus" / "corpus.json"],
            cache_dir=tmp_path / "cache", call_rate=0.3, max_new_tokens=8, batch_size=2, out=tmp_path / "rag.jsonl")
        assert server.requests and {r["logprobs"] for r in server.requests} == {7}
        ada = [r["prompt"] for r in server.requests if "Ada Lovelace" in r["prompt"]]
        assert ada and all(background(ARTICLE[:300]) in p for p in ada)
    assert summary["partner"] == "Qwen/Qwen3-32B + RAG" and summary["partner_cases"]["single"] > 0
    assert [r["entity"] for r in _lines(tmp_path / "rag.jsonl")] == ["Ada Lovelace", "Alan Turing", "Mo"]
    with pytest.raises(ValueError, match="cache directory"):
        cascade_cli.write_cascade(entity_records, spec, model=None, knowledge=[tmp_path / "corpus" / "corpus.json"],
                                  cache_dir=None, call_rate=None, max_new_tokens=8, batch_size=2,
                                  out=tmp_path / "x.jsonl")
