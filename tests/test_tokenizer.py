"""SentencePiece + <CALL> (§5.1) and the transfer of word labels to subword tokens (§A.2.1)."""

from __future__ import annotations


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lacy import FACT, GRAMMATICAL, OTHER
from lacy.tokenizer import CALL_TOKEN, LacyTokenizer


def word_labels(text: str, labelled: dict[str, int]) -> np.ndarray:
    """Character labels giving each listed word (first occurrence) its label."""
    labels = np.full(len(text), OTHER, dtype=np.uint8)
    for word, label in labelled.items():
        start = text.index(word)
        labels[start:start + len(word)] = label
    return labels


def pieces(tok: LacyTokenizer, ids) -> list[str]:
    return [tok.sp.id_to_piece(int(i)) for i in ids]


def test_call_is_one_extra_id_after_the_sentencepiece_vocabulary(small_tokenizer, tmp_path):
    tok = small_tokenizer
    assert tok.sp.get_piece_size() == 1000
    assert tok.call_id == 1000 and tok.vocab_size == 1001
    assert tok.dtype == np.uint16
    assert CALL_TOKEN not in {tok.sp.id_to_piece(i) for i in range(tok.sp.get_piece_size())}


@pytest.mark.parametrize("text", [
    "Wolfgang  Amadeus Mozart (1756–1791)\nwas born in Salzburg.",
    "Ǆemal café 😀 naïve Zürich 東京",
    " leading and trailing spaces ",
    "",
])
def test_tokenizer_is_lossless(small_tokenizer, text):
    assert small_tokenizer.decode(small_tokenizer.encode(text)) == text


def test_decode_renders_call_ids(small_tokenizer):
    tok = small_tokenizer
    ids = list(tok.encode("born in Salzburg"))
    assert tok.decode(ids[:2] + [tok.call_id] + ids[2:]).count(CALL_TOKEN) == 1


def piece_spans(tok: LacyTokenizer, ids, text: str) -> list[tuple[int, int]]:
    """Character span of every piece: the characters whose UTF-8 bytes the piece's bytes overlap."""
    char_of_byte = [-1]  # SentencePiece's leading "▁" is not in the text
    for c, ch in enumerate(text):
        char_of_byte += [c] * len(ch.encode("utf-8"))
    spans, pos = [], 0
    for i in ids:
        piece = tok.sp.id_to_piece(int(i))
        n = 1 if tok.sp.is_byte(int(i)) else len(piece.replace("\u2581", " ").encode("utf-8"))
        chars = [c for c in char_of_byte[pos:pos + n] if c >= 0]
        start = chars[0] if chars else 0
        spans.append((start, chars[-1] + 1 if chars else 0))
        pos += n
    assert pos == len(char_of_byte)
    return spans


def expected_labels(text: str, char_labels: np.ndarray, spans) -> list[int]:
    """Reference for §A.2.1's inheritance rule, written independently of the vectorised code."""
    rank = {GRAMMATICAL: 0, OTHER: 1, FACT: 2}
    out = []
    for start, end in spans:
        inside = [int(char_labels[c]) for c in range(start, end) if not text[c].isspace()]
        if not inside:  # whitespace-only piece: part of no word, grammatical like punctuation
            inside = [GRAMMATICAL]
        out.append(max(inside, key=rank.__getitem__))
    return out


def test_every_subword_inherits_its_words_label(small_tokenizer):
    tok = small_tokenizer
    text = "Mozart was born in Salzburg in 1756."
    labels = word_labels(text, {"Mozart": FACT, "Salzburg": FACT, "1756": FACT, "in": GRAMMATICAL,
                                ".": GRAMMATICAL})
    ids, token_labels = tok.encode_with_char_labels(text, labels)
    assert np.array_equal(ids, tok.encode(text))
    spans = piece_spans(tok, ids, text)
    salzburg = text.index("Salzburg")
    in_salzburg = [i for i, (s, e) in enumerate(spans) if s >= salzburg - 1 and e <= salzburg + 8]
    assert len(in_salzburg) >= 2, "this 1,000-piece model splits Salzburg"
    assert all(token_labels[i] == FACT for i in in_salzburg)
    was = [i for i, (s, e) in enumerate(spans) if text[s:e].strip() == "was"]
    assert was and token_labels[was[0]] == OTHER
    assert token_labels[-1] == GRAMMATICAL and text[spans[-1][0]:] == "."
    assert token_labels.tolist() == expected_labels(text, labels, spans)


