"""Cascade partners (lacy.partners): the one-way import graph, the local RAG partner (§A.5 for a base model) and the
partner writing alone (§5.2's reference bars), with the tiny random partners of test_cascade."""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path

import pytest
import torch

from lacy import cascade
from lacy.cascade import CascadeSettings, generate_cached, generate_naive, generate_partner_alone
from lacy.partners import BatchedPartner, WritingPartner
from lacy.partners.local import LocalSession
from lacy.partners.rag import (LOCAL_RAG_PROMPT, RAG_PROMPT, LocalRagPartner, load_articles_of, local_rag_prompt)
from test_cascade import PROMPTS, _tiny_gemma, partner, saved, slm  # noqa: F401 (fixtures)

SRC = Path(__file__).resolve().parents[1] / "src"
ADA = "Ada Lovelace"
ADA_ARTICLE = ("Augusta Ada King, Countess of Lovelace, was an English mathematician and writer, chiefly known for "
               "her work on Charles Babbage's proposed mechanical general-purpose computer, the Analytical Engine. ")
GAUSS_ARTICLE = "Johann Carl Friedrich Gauss was a German mathematician, astronomer, geodesist, and physicist. "
ARTICLES = {ADA: ADA_ARTICLE * 2, "Carl Friedrich Gauss": GAUSS_ARTICLE}  # "Mo" has none
SUBJECTS = [ADA, "Carl Friedrich Gauss", "Mo"]


# --- the import graph -----------------------------------------------------------------------------------------


def import_graph() -> dict[str, set[str]]:
    """Every ``lacy`` module and the ``lacy`` modules it imports, at module level or inside functions."""
    modules = {}
    for path in (SRC / "lacy").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path

    def module_of(target: str) -> str | None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            imported |= {m for t in targets if t.startswith("lacy") and (m := module_of(t)) not in (None, name)}
        graph[name] = imported - {"lacy"}  # the package's label constants import nothing
    return graph


def test_partners_depend_on_nothing_that_uses_them_and_the_graph_has_no_circle():
    graph = import_graph()
    for module in [m for m in graph if m.startswith("lacy.partners")]:
        allowed_llm = module == "lacy.partners.rag"  # the served partner's HTTP endpoint
        assert not graph[module] & {"lacy.cascade", "lacy.cascade_cli", "lacy.factscore"}, module
        assert allowed_llm or "lacy.llm" not in graph[module], module
    assert not {m for m in graph["lacy.llm"] if m.startswith("lacy.partners")}, "both load models by lacy.local_models"
    assert graph["lacy.cascade"] & {m for m in graph if m.startswith("lacy.partners")} == {"lacy.partners.base"}
    assert "lacy.factscore" not in graph["lacy.knowledge"]

    def visit(module: str, path: list[str]) -> None:
        for nxt in graph[module]:
            assert nxt not in path, " -> ".join(path + [nxt])
            visit(nxt, path + [nxt])

    for module in graph:
        visit(module, [module])


# --- the local RAG partner -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gemma(partner):  # noqa: F811
    """A random Gemma 3 (sliding window 8) with the tiny partner's tokenizer: RoPE positions, no context limit
    that a background of a few hundred ids could pass."""
    return _tiny_gemma(partner)


def test_local_rag_prompt_keeps_the_listings_words_without_chat_markup():
    prompt = local_rag_prompt(ADA, "She was a mathematician.", PROMPTS[0])
    assert prompt == ("Write a short biography about Ada Lovelace. Here is some background information:\n"
                      "She was a mathematician.\n\nTell me a bio of Ada Lovelace. Ada Lovelace is")
    # the served listing's user turn holds the same words
    assert LOCAL_RAG_PROMPT.split("\n")[0] in RAG_PROMPT and "<|" not in LOCAL_RAG_PROMPT


def test_subject_without_an_article_gets_an_empty_background(gemma, tmp_path, caplog):
    knowledge = tmp_path / "articles.jsonl"
    knowledge.write_text(json.dumps({"title": ADA, "text": ADA_ARTICLE}) + "\n")
    with caplog.at_level(logging.WARNING):
        articles = load_articles_of([knowledge], [ADA, "Mo"])
    assert articles == {ADA: ADA_ARTICLE} and "1 of 2 subjects have no article" in caplog.text
    rag = LocalRagPartner(gemma, articles, "tiny + RAG (local)")
    assert rag.head("Mo") == "Write a short biography about Mo. Here is some background information:\n\n\n"
    assert rag.head(ADA).endswith(ADA_ARTICLE.rstrip() + "\n\n")
    long = LocalRagPartner(gemma, {ADA: ADA_ARTICLE * 60}, "tiny + RAG (local)")
    assert len(ADA_ARTICLE * 60) > 8000 and long.head(ADA).endswith((ADA_ARTICLE * 60)[:8000].rstrip() + "\n\n")
    with pytest.raises(ValueError, match="subject"):
        rag.session(None, use_cache=True)


