"""Word classes of §A.2.1: *fact*, *grammatical* and *other*, from one parsed spaCy ``Doc``.

The paper's steps, in its order:

1. **Named entities.** Only the first mention of an entity is a fact. A ``PERSON`` mention repeats if any
   of its name components was mentioned before ("Wolfgang" after "Wolfgang Amadeus Mozart"); any other
   entity (``ORG``, ``GPE``, ``DATE``, ...) repeats only if its full text was, so a name component does not
   make a place a repeat ("London" after "Jack London").
2. **Noun chunks**, split at whitespace tokens (newlines), are a fact on their first occurrence when they
   are likely a ``PERSON`` (subject or appositive that looks like a name; after "born"/"died", or
   governed by one through a preposition, "born in X"; after or starting with a title such as "Dr"),
   likely an ``ORG`` (an organisation keyword, or a leading "the"), contain a proper noun, or are a
   common noun that is a predicative attribute, direct object or appositive, neither governed nor
   qualified by a manner preposition ("he was a lawyer by training"). Words joined by coordination take
   the role of the word they are joined to ("a poet, novelist and playwright": three predicative
   attributes). Titles are cues for a person, not facts. Numeric words are a fact on their first
   occurrence; spaCy keeps "1987" as one word, so it is one number.
3. **Grammatical**: determiners, prepositions, conjunctions, auxiliaries, punctuation.
4. **Other**: everything else, including repeated mentions.

Choices where §A.2.1 leaves room (each is tested in ``tests/test_annotation_rules.py``):

* Grammatical words stay grammatical inside facts: in "the University of Vienna" only "University" and
  "Vienna" are facts. Grammatical means spaCy's coarse tag ``DET``, ``ADP``, ``CCONJ``, ``SCONJ``,
  ``AUX`` or ``PUNCT``, plus the determiner fine tags ``DT``, ``PRP$``, ``WP$``, ``PDT``, ``WDT`` ("my"
  and "each" are the paper's own determiner examples; spaCy may call them pronouns).
* Occurrence tracking is case-insensitive (spaCy's ``LOWER``) and ignores grammatical words: a mention's
  key is the lowercased sequence of its non-grammatical words, so "the Beatles" repeats "Beatles".
  Entities and noun chunks share one record of mentions, so a chunk "Salzburg" repeats an entity
  "Salzburg". A one-word noun chunk (not an entity) that is a component of an earlier ``PERSON`` name
  repeats it: spaCy often misses the surname alone as a ``PERSON``. An entity of another type does not.
* Every occurrence is recorded, whether or not it was labelled a fact: after "A lawyer argued.", the
  predicate of "She was a lawyer." is a repeat. Words are compared as written, not lemmatised. The paper's argument (a second mention is predictable from context)
  is about occurrence, not about the first occurrence's label.
* A ``PERSON`` mention with any component seen in an earlier ``PERSON`` mention is a repeat as a whole,
  as the paper states, so "Pierre Curie" after "Marie Curie" is not a fact; so is one whose full text
  was an earlier mention of any kind ("Beatles" after the noun chunk "The Beatles"). Titles and
  suffixes ("Dr", "Jr.") are not name components, or every "Dr X" would repeat "Dr Y".
* A title ("Dr", "Professor", "President", ... in ``TITLES``) directly followed by a capitalised word of
  the same entity or chunk is a cue, labelled other and never a name component; without a name
  after it ("the president") it is an ordinary word.
* Inside a fact noun chunk, the words that become facts are those not in a named entity (step 1 decides
  those), not numeric (the number rule decides those), and neither grammatical nor a pronoun, particle
  or whitespace ("'s" in "Mozart's" stays other). Inside a first-mention entity, every non-grammatical
  word is a fact, except a title before a name.
* The chunk's syntactic role is that of its last token (spaCy's chunk root; after a whitespace split, the
  last token of each piece), or, if that token is a conjunct (spaCy ``conj``, which chains "novelist" to
  "poet" and "playwright" to "novelist"), that of the first conjunct. This holds for every role the rules
  read: in "Yesterday Smithers and Jones left" both names are subjects. "Looks like a name" means every
  fact-eligible word is capitalised and at least one of them is not sentence-initial, so "Researchers
  found ..." is no name. A title counts if it directly precedes the chunk, or starts a chunk that has more
  words ("Professor Jones"). "Born" or "died" governs a chunk through a preposition when the chunk's
  role-bearing word is the object of a preposition attached to the cue ("born in a small village", "died
  at home"), one level deep only.
* "Governed by a manner preposition" means the chunk's head is the object of "by", "with", "without",
  "through" or "via", directly ("by training") or through a gerund ("by studying physics").
* "Qualified by a manner preposition" (the paper's "he was a lawyer by training", where the predicative
  attribute "lawyer" is no fact) means "by" with a bare singular common noun (tag ``NN``, no dependents)
  attached to the chunk's head, or, for a predicative attribute, to its copula ("By training, he was a
  lawyer"). Only "by": on the default corpus, "by" + bare noun on an attribute, object or appositive is
  the manner reading ("physician by profession", "largest lake by area", "duchess by marriage"), while
  "with", "through", "via" and "without" there almost always describe the noun ("a court with
  jurisdiction", "a compound with the chemical formula ..."), and "by" with a determiner or a name is an
  agent ("a symphony by Beethoven").
* Numeric words are spaCy's ``LIKE_NUM`` or ``NUM`` tokens ("1987", "two", "19th"). Numbers inside an
  entity are recorded as seen, so after the date "27 January 1756" a "1756" that spaCy does not tag as
  an entity is a repeat (one it tags as a ``DATE`` is a new full entity string, hence a fact).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import itemgetter
from typing import Iterator

import numpy as np
from spacy.attrs import DEP, HEAD, IDX, IS_SPACE, LIKE_NUM, LOWER, POS, SENT_START, TAG
from spacy.parts_of_speech import ADP, AUX, CCONJ, DET, INTJ, NOUN, NUM, PART, PRON, PROPN, PUNCT, SCONJ, SPACE
from spacy.strings import get_string_id
from spacy.symbols import PERSON
from spacy.tokens import Doc

from lacy import FACT, GRAMMATICAL, OTHER


def _ids(*strings: str) -> frozenset[int]:
    """spaCy's integer ids of ``strings``, as ``Doc.to_array`` reports them for LOWER, TAG and DEP."""
    return frozenset(get_string_id(s) for s in strings)