def test_piece_across_words_takes_the_highest_label(default_size_tokenizer):
    """spaCy splits "cannot" into "can" + "not", but the 8,000-piece model has the piece "▁canno", which
    covers characters of both words: it takes the higher label (fact > other > grammatical)."""
    tok = default_size_tokenizer
    text = "He cannot go."
    labels = word_labels(text, {"can": GRAMMATICAL, "not": FACT, ".": GRAMMATICAL})
    ids, token_labels = tok.encode_with_char_labels(text, labels)
    spans = piece_spans(tok, ids, text)
    boundary = text.index("not")
    merged = next(i for i, (s, e) in enumerate(spans) if s < boundary < e)
    assert text[spans[merged][0]:spans[merged][1]].strip().startswith("can")
    assert token_labels[merged] == FACT
    assert token_labels.tolist() == expected_labels(text, labels, spans)


def test_whitespace_piece_is_grammatical_not_the_following_words_label(small_tokenizer):
    tok = small_tokenizer
    text = "in  Ǆ"  # the double space yields a lone "▁" before the byte-fallback word
    labels = word_labels(text, {"Ǆ": FACT, "in": GRAMMATICAL})
    ids, token_labels = tok.encode_with_char_labels(text, labels)
    surface = pieces(tok, ids)
    lone = [i for i, p in enumerate(surface) if p == "▁"]
    assert lone, surface
    assert all(token_labels[i] == GRAMMATICAL for i in lone)
    assert all(token_labels[i] == FACT for i, p in enumerate(surface) if p.startswith("<0x"))


def test_every_digit_is_its_own_piece(default_size_tokenizer):
    """§A.5: "our SentencePiece tokenizer handles each digit separately"."""
    sp = default_size_tokenizer.sp
    multi_digit = [sp.id_to_piece(i) for i in range(sp.get_piece_size())
                   if not sp.is_byte(i) and sum(c.isdigit() for c in sp.id_to_piece(i)) > 1]
    assert multi_digit == []
    assert pieces(default_size_tokenizer, default_size_tokenizer.encode("in 1769 and 2,000")) == [
        "▁in", "▁", "1", "7", "6", "9", "▁and", "▁", "2", ",", "0", "0", "0"]


def test_a_year_is_one_fact_piece_per_digit_and_its_space_is_grammatical(default_size_tokenizer):
    tok = default_size_tokenizer
    text = "He died in 1821."
    labels = word_labels(text, {"1821": FACT, "in": GRAMMATICAL, ".": GRAMMATICAL})
    ids, token_labels = tok.encode_with_char_labels(text, labels)
    surface = pieces(tok, ids)
    year = surface.index("1")
    assert surface[year - 1:year + 4] == ["▁", "1", "8", "2", "1"]
    assert token_labels[year - 1] == GRAMMATICAL
    assert token_labels[year:year + 4].tolist() == [FACT] * 4


def test_empty_text_and_label_length_mismatch(small_tokenizer):
    ids, labels = small_tokenizer.encode_with_char_labels("", np.zeros(0, np.uint8))
    assert len(ids) == len(labels) == 0
    with pytest.raises(ValueError, match="2 entries for a text of 3"):
        small_tokenizer.encode_with_char_labels("abc", np.zeros(2, np.uint8))


@settings(max_examples=80, deadline=None)
@given(words=st.lists(st.tuples(st.text(alphabet="abcdefgXYZ0123456789.,()-'éü", min_size=1, max_size=8),
                                st.sampled_from([OTHER, GRAMMATICAL, FACT])), min_size=1, max_size=12),
       separators=st.lists(st.sampled_from([" ", "  ", "\n", " \n "]), min_size=12, max_size=12))
def test_token_labels_follow_the_inheritance_rule(small_tokenizer, words, separators):
    """Property: on any text, token labels equal the reference rule and ids equal plain encoding."""
    tok = small_tokenizer
    text, char_labels = "", []
    for (word, label), sep in zip(words, separators):
        text += word + sep
        char_labels += [label] * len(word) + [OTHER] * len(sep)
    char_labels = np.array(char_labels, dtype=np.uint8)
    ids, token_labels = tok.encode_with_char_labels(text, char_labels)
    assert np.array_equal(ids, tok.encode(text))
    assert token_labels.tolist() == expected_labels(text, char_labels, piece_spans(tok, ids, text))


def test_checkpoint_tokenizer_loads_with_transformers(small_tokenizer, wiki_records, tmp_path):
    from transformers import AutoTokenizer

    small_tokenizer.save_pretrained(tmp_path)
    assert LacyTokenizer.load(tmp_path).call_id == small_tokenizer.call_id
    hf = AutoTokenizer.from_pretrained(tmp_path)
    assert hf.convert_tokens_to_ids(CALL_TOKEN) == small_tokenizer.call_id
    texts = [r["text"] for r in wiki_records[:400]]
    same = sum(hf(t, add_special_tokens=False).input_ids == small_tokenizer.encode(t).tolist() for t in texts)
    assert same / len(texts) > 0.99
    assert hf.decode(small_tokenizer.encode(texts[0])) == texts[0]