def test_local_rag_session_reads_its_head_once(gemma):
    rag = LocalRagPartner(gemma, ARTICLES, "tiny + RAG (local)")
    view = rag.session(ADA, use_cache=True)

    def input_ids(text: str) -> list[int]:
        return gemma.input_ids(rag.head(ADA) + text)

    head_ids = len(input_ids(""))
    assert head_ids > 100  # past the sliding window of 8 many times
    texts = [PROMPTS[0], PROMPTS[0] + " an", PROMPTS[0] + " an English", PROMPTS[0] + " an English mathematician"]
    fed, expected, previous = [], [], []
    for text in texts:
        before = view.session.fed
        reference = LocalSession(gemma, use_cache=False).next_token_logits(rag.head(ADA) + text)
        assert view.candidates(text, 5) == gemma.describe(reference.topk(5).indices.tolist())
        fed.append(view.session.fed - before)
        ids = input_ids(text)
        shared = next((n for n, (a, b) in enumerate(zip(previous, ids)) if a != b), min(len(previous), len(ids)))
        expected.append(len(ids) - min(shared, len(ids) - 1))  # the ids past the cached common prefix
        previous = ids
    assert fed == expected and fed[0] == len(input_ids(texts[0])) and max(fed[1:]) < 10
    assert view.session.fed < len(input_ids(texts[-1])) + 10 * (len(texts) - 1) < 2 * head_ids


def test_local_rag_cascade_is_the_same_batched_and_one_call_at_a_time(slm, small_tokenizer, gemma):  # noqa: F811
    rag = LocalRagPartner(gemma, ARTICLES, "tiny + RAG (local)")
    assert isinstance(rag, BatchedPartner) and isinstance(rag, WritingPartner)
    settings = CascadeSettings(call_rate=0.3, max_new_tokens=30)
    prompts = [cascade.bio_prompt(s) for s in SUBJECTS]
    batched = generate_cached(prompts, slm, small_tokenizer, rag, settings, SUBJECTS)
    alone = generate_cached(prompts, slm, small_tokenizer, rag, settings, SUBJECTS, partner_calls="sequence")
    for seq, one, subject in zip(batched, alone, SUBJECTS):
        naive = generate_naive(seq.prompt, slm, small_tokenizer, rag, settings, subject)
        assert seq.ids == one.ids == naive.ids and seq.sources == one.sources == naive.sources
        assert seq.budget.calls >= 3 and "partner" in seq.sources
        # the head was read once per sequence, not at every call
        assert seq.session.session.fed < len(seq.session.session.ids) + 2 * seq.budget.calls
    # the background changes the partner's answers (same SLM, same prompts, no article)
    plain = generate_cached(prompts, slm, small_tokenizer, LocalRagPartner(gemma, {}, "no articles"), settings,
                            SUBJECTS)
    assert [s.ids for s in plain][:2] != [s.ids for s in batched][:2]


# --- the partner alone -----------------------------------------------------------------------------------------


def _generate(lm, ids: list[int], settings: CascadeSettings) -> list[int]:
    """``transformers``' own greedy generation with its repetition penalty: the reference."""
    out = lm.model.generate(torch.tensor([ids]), max_new_tokens=settings.max_new_tokens, do_sample=False,
                            repetition_penalty=settings.repetition_penalty, eos_token_id=sorted(lm.eos_ids),
                            pad_token_id=0, attention_mask=torch.ones(1, len(ids), dtype=torch.long))
    return [i for i in out[0, len(ids):].tolist() if i not in lm.eos_ids]


def _generate_penalising_from(lm, ids: list[int], start: int, settings: CascadeSettings) -> list[int]:
    """Greedy generation over full forward passes, the repetition penalty (HF's rule) counting ``ids[start:]`` and
    what is written: the reference for a RAG partner, whose instruction and background are not penalised."""
    ids = list(ids)
    for _ in range(settings.max_new_tokens):
        logits = lm.model(torch.tensor([ids])).logits[0, -1]
        seen = torch.tensor(sorted(set(ids[start:])))
        logits[seen] = torch.where(logits[seen] < 0, logits[seen] * settings.repetition_penalty,
                                   logits[seen] / settings.repetition_penalty)
        token = int(logits.argmax())
        if token in lm.eos_ids:
            break
        ids.append(token)
    return ids