#: Step 3: determiners, prepositions, conjunctions, auxiliaries, punctuation.
GRAMMATICAL_POS = np.array([DET, ADP, CCONJ, SCONJ, AUX, PUNCT], dtype=np.uint64)
DETERMINER_TAGS = np.array(sorted(_ids("DT", "PRP$", "WP$", "PDT", "WDT")), dtype=np.uint64)
#: Words that never become facts through a noun chunk.
NON_CONTENT_POS = np.array([PRON, PART, SPACE, INTJ], dtype=np.uint64)

#: Step 2, likely PERSON: syntactic roles, and context cues.
PERSON_ROLES = _ids("nsubj", "nsubjpass", "appos")
BIRTH_DEATH_CUES = _ids("born", "died", "née", "nee")
TITLES = _ids("dr", "dr.", "doctor", "professor", "prof", "prof.", "mr", "mr.", "mrs", "mrs.", "ms", "ms.",
              "sir", "dame", "lord", "lady", "saint", "rev", "rev.", "reverend", "president", "king", "queen",
              "prince", "princess", "captain", "senator", "governor")
NAME_SUFFIXES = _ids("jr", "jr.", "sr", "sr.")
#: Step 2, likely ORG: keywords in the chunk, or a leading "the".
ORG_KEYWORDS = _ids("committee", "council", "university", "college", "institute", "academy", "school",
                    "society", "association", "federation", "union", "league", "party", "company",
                    "corporation", "foundation", "ministry", "department", "agency", "commission", "board",
                    "parliament", "congress", "assembly", "court", "church", "museum", "club", "orchestra")
