"""FactScore (Min et al., 2023) and the offline fact precision (§5.2, §B)."""

from __future__ import annotations

import argparse
import json
import math
import re

import pytest

from lacy import cascade
from lacy import factscore as fs
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
                           settings=cascade.CascadeSettings(max_new_tokens=200), context=512)
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
    facts = [{"fact": "a", "supported": True}, {"fact": "b", "supported": False},
             {"fact": "c", "supported": True}, {"fact": "d", "supported": None}]
    result = fs.entity_result("X", facts)
    assert (result["n_facts"], result["n_supported"], result["n_unparsable"]) == (4, 2, 1)
    assert result["score"] == pytest.approx(2 / 3)
    assert fs.entity_result("Y", [])["abstained"] and fs.entity_result("Y", [])["score"] is None
    summary = fs.summarise("offline_fact_precision", [result, fs.entity_result("Y", []),
                                                      fs.entity_result("Z", [{"fact": "e", "supported": True}])],
                           n_resamples=100, seed=0)
    assert summary["score"] == pytest.approx((2 / 3 + 1) / 2)
    assert (summary["n_entities"], summary["n_scored"], summary["n_abstained"]) == (3, 2, 1)
    assert (summary["n_facts"], summary["n_supported"], summary["n_unparsable"]) == (5, 3, 1)


def test_length_penalty():
    assert fs.length_penalty(10) == 1.0 and fs.length_penalty(25) == 1.0
    assert fs.length_penalty(5) == pytest.approx(math.exp(-1))
    assert fs.length_penalty(1) == pytest.approx(math.exp(-9))
    assert fs.length_penalty(4, gamma=2) == 1.0


@pytest.mark.parametrize("answer, expected", [
    ("True", True), ("false.", False), ("  TRUE - the passage says so", True),
    ("The statement is false.", False), ("True or false: unclear", None), ("Maybe", None), ("", None),
])
def test_parse_judgement(answer, expected):
    assert fs.parse_judgement(answer) is expected


def test_parse_facts():
    assert fs.parse_facts("- A was born.\n- A is a poet.\n") == ["A was born.", "A is a poet."]
    assert fs.parse_facts("1. A was born.\n2) A is a poet.") == ["A was born.", "A is a poet."]
    assert fs.parse_facts("None") == []
    assert fs.parse_facts("I cannot help with that.") is None


def test_passages_and_bm25_retrieval():
    text = " ".join(f"w{i}" for i in range(10)) + " Lovelace wrote the first algorithm " + " ".join(
        f"v{i}" for i in range(10))
    assert fs.split_passages("a b c d e", 2) == ["a b", "c d", "e"]
    retriever = fs.PassageRetriever("Ada Lovelace", text, passage_words=8)
    assert len(retriever.passages) == 4
    assert "algorithm" in retriever.retrieve("Ada Lovelace first algorithm", k=1)[0]
    assert len(retriever.retrieve("anything", k=10)) == 4


# --- FactScore end to end against a local server playing the LLM ----------------------------------------

CANNED_FACTS = {
    "Ada Lovelace is an English mathematician.": "- Ada Lovelace was English.\n- Ada Lovelace was a mathematician.",
    "She was born in 1815.": "- Ada Lovelace was born in 1815.",
    "She was a French painter.": "- Ada Lovelace was French.\n- Ada Lovelace was a painter.",
    "She liked cats.": "Sure! She liked cats.",  # malformed twice -> unparsable sentence
    "Grace Hopper is a rear admiral.": "Grace Hopper was a rear admiral.",  # malformed once, then fine
    "Nobody Known is not someone I know.": "None",
}


