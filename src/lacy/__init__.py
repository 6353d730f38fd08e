"""lacy: reference reproduction of LaCy (arXiv 2602.12005).

Modules follow the paper's concepts: ``corpus`` (data, §A.2), ``tokenizer`` (SentencePiece + <CALL>, §5.1),
``annotation`` (spaCy fact labels, §A.2.1), ``llm_judge`` (LMLM label conversion, §A.2.2).
"""

__version__ = "0.1.0"

#: Word / token classes of §A.2.1, stored as uint8 in label arrays.
OTHER, GRAMMATICAL, FACT = 0, 1, 2
LABEL_NAMES = {OTHER: "other", GRAMMATICAL: "grammatical", FACT: "fact"}
