"""SentencePiece tokenizer extended by one ``<CALL>`` id (paper §5.1, §A.3).

The paper trains a 32,000-piece SentencePiece model and appends ``<CALL>`` as one extra id, so the
model's vocabulary is 32,001. We do the same: ``<CALL>`` is *not* a SentencePiece piece; its id is the
SentencePiece vocabulary size, and it never appears in tokenized data (only as a training target).

Every digit is a piece of its own (§A.5: "our SentencePiece tokenizer handles each digit separately";
§A.2.2's Napoleon example delegates "15" as two ``<CALL>`` tokens and "1769" as four).

Choice (the paper does not say): the model uses identity normalisation, keeps whitespace as written
and falls back to bytes for unseen characters, so that ``decode(encode(text)) == text``. Corpus text is
NFKC-normalised once upstream (``lacy.corpus``). Losslessness is what lets word labels from spaCy
(character offsets) be transferred exactly to subword tokens (§A.2.1, last paragraph).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import sentencepiece as spm

from lacy import FACT, GRAMMATICAL, OTHER

CALL_TOKEN = "<CALL>"
MODEL_FILE = "tokenizer.model"
META_FILE = "lacy_tokenizer.json"

#: When one piece covers characters of several words, it takes the label that ranks highest here:
#: a piece such as "▁(17" is part of a date and must be delegated like the rest of that date.
_LABEL_PRIORITY = np.array([1, 0, 2], dtype=np.int8)  # indexed by OTHER, GRAMMATICAL, FACT
_LABEL_BY_PRIORITY = np.array([GRAMMATICAL, OTHER, FACT], dtype=np.uint8)
_WHITESPACE_BYTES = np.array([b in b" \t\n\r\f\v" for b in range(256)])


def train_texts(corpus_dir: Path, max_documents: int | None = None) -> Iterator[str]:
    """Texts of the training split, shard by shard (shards are a seeded random partition, so the
    first ``max_documents`` are a random sample)."""
    from lacy.io import read_jsonl

    shards = sorted((Path(corpus_dir) / "train").glob("part-*.jsonl*"))
    if not shards:
        raise FileNotFoundError(f"{corpus_dir}/train: no corpus shards")
    n = 0
    for shard in shards:
        for _, record in read_jsonl(shard):
            if max_documents is not None and n >= max_documents:
                return
            n += 1
            yield record["text"]


def train_sentencepiece(
    texts: Iterable[str],
    out_dir: Path,
    vocab_size: int,
    model_type: str = "unigram",
    seed: int = 0,
    character_coverage: float = 0.9995,
    input_sentence_size: int = 0,
    num_threads: int = 1,
) -> Path:
    """Train the SentencePiece model on ``texts`` (one document each) and write it with its metadata.

    Writes ``out_dir/tokenizer.model`` and ``out_dir/lacy_tokenizer.json`` (``call_id`` and ``vocab_size``,
    the latter including ``<CALL>``). ``input_sentence_size`` > 0 samples that many documents.
    Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = out_dir / "partial-tokenizer"
    spm.set_random_generator_seed(seed)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(t for t in texts if t.strip()),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=character_coverage,
        byte_fallback=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        split_digits=True,
        max_sentence_length=1 << 24,
        input_sentence_size=input_sentence_size,
        shuffle_input_sentence=True,
        num_threads=num_threads,
        minloglevel=2,
    )
    meta = {"sentencepiece_vocab_size": vocab_size, "call_id": vocab_size, "vocab_size": vocab_size + 1,
            "call_token": CALL_TOKEN, "model_type": model_type}
    Path(f"{prefix}.vocab").unlink(missing_ok=True)
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    Path(f"{prefix}.model").replace(out_dir / MODEL_FILE)
    return out_dir