THE = get_string_id("the")
#: Step 2, factual common nouns: predicative attributes, direct objects, appositives ...
FACTUAL_ROLES = _ids("attr", "dobj", "appos")
#: ... unless governed by a manner preposition, or qualified by "by" and a bare singular noun ("by training").
MANNER_PREPOSITIONS = _ids("by", "with", "without", "through", "via")
BY, NN = get_string_id("by"), get_string_id("NN")
ATTR, CONJ, DOBJ = get_string_id("attr"), get_string_id("conj"), get_string_id("dobj")
PCOMP, POBJ, PREP = get_string_id("pcomp"), get_string_id("pobj"), get_string_id("prep")


@dataclass
class Occurrences:
    """What a document has mentioned so far (§A.2.1 occurrence tracking), as spaCy ``LOWER`` ids.

    One instance follows one document; the pieces of a document too long for one spaCy call share it.
    """

    mentions: set[tuple[int, ...]] = field(default_factory=set)  # full strings of entities and noun chunks
    name_parts: set[int] = field(default_factory=set)  # components of PERSON names
    numbers: set[int] = field(default_factory=set)  # numeric words


class Words:
    """Per-token attributes of one ``Doc``, read with one ``to_array`` call.

    Masks are numpy arrays; the attributes the rules index one token at a time are Python lists, which
    index faster than numpy scalars.
    """

    def __init__(self, doc: Doc):
        cols = doc.to_array([POS, TAG, DEP, HEAD, LOWER, IS_SPACE, SENT_START, LIKE_NUM, IDX])
        pos = cols[:, 0]
        self.text = doc.text
        self.grammatical = _member(pos, GRAMMATICAL_POS) | _member(cols[:, 1], DETERMINER_TAGS)
        self.space = cols[:, 5].astype(bool)
        self.numeric = (cols[:, 7].astype(bool) | (pos == NUM)) & ~self.grammatical & ~self.space
        self.content = ~self.grammatical & ~_member(pos, NON_CONTENT_POS)
        self.pos = pos.tolist()
        self.dep = cols[:, 2].tolist()
        self.head = (np.arange(len(doc)) + cols[:, 3].astype(np.int64)).tolist()
        self.lower = cols[:, 4].tolist()
        self.sent_start = (cols[:, 6].astype(np.int64) == 1).tolist()
        self.idx = cols[:, 8].tolist()
        self.manner_qualified = _manner_qualified(cols[:, 2], cols[:, 1], cols[:, 4], self.head)

    def capitalised(self, i: int) -> bool:
        return self.text[self.idx[i]].isupper()


def _manner_qualified(dep: np.ndarray, tag: np.ndarray, lower: np.ndarray, head: list[int]) -> list[bool]:
    """For every token, whether a manner phrase attaches to it: "by" and a bare singular common noun
    ("lawyer" in "a lawyer by training", "a physician by profession", "the largest lake by area"), not an
    agent ("a symphony by Beethoven", "a study by the council")."""
    heads = np.asarray(head, dtype=np.int64)
    has_dependents = np.bincount(heads[heads != np.arange(len(heads))], minlength=len(heads)) > 0
    bare_object = (dep == POBJ) & (tag == NN) & ~has_dependents
    by_phrase = bare_object & (dep[heads] == PREP) & (lower[heads] == BY)
    qualified = np.zeros(len(heads), dtype=bool)
    qualified[heads[heads[by_phrase]]] = True
    return qualified.tolist()