def play_llm(messages: list[dict]) -> tuple[int, str]:
    """Canned atomic facts; a judge that says True iff the fact's last word occurs in the retrieved passages."""
    prompt = messages[-1]["content"]
    if prompt.startswith("Break the sentence"):
        sentence = prompt.rsplit("Sentence: ", 1)[1].split("\nFacts:")[0]
        if sentence.startswith("Grace") and fs.FACTS_REMINDER in prompt:
            return 200, "- Grace Hopper was a rear admiral."
        return 200, CANNED_FACTS[sentence]
    passages = prompt.split("\n\nStatement: ")[0]
    fact = prompt.split("Statement: ")[1].split("\n")[0]
    if "admiral" in fact:
        return 200, "Perhaps."  # malformed twice -> unparsable judgement
    last_word = re.findall(r"\w+", fact)[-1].lower()
    return 200, "True" if last_word in passages.lower() else "False"


def test_factscore_end_to_end(tmp_path):
    generations = tmp_path / "generations.jsonl"
    generations.write_text("\n".join(json.dumps(g) for g in [
        bio("Ada Lovelace", " an English mathematician. She was born in 1815. She was a French painter. She liked cats."),
        bio("Grace Hopper", " a rear admiral."),
        bio("Nobody Known", " not someone I know."),
        bio("Not In Corpus", " a poet."),
    ]) + "\n")
    knowledge = tmp_path / "corpus.jsonl"
    knowledge.write_text("\n".join(json.dumps(r) for r in [
        {"title": "Ada Lovelace", "text": ADA_REFERENCE + " She worked with Charles Babbage. " * 100},
        {"title": "grace hopper", "text": "Grace Hopper was an American computer scientist and rear admiral."},
        {"title": "Nobody Known", "text": "Nobody Known is unknown."},
    ]) + "\n")
    out = tmp_path / "factscore.json"
    with FakeChatServer(play_llm) as server:
        main(["factscore", "llm", "--generations", str(generations), "--knowledge", str(knowledge),
              "--out", str(out), "--model", "fake", "--base-url", server.base_url,
              "--cache-dir", str(tmp_path / "cache"), "--passage-words", "32", "--workers", "2"])
        n_requests = len(server.requests)
        # a rerun is answered from the cache
        main(["factscore", "llm", "--generations", str(generations), "--knowledge", str(knowledge),
              "--out", str(tmp_path / "again.json"), "--model", "fake", "--base-url", server.base_url,
              "--cache-dir", str(tmp_path / "cache"), "--passage-words", "32"])
        assert len(server.requests) == n_requests
    summary = json.loads(out.read_text())
    ada, grace, nobody, missing = summary["per_entity"]
    assert [f["supported"] for f in ada["facts"]] == [True, True, True, False, False]
    assert ada["score"] == pytest.approx(3 / 5) and ada["n_unparsable_sentences"] == 1
    assert ada["score_length_penalised"] == pytest.approx(3 / 5 * math.exp(1 - 10 / 5))
    assert grace["n_facts"] == 1 and grace["n_unparsable"] == 1 and grace["score"] is None
    assert nobody["abstained"] and nobody["n_facts"] == 0
    assert missing["no_reference"] and not missing["abstained"]
    assert summary["metric"] == "factscore" and summary["score"] == pytest.approx(0.6)
    assert summary["ci95"] == [pytest.approx(0.6), pytest.approx(0.6)]
    assert (summary["n_entities"], summary["n_scored"], summary["n_facts"]) == (4, 1, 6)
    assert (summary["n_abstained"], summary["n_unparsable"], summary["n_no_reference"]) == (1, 1, 1)
    assert summary["n_unparsable_sentences"] == 1 and summary["judge"] == "openai:fake"
    assert json.loads((tmp_path / "again.json").read_text()) == summary


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


def test_references_come_from_factscores_sqlite_dump(tmp_path):
    import sqlite3

    from lacy.factscore import FACTSCORE_DB_SEPARATOR, load_references

    db = tmp_path / "enwiki-20230401.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE documents (title PRIMARY KEY, text)")
        conn.execute("INSERT INTO documents VALUES (?, ?)",
                     ("Ada Lovelace", f"Ada Lovelace was a mathematician.{FACTSCORE_DB_SEPARATOR}She wrote notes."))
    refs = load_references([db], ["Ada Lovelace", "Nobody"])
    assert refs == {"Ada Lovelace": "Ada Lovelace was a mathematician. She wrote notes."}