@dataclass
class LacyTokenizer:
    """SentencePiece plus ``<CALL>``; ``vocab_size`` counts ``<CALL>`` (32,001 in the paper)."""

    sp: spm.SentencePieceProcessor
    call_id: int
    piece_bytes: np.ndarray  # UTF-8 length of each piece's surface text ("▁" is one space)

    @classmethod
    def load(cls, directory: Path) -> "LacyTokenizer":
        directory = Path(directory)
        model = directory / MODEL_FILE
        if not model.is_file():
            raise FileNotFoundError(f"{model}: no SentencePiece model; run the tokenizer rule first")
        sp = spm.SentencePieceProcessor(model_file=str(model))
        meta = json.loads((directory / META_FILE).read_text())
        if meta["call_id"] != sp.get_piece_size():
            raise ValueError(f"{directory / META_FILE}: call_id {meta['call_id']} does not follow the "
                             f"{sp.get_piece_size()} SentencePiece ids")
        return cls(sp=sp, call_id=meta["call_id"], piece_bytes=_piece_byte_lengths(sp))

    @property
    def vocab_size(self) -> int:
        return self.call_id + 1

    @property
    def dtype(self) -> type:
        """Smallest unsigned integer type that holds every id, ``<CALL>`` included."""
        return np.uint16 if self.vocab_size <= np.iinfo(np.uint16).max + 1 else np.uint32

    def save_pretrained(self, out_dir: Path) -> None:
        """Write this tokenizer beside a checkpoint: our files plus a ``transformers`` fast tokenizer,
        so that ``AutoTokenizer.from_pretrained(out_dir)`` works for lm-eval and other users.

        The fast tokenizer is the same unigram model (pieces and scores) with byte fallback and
        SentencePiece's whitespace handling, and ``<CALL>`` as an added special token at ``call_id``;
        it reproduces SentencePiece's ids on >99.9 % of documents (it differs on text with a leading
        space, and rarely on equal-score segmentations). The workflow itself always uses SentencePiece.
        """
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / MODEL_FILE).write_bytes(self.sp.serialized_model_proto())
        meta = {"sentencepiece_vocab_size": self.call_id, "call_id": self.call_id, "vocab_size": self.vocab_size,
                "call_token": CALL_TOKEN}
        (out_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        pieces = [(self.sp.id_to_piece(i), self.sp.get_score(i)) for i in range(self.call_id)]
        fast = Tokenizer(models.Unigram(pieces, unk_id=self.sp.unk_id(), byte_fallback=True))
        fast.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
        fast.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                          decoders.Fuse(), decoders.Strip(" ", 1, 0)])
        wrapped = PreTrainedTokenizerFast(tokenizer_object=fast, unk_token="<unk>", bos_token="<s>",
                                          eos_token="</s>", additional_special_tokens=[CALL_TOKEN])
        if wrapped.convert_tokens_to_ids(CALL_TOKEN) != self.call_id:
            raise AssertionError("transformers assigned <CALL> another id than SentencePiece's piece count")
        wrapped.save_pretrained(out_dir)

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self.sp.encode(text), dtype=self.dtype)

    def decode(self, ids: Iterable[int]) -> str:
        """Decode ids; ``<CALL>`` (not a SentencePiece piece) is rendered as the literal ``<CALL>``."""
        out, run = [], []
        for i in ids:
            if int(i) == self.call_id:
                out.append(self.sp.decode(run))
                out.append(CALL_TOKEN)
                run = []
            else:
                run.append(int(i))
        out.append(self.sp.decode(run))
        return "".join(out)

    def encode_with_char_labels(self, text: str, char_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tokenize ``text`` and give every piece the label of the word it belongs to (§A.2.1).

        ``char_labels`` holds one label per character of ``text``. Every subword of a word inherits that
        word's label. A piece that covers characters of several words (e.g. "▁(17") takes the highest of
        their labels in the order fact > other > grammatical. A piece of whitespace only (e.g. the lone "▁"
        that digit splitting leaves before "1987") belongs to no word and is grammatical, like punctuation:
        §A.2.2's Napoleon example keeps that space outside the calls ("on <CALL> <CALL><CALL>,").
        """
        char_labels = np.asarray(char_labels, dtype=np.uint8)
        if len(char_labels) != len(text):
            raise ValueError(f"char_labels has {len(char_labels)} entries for a text of {len(text)} characters")
        ids = self.encode(text)
        if len(ids) == 0:
            return ids, np.zeros(0, dtype=np.uint8)
        raw = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        byte_labels = np.repeat(char_labels, _utf8_lengths(text, len(raw)))
        # SentencePiece prepends one "▁" (a space that is not in the text): give it a whitespace byte.
        raw = np.concatenate([np.array([32], dtype=np.uint8), raw])
        byte_labels = np.concatenate([np.array([OTHER], dtype=np.uint8), byte_labels])
        lengths = self.piece_bytes[ids]
        ends = np.cumsum(lengths)
        if ends[-1] != len(raw):
            raise AssertionError(f"pieces cover {ends[-1]} bytes of {len(raw)}: tokenizer is not lossless")
        starts = ends - lengths
        is_space = _WHITESPACE_BYTES[raw]
        priority = np.where(is_space, -1, _LABEL_PRIORITY[byte_labels])
        piece_priority = np.maximum.reduceat(priority, starts)
        piece_priority = np.where(piece_priority < 0, _LABEL_PRIORITY[GRAMMATICAL], piece_priority)
        return ids, _LABEL_BY_PRIORITY[piece_priority]


def _piece_byte_lengths(sp: spm.SentencePieceProcessor) -> np.ndarray:
    """Bytes of original text each piece stands for: 1 for byte-fallback pieces, 0 for control ones."""
    lengths = np.zeros(sp.get_piece_size() + 1, dtype=np.int64)  # last slot: <CALL>, covers nothing
    for i in range(sp.get_piece_size()):
        if sp.is_byte(i):
            lengths[i] = 1
        elif not (sp.is_control(i) or sp.is_unknown(i)):
            lengths[i] = len(sp.id_to_piece(i).replace("\u2581", " ").encode("utf-8"))
    return lengths


def _utf8_lengths(text: str, n_bytes: int) -> np.ndarray:
    if n_bytes == len(text):
        return np.ones(len(text), dtype=np.int64)
    return np.fromiter((len(c.encode("utf-8")) for c in text), dtype=np.int64, count=len(text))