def _member(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``np.isin`` for a handful of ids, without its sorting overhead on short documents."""
    return (values[:, None] == ids).any(axis=1)


def word_labels(doc: Doc, seen: Occurrences | None = None) -> np.ndarray:
    """OTHER / GRAMMATICAL / FACT (uint8) for every token of ``doc``, §A.2.1 steps 1-4.

    ``seen`` carries occurrences from earlier pieces of the same document; it is updated in place.
    """
    seen = Occurrences() if seen is None else seen
    words = Words(doc)
    in_entity = np.zeros(len(doc), dtype=bool)
    for ent in doc.ents:
        in_entity[ent.start:ent.end] = True
    chunk_words = (words.content & ~words.numeric & ~in_entity).tolist()
    facts: list[int] = []
    for start, end, kind, label in _mentions_in_order(doc, words, in_entity):
        if kind == "entity":
            facts.extend(_entity_facts(start, end, label, words, seen))
        elif kind == "chunk":
            facts.extend(_chunk_facts(start, end, words, chunk_words, seen))
        else:
            facts.extend(_number_facts(start, words, seen))
    labels = np.where(words.grammatical, GRAMMATICAL, OTHER).astype(np.uint8)
    labels[facts] = FACT
    return labels


def _mentions_in_order(doc: Doc, words: Words, in_entity: np.ndarray) -> list[tuple]:
    """Entities, whitespace-split noun chunks and numbers outside entities, in document order
    (an entity before a chunk that starts at the same token), as ``(start, end, kind, entity label)``."""
    mentions = [(ent.start, ent.end, "entity", ent.label) for ent in doc.ents]
    for chunk in doc.noun_chunks:
        for start, end in _split_at_whitespace(chunk.start, chunk.end, words):
            mentions.append((start, end, "chunk", 0))
    for i in np.flatnonzero(words.numeric & ~in_entity).tolist():
        mentions.append((i, i + 1, "number", 0))
    mentions.sort(key=itemgetter(0))
    return mentions


def _split_at_whitespace(start: int, end: int, words: Words) -> Iterator[tuple[int, int]]:
    """Step 2: a noun chunk spanning whitespace tokens (newlines) becomes separate sub-chunks."""
    piece_start = start
    for i in range(start, end + 1):
        if i == end or words.space[i]:
            if i > piece_start:
                yield piece_start, i
            piece_start = i + 1


def _entity_facts(start: int, end: int, label: int, words: Words, seen: Occurrences) -> list[int]:
    """Step 1: the non-grammatical words of an entity's first mention; repeats are no facts.

    A ``PERSON`` repeats if its full text or any name component was seen; its titles are cues, no facts.
    Any other entity repeats only if its full text was seen: a name component does not make "London"
    (``GPE``) after "Jack London" a repeat.
    """
    content = [i for i in range(start, end) if not (words.grammatical[i] or words.space[i])]
    key = tuple(words.lower[i] for i in content)
    first = key not in seen.mentions
    if label == PERSON:
        parts = [words.lower[i] for i in content
                 if words.pos[i] != PART and words.lower[i] not in TITLES and words.lower[i] not in NAME_SUFFIXES]
        first = first and not any(part in seen.name_parts for part in parts)
        seen.name_parts.update(parts)
        content = [i for i in content if not _title_before_name(i, end, words)]
    seen.mentions.add(key)
    seen.numbers.update(words.lower[i] for i in content if words.numeric[i])
    return content if first else []


def _chunk_facts(start: int, end: int, words: Words, chunk_words: list[bool], seen: Occurrences) -> list[int]:
    """Step 2: the eligible words of a (sub-)chunk on its first occurrence, if it is likely factual.

    A title before a name ("Professor Jones") is a cue, not part of the mention. A one-word chunk that is
    a component of an earlier ``PERSON`` name ("Mozart", untagged) repeats it.
    """
    eligible = [i for i in range(start, end) if chunk_words[i]]
    named = [i for i in eligible if not _title_before_name(i, end, words)]
    if not named:
        return []
    key = tuple(words.lower[i] for i in named)
    first = key not in seen.mentions and not (len(key) == 1 and key[0] in seen.name_parts)
    seen.mentions.add(key)
    if first and is_factual_chunk(start, end, eligible, words):
        return named
    return []


def _title_before_name(i: int, end: int, words: Words) -> bool:
    """``i`` is a title ("Dr", "Professor") followed by a capitalised word of the same mention
    ``[.., end)``: a cue for a person (§A.2.1 step 2), not a fact itself."""
    return words.lower[i] in TITLES and i + 1 < end and words.capitalised(i + 1)


def _number_facts(i: int, words: Words, seen: Occurrences) -> list[int]:
    """Step 2, numeric words: the first occurrence of each number is a fact."""
    first = words.lower[i] not in seen.numbers
    seen.numbers.add(words.lower[i])
    return [i] if first else []


def is_factual_chunk(start: int, end: int, eligible: list[int], words: Words) -> bool:
    """Step 2's criteria for the noun (sub-)chunk ``[start, end)`` whose fact-eligible words are ``eligible``."""
    return (likely_person(start, end, eligible, words) or likely_org(start, end, words)
            or any(words.pos[i] == PROPN for i in eligible)
            or factual_common_noun(end - 1, words))


def likely_person(start: int, end: int, eligible: list[int], words: Words) -> bool:
    """A name by syntactic role (subject or appositive that looks like a name) or by context cue
    ("born"/"died" right before it or governing it through a preposition, or a title such as "Dr" or
    "Professor")."""
    role = role_bearer(end - 1, words)
    by_role = words.dep[role] in PERSON_ROLES and _looks_like_name(eligible, words)
    after_cue = start > 0 and (words.lower[start - 1] in BIRTH_DEATH_CUES or words.lower[start - 1] in TITLES)
    titled = len(eligible) > 1 and words.lower[eligible[0]] in TITLES
    return by_role or after_cue or titled or cue_through_preposition(role, words)


def role_bearer(i: int, words: Words) -> int:
    """The word whose syntactic role ``i`` takes: words joined by coordination (spaCy ``conj``, chained
    from the first conjunct) take the role of the word they are joined to, so "novelist" and
    "playwright" in "He was a poet, novelist and playwright" are predicative attributes like "poet"."""
    while words.dep[i] == CONJ and words.head[i] != i:
        i = words.head[i]
    return i


def cue_through_preposition(i: int, words: Words) -> bool:
    """"born in X", "died at X": ``i`` is the object of a preposition attached to "born" or "died"."""
    return words.dep[i] == POBJ and words.lower[words.head[words.head[i]]] in BIRTH_DEATH_CUES


def _looks_like_name(eligible: list[int], words: Words) -> bool:
    """All words capitalised, and not only because the first starts a sentence."""
    return (all(words.capitalised(i) for i in eligible)
            and not all(words.sent_start[i] for i in eligible))


def likely_org(start: int, end: int, words: Words) -> bool:
    """An organisation keyword ("committee", "council", "university", ...) or a leading "the"."""
    return words.lower[start] == THE or any(words.lower[i] in ORG_KEYWORDS for i in range(start, end))


def factual_common_noun(head: int, words: Words) -> bool:
    """A common noun as predicative attribute ("She was a lawyer"), direct object ("She studied
    physics") or appositive ("Marie Curie, a physicist, ..."), in its own right or joined by
    coordination to one ("physics and chemistry"), neither governed nor qualified by a manner
    preposition ("he was a lawyer by training")."""
    role = role_bearer(head, words)
    return (words.pos[head] == NOUN and words.dep[role] in FACTUAL_ROLES
            and not governed_by_manner_preposition(role, words)
            and not qualified_by_manner_preposition(head, role, words))


def qualified_by_manner_preposition(head: int, role: int, words: Words) -> bool:
    """A manner phrase ("by training") attaches to the noun ``head``, or, for a predicative attribute
    (``role`` is ``head`` or the conjunct it is joined to), to its copula ("By training, he was a
    lawyer")."""
    copula_qualified = words.dep[role] == ATTR and words.manner_qualified[words.head[role]]
    return words.manner_qualified[head] or copula_qualified


def governed_by_manner_preposition(i: int, words: Words) -> bool:
    """``i`` is the object of a manner preposition, directly ("by training") or through a gerund
    ("by studying physics")."""
    for _ in range(2):
        head = words.head[i]
        if words.dep[i] in (POBJ, PCOMP) and words.lower[head] in MANNER_PREPOSITIONS:
            return True
        if words.dep[i] not in (POBJ, PCOMP, DOBJ) or head == i:
            return False
        i = head
    return False