@pytest.mark.parametrize("kind", ["plain", "rag"])
def test_partner_alone_writes_what_transformers_generate_writes(partner, gemma, kind):  # noqa: F811
    """Plain: the ids of ``transformers``' generate with its repetition penalty. RAG: the penalty counts the
    biography's ids only, not the instruction and background before it (cascade module docstring); a strong
    penalty there, so that penalising the background too would change the ids."""
    writer = partner if kind == "plain" else LocalRagPartner(gemma, ARTICLES, "tiny + RAG (local)")
    lm = partner if kind == "plain" else gemma
    settings = CascadeSettings(call_rate=1.0, max_new_tokens=25, repetition_penalty=1.2 if kind == "plain" else 50.0)
    prompts = [cascade.bio_prompt(s) for s in SUBJECTS]
    batched = generate_partner_alone(prompts, writer, settings, SUBJECTS)
    for text, prompt, subject in zip(batched, prompts, SUBJECTS):
        one = generate_partner_alone([prompt], writer, settings, [subject])[0]
        assert text.ids == one.ids
        written = text.ids[text.n_input:]
        if kind == "plain":
            assert written == _generate(lm, text.ids[:text.n_input], settings)
        else:
            assert text.ids[:text.n_input] == lm.input_ids(writer.head(subject) + prompt)
            start = len(lm.input_ids(writer.head(subject)))
            assert 0 < start < text.n_input
            assert text.ids == _generate_penalising_from(lm, text.ids[:text.n_input], start, settings)
        assert len(written) == 25 and not text.ended and not text.stopped_by_context


def test_partner_alone_stops_at_its_end_of_sequence_token(partner, monkeypatch):  # noqa: F811
    settings = CascadeSettings(call_rate=1.0, max_new_tokens=20)
    free = generate_partner_alone(PROMPTS[:2], partner, settings)
    stop = free[0].ids[free[0].n_input + 5]
    monkeypatch.setattr(partner, "eos_ids", frozenset({stop}))
    ended, other = generate_partner_alone(PROMPTS[:2], partner, settings)
    assert ended.ended and ended.ids == free[0].ids[:free[0].ids.index(stop, free[0].n_input)]
    assert other.ids == free[1].ids[:len(other.ids)] and (other.ended or len(other.ids) == len(free[1].ids))
    record = cascade.partner_alone_record(ended, PROMPTS[0])
    assert record["n_tokens"] == len(ended.ids) - ended.n_input < 20
    assert record["generation"] == partner.decode(ended.ids[ended.n_input:])


def test_partner_alone_stops_at_the_partners_context(partner, monkeypatch):  # noqa: F811
    text = generate_partner_alone(PROMPTS[:1], partner, CascadeSettings(call_rate=1.0, max_new_tokens=20))[0]
    monkeypatch.setattr(partner, "context", text.n_input + 7)
    short = generate_partner_alone(PROMPTS[:1], partner, CascadeSettings(call_rate=1.0, max_new_tokens=20))[0]
    assert short.ids == text.ids[:text.n_input + 7] and short.stopped_by_context


# --- the partner of a `cascade.partners` entry (lacy.cascade_cli.load_cascade_partner) ----------------------------


def test_a_partner_entry_gives_the_local_the_local_rag_or_the_served_rag_partner(saved, tmp_path):  # noqa: F811
    from lacy.cascade_cli import load_cascade_partner
    from lacy.corpus import write_corpus
    from lacy.partners.local import LocalPartner
    from lacy.partners.rag import ServedRagPartner

    write_corpus(iter([{"id": "1", "title": ADA, "text": ADA_ARTICLE}]), tmp_path / "corpus", 1, 0.5, 0, "test")
    knowledge = [tmp_path / "corpus" / "corpus.json"]  # `knowledge: corpus`, as the workflow declares it
    model = str(saved / "partner")
    rag = {"knowledge": "corpus", "base_url": None, "api_key_env": None, "top_logprobs": None}

    def load(spec, cache_dir=None):
        return load_cascade_partner(spec, knowledge=knowledge, entities=[ADA, "Mo", None], cache_dir=cache_dir,
                                    device="cpu")

    plain = load({"name": "p", "model": model})
    assert isinstance(plain, LocalPartner) and plain.name == model
    local = load({"name": "r", "model": model, "rag": rag})
    assert isinstance(local, LocalRagPartner) and local.name == f"{model} + RAG (local)"
    assert local.articles == {ADA: ADA_ARTICLE}
    served_rag = rag | {"base_url": "http://127.0.0.1:9/v1"}  # nothing is asked before the cascade runs
    served = load({"name": "q", "model": "Qwen/Qwen3-32B", "rag": served_rag}, cache_dir=tmp_path / "cache")
    assert isinstance(served, ServedRagPartner) and served.name == "Qwen/Qwen3-32B + RAG"
    assert served.articles == {ADA: ADA_ARTICLE}
    with pytest.raises(ValueError, match="cache directory"):
        load({"name": "q", "model": "Qwen/Qwen3-32B", "rag": served_rag})
