"""The word classes of §A.2.1 on the paper's own examples, on hand-parsed sentences that isolate one rule
each, and through SentencePiece (every piece of a word inherits its class)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import spacy
import spacy.util
from spacy.tokens import Doc

from lacy import FACT, GRAMMATICAL, LABEL_NAMES, OTHER
from lacy.annotation import Occurrences, annotate_stream, load_spacy, parse_documents, word_labels
from lacy.annotation.cli import labelled_words
from lacy.annotation.pipeline import MODEL_NAMES, split_long_text

F, G, O = "fact", "grammatical", "other"


@pytest.fixture(scope="module")
def nlp():
    return load_spacy()


def labels(nlp, text: str) -> list[tuple[str, str]]:
    """(word, label name) for every non-whitespace token of ``text``, as the real pipeline labels it."""
    return [(w["text"], w["label"]) for w in labelled_words(text, nlp)]


def label_of(nlp, text: str, word: str, occurrence: int = 0) -> str:
    found = [lab for w, lab in labels(nlp, text) if w == word]
    return found[occurrence]


def hand_parsed(nlp, rows: list[tuple[str, str, str, str, int]], ents: list[str] | None = None) -> Doc:
    """A Doc with fixed annotation (rows of word, POS, tag, dependency, absolute head), so that a test
    exercises one rule whatever the statistical parser would say."""
    words, pos, tags, deps, heads = (list(col) for col in zip(*rows))
    spaces = [not w.isspace() for w in words]
    return Doc(nlp.vocab, words=words, spaces=spaces, pos=pos, tags=tags, deps=deps, heads=heads,
               ents=ents or ["O"] * len(words))


def hand_labels(nlp, rows, ents=None) -> dict[str, str]:
    doc = hand_parsed(nlp, rows, ents)
    return {t.text: LABEL_NAMES[int(lab)] for t, lab in zip(doc, word_labels(doc))}


# --- pipeline ------------------------------------------------------------------------------------------

def test_pipeline_keeps_only_what_the_heuristics_read(nlp):
    assert nlp.pipe_names == ["tok2vec", "tagger", "parser", "attribute_ruler", "ner", "lacy_facts"]
    doc = nlp("She was a lawyer.")
    assert [t._.lacy_label for t in doc] == [OTHER, GRAMMATICAL, GRAMMATICAL, FACT, GRAMMATICAL]


def test_labels_of_a_pipeline_without_the_component_are_a_clear_error():
    doc = spacy.blank("en")("She was a lawyer.")
    with pytest.raises(ValueError, match="no 'lacy_facts' component"):
        doc[0]._.lacy_label


def test_missing_model_error_names_both_models(monkeypatch):
    monkeypatch.setattr(spacy.util, "is_package", lambda name: False)
    with pytest.raises(FileNotFoundError) as err:
        load_spacy()
    assert all(name in str(err.value) for name in MODEL_NAMES)


# --- step 1: named entities ----------------------------------------------------------------------------

def test_person_repeats_when_any_name_component_was_seen(nlp):
    got = labels(nlp, "Wolfgang Amadeus Mozart was a composer. Wolfgang was born in Salzburg.")
    assert got[:3] == [("Wolfgang", F), ("Amadeus", F), ("Mozart", F)]
    assert label_of(nlp, "Wolfgang Amadeus Mozart was a composer. Wolfgang was born in Salzburg.",
                    "Wolfgang", 1) == O
    assert ("Salzburg", F) in got


def test_repeated_surname_repeats_the_whole_person_mention(nlp):
    text = "Marie Curie was a physicist. Pierre Curie was her husband."
    assert label_of(nlp, text, "Marie") == F
    assert label_of(nlp, text, "Pierre") == O and label_of(nlp, text, "Curie", 1) == O


def test_titles_are_no_name_components(nlp):
    doc = hand_parsed(nlp, [("Dr", "PROPN", "NNP", "compound", 1), ("Smith", "PROPN", "NNP", "nsubj", 2),
                            ("met", "VERB", "VBD", "ROOT", 2), ("Dr", "PROPN", "NNP", "compound", 4),
                            ("Jones", "PROPN", "NNP", "dobj", 2)],
                      ents=["B-PERSON", "I-PERSON", "O", "B-PERSON", "I-PERSON"])
    assert word_labels(doc).tolist() == [OTHER, FACT, OTHER, OTHER, FACT]


def test_titles_are_person_cues_not_facts(nlp):
    # spaCy: entity "Smith" with "Dr." outside it, entity "Dr Smith", entity "Obama" in the chunk
    # "President Obama", and "Professor Jones" where only "Jones" is an entity.
    got = labels(nlp, "Dr. Smith met Professor Jones.")
    assert got[:5] == [("Dr.", O), ("Smith", F), ("met", O), ("Professor", O), ("Jones", F)]
    assert labels(nlp, "Dr Smith was born in London.")[:2] == [("Dr", O), ("Smith", F)]
    assert labels(nlp, "President Obama met Queen Elizabeth.")[:2] == [("President", O), ("Obama", F)]
    assert label_of(nlp, "He met the president.", "president") == F  # no name follows: an ordinary noun


def test_a_person_name_component_does_not_make_a_place_a_repeat(nlp):
    text = "Jack London wrote novels. He later lived in London. London had been his home."
    assert [label_of(nlp, text, "London", k) for k in range(3)] == [F, F, O]  # PERSON, GPE, GPE again
    rows = [("Paris", "PROPN", "NNP", "compound", 1), ("Hilton", "PROPN", "NNP", "nsubj", 2),
            ("visited", "VERB", "VBD", "ROOT", 2), ("Paris", "PROPN", "NNP", "dobj", 2)]
    assert hand_labels(nlp, rows, ["B-PERSON", "I-PERSON", "O", "B-GPE"])["Paris"] == F
    assert word_labels(hand_parsed(nlp, rows, ["B-PERSON", "I-PERSON", "O", "B-PERSON"]))[3] == OTHER
    # An untagged one-word chunk "Paris" (a proper-noun object, else a fact) is still the PERSON again.
    assert word_labels(hand_parsed(nlp, rows, ["B-PERSON", "I-PERSON", "O", "O"]))[3] == OTHER
    assert word_labels(hand_parsed(nlp, rows, ["B-ORG", "I-ORG", "O", "O"]))[3] == FACT


def test_other_entities_repeat_only_as_the_full_string(nlp):
    text = "He joined the Royal Society in 1901. The Royal Society awarded him a medal. The Society was old."
    got = labels(nlp, text)
    assert label_of(nlp, text, "Royal") == F and label_of(nlp, text, "Royal", 1) == O
    assert label_of(nlp, text, "Society", 1) == O
    assert label_of(nlp, text, "Society", 2) == F  # "Society" is a new full string, unlike a PERSON component
    assert ("1901", F) in got


def test_grammatical_words_stay_grammatical_inside_an_entity(nlp):
    got = labels(nlp, "She studied at the University of Vienna.")
    assert got == [("She", O), ("studied", O), ("at", G), ("the", G), ("University", F), ("of", G),
                   ("Vienna", F), (".", G)]


def test_occurrences_are_case_insensitive_and_shared_by_entities_and_chunks(nlp):
    assert label_of(nlp, "She studied physics. Later she taught Physics.", "Physics") == O
    text = "The Beatles were a band. Later, the Beatles split."
    assert label_of(nlp, text, "Beatles") == F and label_of(nlp, text, "Beatles", 1) == O


# --- step 2: noun chunks -------------------------------------------------------------------------------

def test_predicative_attribute_is_a_fact(nlp):
    assert labels(nlp, "She was a lawyer.") == [("She", O), ("was", G), ("a", G), ("lawyer", F), (".", G)]


def test_direct_object_is_a_fact(nlp):
    assert labels(nlp, "She studied physics.") == [("She", O), ("studied", O), ("physics", F), (".", G)]


def test_coordinated_words_take_the_role_of_the_word_they_are_joined_to(nlp):
    # spaCy: "novelist" is conj of "poet" (attr), "playwright" conj of "novelist"; "chemistry" conj of "physics".
    got = dict(labels(nlp, "He was a poet, novelist and playwright."))
    assert (got["poet"], got["novelist"], got["playwright"]) == (F, F, F)
    assert labels(nlp, "She studied physics and chemistry.") == [
        ("She", O), ("studied", O), ("physics", F), ("and", G), ("chemistry", F), (".", G)]
    assert label_of(nlp, "Marie Curie, a physicist and chemist, discovered radium.", "chemist") == F
    # The role of the first conjunct is shared, whatever it is: here a common-noun subject, no fact.
    got = dict(labels(nlp, "A poet and novelist argued."))
    assert (got["poet"], got["novelist"]) == (O, O)


def test_appositive_is_a_fact(nlp):
    text = "Marie Curie, a physicist, discovered radium."
    assert [label_of(nlp, text, w) for w in ("Marie", "Curie", ",", "a", "physicist")] == [F, F, G, G, F]


def test_nouns_under_a_manner_preposition_are_no_facts(nlp):
    assert label_of(nlp, "He became famous by studying physics.", "physics") == O
    assert label_of(nlp, "He became famous by studying physics and chemistry.", "chemistry") == O


def test_a_role_qualified_by_a_manner_preposition_is_no_fact(nlp):
    # The paper's example: "by training" qualifies the predicative attribute (spaCy attaches it to "lawyer").
    assert labels(nlp, "He was a lawyer by training.") == [
        ("He", O), ("was", G), ("a", G), ("lawyer", O), ("by", G), ("training", O), (".", G)]
    assert label_of(nlp, "By training, he was a lawyer.", "lawyer") == O  # "By" attached to "was"
    assert label_of(nlp, "Mozart, a composer by profession, lived in Vienna.", "composer") == O  # appositive
    got = dict(labels(nlp, "She is a physician by training and a writer by choice."))
    assert (got["physician"], got["writer"]) == (O, O)
    # Contrast: the same roles without the qualification, a manner phrase that qualifies the verb, and
    # prepositional phrases on the noun that are no manner phrase (an agent; "with" of possession).
    assert label_of(nlp, "Mozart, a composer, lived in Vienna.", "composer") == F
    assert label_of(nlp, "He taught mathematics by correspondence.", "mathematics") == F
    assert label_of(nlp, "He was a lawyer with a large practice.", "lawyer") == F

    def direct_object_by(obj, pos, tag):
        return hand_labels(nlp, [("She", "PRON", "PRP", "nsubj", 1), ("played", "VERB", "VBD", "ROOT", 1),
                                 ("music", "NOUN", "NN", "dobj", 1), ("by", "ADP", "IN", "prep", 2),
                                 (obj, pos, tag, "pobj", 3)])["music"]
    assert direct_object_by("ear", "NOUN", "NN") == O  # a direct object qualified by a manner phrase
    assert direct_object_by("Bach", "PROPN", "NNP") == F  # an agent


def test_every_occurrence_counts_even_one_that_was_no_fact(nlp):
    text = "A lawyer argued. She was a lawyer."
    assert label_of(nlp, text, "lawyer") == O  # subject, common noun: no criterion holds
    assert label_of(nlp, text, "lawyer", 1) == O  # would be a fact as first occurrence


def test_org_keyword_or_leading_the_makes_a_chunk_factual(nlp):
    assert label_of(nlp, "She spoke to a town council.", "council") == F
    assert label_of(nlp, "She spoke to a town crowd.", "crowd") == O
    assert label_of(nlp, "She spoke to the crowd.", "crowd") == F


def test_words_after_born_or_died_are_likely_a_person(nlp):
    def sentence(verb):
        return hand_labels(nlp, [("He", "PRON", "PRP", "nsubjpass", 2), ("was", "AUX", "VBD", "auxpass", 2),
                                 (verb, "VERB", "VBN", "ROOT", 2), ("reginald", "NOUN", "NN", "compound", 4),
                                 ("dwight", "NOUN", "NN", "oprd", 2)])
    assert sentence("born")["dwight"] == F and sentence("born")["reginald"] == F
    assert sentence("named")["dwight"] == O


def test_born_or_died_governs_a_chunk_through_a_preposition(nlp):
    assert label_of(nlp, "He was born in a small village.", "village") == F
    assert label_of(nlp, "She died in a car accident.", "accident") == F
    assert label_of(nlp, "He died at home in 1990.", "home") == F
    assert label_of(nlp, "He lived in a small village.", "village") == O  # no cue
    # The cue reaches only its own prepositions: "raised" (conj of "born") has its own "in".
    assert label_of(nlp, "He was born in a small village and raised in a town.", "town") == O


def test_a_title_marks_a_person(nlp):
    def sentence(first):
        return hand_labels(nlp, [("She", "PRON", "PRP", "nsubj", 1), ("talked", "VERB", "VBD", "ROOT", 1),
                                 ("to", "ADP", "IN", "prep", 1), (first, "NOUN", "NN", "compound", 4),
                                 ("Jones", "NOUN", "NN", "pobj", 2)])
    assert sentence("professor") == {"She": O, "talked": O, "to": G, "professor": O, "Jones": F}
    assert sentence("tall")["Jones"] == O


def test_capitalised_subject_is_likely_a_person_unless_only_sentence_initial(nlp):
    named = hand_labels(nlp, [("Yesterday", "NOUN", "NN", "npadvmod", 2), ("Smithers", "NOUN", "NN", "nsubj", 2),
                              ("left", "VERB", "VBD", "ROOT", 2)])
    assert named["Smithers"] == F
    initial = hand_labels(nlp, [("Researchers", "NOUN", "NNS", "nsubj", 1), ("left", "VERB", "VBD", "ROOT", 1)])
    assert initial["Researchers"] == O


def test_proper_noun_chunk_is_a_fact(nlp):
    def sentence(pos):
        return hand_labels(nlp, [("He", "PRON", "PRP", "nsubj", 1), ("dreamt", "VERB", "VBD", "ROOT", 1),
                                 ("of", "ADP", "IN", "prep", 1), ("xanadu", pos, "NN", "pobj", 2)])
    assert sentence("PROPN")["xanadu"] == F
    assert sentence("NOUN")["xanadu"] == O


def test_noun_chunks_are_split_at_newlines(nlp):
    # One chunk "The old \n mill": "the" leads only the first piece, so "mill" is no fact.
    got = hand_labels(nlp, [("The", "DET", "DT", "det", 3), ("old", "ADJ", "JJ", "amod", 3),
                            ("\n", "SPACE", "_SP", "dep", 3), ("mill", "NOUN", "NN", "nsubj", 4),
                            ("burned", "VERB", "VBD", "ROOT", 4)])
    assert (got["The"], got["old"], got["mill"]) == (G, F, O)
    unsplit = hand_labels(nlp, [("The", "DET", "DT", "det", 2), ("old", "ADJ", "JJ", "amod", 2),
                                ("mill", "NOUN", "NN", "nsubj", 3), ("burned", "VERB", "VBD", "ROOT", 3)])
    assert unsplit["mill"] == F


def test_numbers_are_facts_on_first_occurrence_only(nlp):
    got = hand_parsed(nlp, [("He", "PRON", "PRP", "nsubj", 1), ("scored", "VERB", "VBD", "ROOT", 1),
                            ("1987", "NUM", "CD", "dobj", 1), (",", "PUNCT", ",", "punct", 1),
                            ("1987", "NUM", "CD", "conj", 2), ("and", "CCONJ", "CC", "cc", 4),
                            ("1988", "NUM", "CD", "conj", 4)])
    assert word_labels(got).tolist() == [OTHER, OTHER, FACT, GRAMMATICAL, OTHER, GRAMMATICAL, FACT]
    text = "He was born in 1987. In 1987 he moved."
    assert label_of(nlp, text, "1987") == F and label_of(nlp, text, "1987", 1) == O


# --- step 3: grammatical words -------------------------------------------------------------------------

def test_grammatical_classes_of_the_paper(nlp):
    text = "Unless my brother and his friends have arrived on time, each of them might leave until this evening?"
    got = dict(labels(nlp, text))
    for word in ("my", "each", "this", "on", "until", "and", "Unless", "have", "might", ",", "?"):
        assert got[word] == G, word
    assert got["arrived"] == O and got["them"] == O
    assert label_of(nlp, "An apple - maybe.", "-") == G


# --- documents: occurrence tracking across pieces, offsets, odd input -------------------------------------

def test_occurrence_tracking_continues_across_pieces_of_a_long_document(nlp):
    first = "Wolfgang Amadeus Mozart was a composer.\n"
    second = "Mozart was born in Salzburg.\n"
    text = first + "He wrote music. " * 20 + "\n" + second
    assert split_long_text(text, 200)[-1].endswith(second) and len(split_long_text(text, 200)) == 2
    [parsed] = parse_documents([text], nlp, max_chars=200)
    assert len(parsed.docs) > 1
    mozart = [lab for doc, labs in zip(parsed.docs, parsed.labels) for t, lab in zip(doc, labs) if t.text == "Mozart"]
    assert mozart == [FACT, OTHER]
    [alone] = parse_documents([second], nlp)
    assert alone.labels[0][0] == FACT


def test_document_longer_than_spacy_max_length_is_split(nlp, monkeypatch, small_tokenizer):
    text = "Alan Turing was an English mathematician. " * 30 + "Turing worked at Bletchley Park."
    monkeypatch.setattr(nlp, "max_length", 300)
    [(ids, labs)] = list(annotate_stream([text], small_tokenizer, nlp))
    assert ids.tolist() == small_tokenizer.encode(text).tolist()
    words = [w for w in labelled_words(text, nlp) if w["text"] == "Turing"]
    assert [w["label"] for w in words[:2]] == [F, O] and words[-1]["label"] == O
    assert all(text[w["start"]:w["end"]] == "Turing" for w in words)


def test_split_long_text_is_lossless_and_prefers_newlines_then_sentences():
    text = "First paragraph is here.\nSecond one. It has two sentences and goes on for a while"
    pieces = split_long_text(text, 40)
    assert "".join(pieces) == text and all(len(p) <= 40 for p in pieces)
    assert pieces[0] == "First paragraph is here.\n"
    assert split_long_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


def test_word_view_offsets_point_into_the_text(nlp):
    text = "Café Müller opened in São Paulo in 1987.\n\n東京 is big."
    words = list(labelled_words(text, nlp))
    assert all(text[w["start"]:w["end"]] == w["text"] for w in words)
    got = {w["text"]: w["label"] for w in words}
    assert (got["São"], got["Paulo"], got["1987"], got["in"]) == (F, F, F, G)
    assert list(labelled_words("", nlp)) == [] and list(labelled_words(" \n ", nlp)) == []


def test_word_view_command(nlp):
    out = subprocess.run([sys.executable, "-m", "lacy", "annotate", "words"], input="She studied physics.",
                         capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[2] == '{"text": "physics", "start": 12, "end": 19, "label": "fact"}'


# --- tokens inherit their word's class -------------------------------------------------------------------

def test_every_piece_of_a_number_inherits_fact(nlp, small_tokenizer):
    text = "He was born in 1987 in Vienna."
    [(ids, labs)] = list(annotate_stream([text], small_tokenizer, nlp))
    pieces = [small_tokenizer.sp.id_to_piece(int(i)) for i in ids]
    number = [k for k, p in enumerate(pieces) if any(c.isdigit() for c in p)]
    assert len(number) > 1, pieces  # the test needs "1987" split into several pieces
    assert labs[number].tolist() == [FACT] * len(number)
    assert labs[pieces.index("▁was")] == GRAMMATICAL


def test_stream_keeps_order_and_handles_empty_and_non_ascii_documents(nlp, small_tokenizer):
    texts = ["She studied physics.", "", "東京 is big 🎉. Zoë Ångström met Björk.", "  \n"]
    out = list(annotate_stream(texts, small_tokenizer, nlp))
    assert len(out) == len(texts)
    for text, (ids, labs) in zip(texts, out):
        assert ids.tolist() == small_tokenizer.encode(text).tolist() and len(labs) == len(ids)
    assert len(out[1][0]) == 0 and out[1][1].dtype == np.uint8
    assert FACT in out[2][1]


def test_occurrences_object_can_be_carried_by_hand(nlp):
    seen = Occurrences()
    first, second = nlp("She studied physics."), nlp("He studied physics.")
    word_labels(first, seen)
    assert word_labels(second, seen)[2] == OTHER
    assert word_labels(second)[2] == FACT
