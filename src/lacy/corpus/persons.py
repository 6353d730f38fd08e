"""Evaluation entities for biography generation (§5.2, §A.5).

Paper configuration: the 183 entities of FactScore's labelled set (Min et al. 2023), read from the entity list
of the FactScore release (one name per line). Default configuration: seeded samples of the person biographies of
our corpus (``is_person``), whose lead sections serve as the knowledge source: held-out persons (validation split,
never trained on: what the cascade must delegate) and, reported apart, training-split persons (what an SLM may
have memorised).

Every entity records whether its own article is in the training split, so reports can say how many
evaluation subjects the models saw during pretraining (train/test overlap).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from lacy.io import read_jsonl, write_jsonl

log = logging.getLogger(__name__)

SPLITS = ("train", "validation")


def corpus_persons(corpus_dir: Path) -> list[dict]:
    """Persons of the corpus with the split their article is in, in a stable order."""
    persons = []
    for split in SPLITS:
        for shard in sorted((Path(corpus_dir) / split).glob("part-*.jsonl*")):
            for _, record in read_jsonl(shard):
                if record.get("is_person"):
                    persons.append({"entity": record.get("title", record["id"]), "split": split,
                                    "description": record.get("description", "")})
    return sorted(persons, key=lambda p: p["entity"])


def sample_persons(corpus_dir: Path, n_heldout: int, n_train: int, seed: int) -> list[dict]:
    """Seeded samples of ``n_heldout`` validation-split persons and ``n_train`` training-split persons (all of a
    split's persons if it has fewer), held-out ones first, each sample in name order."""
    persons = corpus_persons(corpus_dir)
    if not persons:
        raise ValueError(f"{corpus_dir}: the corpus has no person biographies (is_person)")
    rng = random.Random(seed)
    sample = []
    for split, n in (("validation", n_heldout), ("train", n_train)):
        of_split = [p for p in persons if p["split"] == split]
        if n and not of_split:
            raise ValueError(f"{corpus_dir}: the {split} split has no person biographies (is_person)")
        sample += sorted(rng.sample(of_split, min(n, len(of_split))), key=lambda p: p["entity"])
    return sample


def factscore_entities(entity_file: Path, corpus_dir: Path | None = None) -> list[dict]:
    """FactScore's entity list (one name per line), with the split of a same-titled corpus article, if any."""
    path = Path(entity_file)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: FactScore entity list not found; download the FactScore release "
                                "data (see README, 'Paper scale') and point cascade.entities.path at it")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{path}: no entity names")
    splits = {}
    if corpus_dir is not None:
        for split in SPLITS:
            for shard in sorted((Path(corpus_dir) / split).glob("part-*.jsonl*")):
                for _, record in read_jsonl(shard):
                    splits[record.get("title", record["id"])] = split
    return [{"entity": name, "split": splits.get(name, "absent"), "description": ""} for name in names]


#: Where the evaluation entities come from (the workflow's ``cascade.entities.source``).
SOURCES = ("corpus", "factscore")


def write_evaluation_entities(corpus_dir: Path, out: Path, *, source: str, n_heldout: int | None = None,
                              n_train: int | None = None, seed: int | None = None,
                              path: Path | None = None) -> list[dict]:
    """The biography subjects of the cascade (§5.2), written to ``out`` as JSONL and returned: with ``source``
    "factscore", FActScore's entity list ``path`` (:func:`factscore_entities`, the paper's 183 subjects), each with
    the split of its article in ``corpus_dir``; with "corpus", ``n_heldout`` validation-split and ``n_train``
    training-split persons of the corpus sampled with ``seed`` (:func:`sample_persons`)."""
    if source == "factscore":
        if path is None:
            raise ValueError("FactScore's evaluation entities need the path of its entity list")
        entities = factscore_entities(Path(path), corpus_dir)
    elif source == "corpus":
        if None in (n_heldout, n_train, seed):
            raise ValueError("sampling the corpus's evaluation persons needs n_heldout, n_train and seed")
        entities = sample_persons(corpus_dir, n_heldout, n_train, seed)
    else:
        raise ValueError(f"unknown entity source {source!r}; choose one of {', '.join(SOURCES)}")
    write_jsonl(out, entities)
    in_train = sum(e["split"] == "train" for e in entities)
    log.info("%d evaluation entities: %d with their article in the training split, %d held out", len(entities),
             in_train, len(entities) - in_train)
    return entities
