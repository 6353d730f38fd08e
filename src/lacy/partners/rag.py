"""The RAG cascade partner of §A.5: a partner that reads the subject's Wikipedia text, served or local.

§A.5: "we evaluate SLMs with cascade partner Qwen 3 32B enhanced with a RAG prompt given below. The background
information ``wiki_content`` is obtained by using the full text from the wikipedia entry corresponding to each
given person, truncated to 8000 characters (roughly 2000 tokens). For those few entities who do not have a unique
wikipedia page, no background information was provided." §5.2 ablates the Llama cascade with it (Figure 13).

**Background.** The subject's article from the knowledge source (``lacy.knowledge``: our corpus directory, JSONL,
or FactScore's SQLite dump) truncated to ``context_chars`` (8,000) characters, trailing whitespace removed; a
subject without an article gets an empty background.

**Served partner** (``ServedRagPartner``, the paper's). ``RAG_PROMPT`` is the paper's listing: a ChatML system turn,
a user turn asking for a short biography of the subject followed by the background text (no newline before
``<|im_end|>``, as the listing notes), and an assistant turn opened with Qwen3's empty ``<think>\\n\\n</think>\\n\\n``
block (thinking off), continued by our text so far (prompt included, ``<CALL>`` excluded). We read the listing's
``<| im_start|>`` as ``<|im_start|>`` and its line breaks and indentation inside sentences as the PDF's wrapping.
The prompt is already a whole ChatML string ending inside the assistant turn, so it goes as a raw prompt to an
OpenAI-compatible *completions* endpoint (vLLM, a llama.cpp server, hosted APIs that serve raw completions); a chat
endpoint would wrap it in the template a second time. One token is requested with ``temperature 0`` and
``logprobs = k`` (``lacy.llm.make_next_token_lm``), so the reply ranks the partner's ``k`` most probable next
tokens: the candidates of the cascade, which appends the highest-probability token, else the next best expressible
one in our vocabulary (§A.5). A candidate is special when its text is a ChatML control token (``<|...|>``, e.g.
``<|im_end|>``). No penalty is requested: as for the local partner, the answer is the plain highest-probability
token (vLLM's log-probabilities are the model's raw ones by default; the paper names a repetition penalty of 1.2
for Qwen3's own generations). vLLM serves at most ``--max-logprobs`` (default 20) alternatives, which bounds
``partner_top_k``. It answers one call at a time. Writing alone (``--partner-alone``), it is asked for the greedy
continuation of the prompt (one request per biography, ``lacy.llm.NextTokenLM.continuation``) with the repetition
penalty as vLLM's ``repetition_penalty`` parameter, and the reply's tokens are recorded.

*Cost.* Each answer is cached on disk by (model, prompt, k) in ``lacy.llm``'s answer cache, so a rerun or a crashed
job never asks twice; rate limits and server errors are retried with backoff. The server's prefix cache (vLLM's
automatic prefix caching) plays the role of the local partner's KV cache: consecutive calls of one sequence share
the background and all but the newest tokens.

*Credentials.* The key is read from the environment variable ``api_key_env`` when the partner is built, before any
request (a missing one stops the run naming the variable); ``api_key_env`` null with a ``base_url`` is a keyless
local server. The key goes to the HTTP client only, never to logs, the cache or the results.

**Local partner** (``LocalRagPartner``, ours: the embedded default offline). The local partner of
``lacy.partners.local`` (Gemma-3-270M by default) given the subject's article the same way, in process, through
the same interface as the plain local partner: batched calls, writing alone. Deviation from §A.5: the Gemma of the
default is a *base* model, not chat-tuned, so ``LOCAL_RAG_PROMPT`` keeps the listing's wording without its ChatML
turns, system message and ``<think>`` block, as plain text::

    Write a short biography about {person_name}. Here is some background information:
    {wiki_content}

    {original_text}

The instruction and the background form a fixed head that every call of a sequence starts with; the local
partner's KV cache keeps the common prefix of a view's texts, so the head is read once per sequence.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from lacy.knowledge import load_references
from lacy.llm import NextTokenLM, make_next_token_lm
from lacy.partners.base import Candidate
from lacy.partners.local import LocalPartner, LocalSession, common_prefix, load_partner

log = logging.getLogger(__name__)

CONTEXT_CHARS = 8000
RAG_PROMPT = (
    "<|im_start|>system\n"
    "You are an assistant who writes biographies of famous people and events. "
    "Continue any given text naturally and fluently.<|im_end|>\n"
    "<|im_start|>user\n"
    "Write a short biography about {person_name}. Here is some background information:\n"
    "{wiki_content}<|im_end|>\n"
    "<|im_start|>assistant\n"
    "<think>\n\n</think>\n\n"
    "{original_text}"
)
#: §A.5's prompt for a base model (module docstring): the listing's words without its chat markup.
LOCAL_RAG_PROMPT = (
    "Write a short biography about {person_name}. Here is some background information:\n"
    "{wiki_content}\n\n"
    "{original_text}"
)
CONTROL_TOKEN = re.compile(r"<\|[^<>|\s]+\|>")


def rag_prompt(person_name: str, wiki_content: str, original_text: str) -> str:
    """The §A.5 RAG prompt for one call of the served partner."""
    return RAG_PROMPT.format(person_name=person_name, wiki_content=wiki_content, original_text=original_text)


def local_rag_prompt(person_name: str, wiki_content: str, original_text: str) -> str:
    """The plain-text RAG prompt for one call of the local partner."""
    return LOCAL_RAG_PROMPT.format(person_name=person_name, wiki_content=wiki_content, original_text=original_text)


def background(article: str | None, context_chars: int = CONTEXT_CHARS) -> str:
    """``wiki_content``: the article truncated to ``context_chars`` characters, without trailing whitespace."""
    return (article or "")[:context_chars].rstrip()


def load_articles_of(knowledge: list[Path], entities: list[str]) -> dict[str, str]:
    """The subjects' articles (``lacy.knowledge.load_references``), warning about subjects without one."""
    articles = load_references(knowledge, entities)
    missing = [e for e in entities if e not in articles]
    if missing:
        log.warning("%d of %d subjects have no article in %s; their RAG prompt has no background: %s",
                    len(missing), len(entities), ", ".join(map(str, knowledge)), ", ".join(missing[:20]))
    return articles


def _subject(entity: str | None) -> str:
    if entity is None:
        raise ValueError("the RAG cascade partner needs the subject's name (--entity)")
    return entity


# ---------------------------------------------------------------------------------------------------------------
# The served partner (the paper's Qwen3-32B)


@dataclass
class ServedRagSession:
    """The served RAG partner's view of one sequence: the prompt's head is fixed by the subject."""

    lm: NextTokenLM
    person_name: str
    wiki_content: str

    def candidates(self, text: str, k: int) -> list[Candidate]:
        """The served model's ``k`` most probable next tokens after ``text`` in the RAG prompt, best first."""
        ranked = self.lm.top_tokens(rag_prompt(self.person_name, self.wiki_content, text), k)
        return [Candidate(token, bool(CONTROL_TOKEN.fullmatch(token))) for token, _ in ranked]

    def continuation(self, text: str, max_new_tokens: int, repetition_penalty: float) -> tuple[list[str], bool]:
        """The served model's greedy continuation of ``text`` in the RAG prompt (writing alone): its tokens' texts
        and whether it ended the text itself."""
        return self.lm.continuation(rag_prompt(self.person_name, self.wiki_content, text), max_new_tokens,
                                    repetition_penalty)


@dataclass
class ServedRagPartner:
    """The cascade partner of §A.5's RAG ablation: a served model given each subject's article."""

    lm: NextTokenLM
    articles: dict[str, str]
    name: str
    context_chars: int = CONTEXT_CHARS

    def session(self, entity: str | None, use_cache: bool) -> ServedRagSession:
        """A view of one sequence about ``entity``; ``use_cache`` plays no part (the server caches prefixes)."""
        entity = _subject(entity)
        return ServedRagSession(self.lm, entity, background(self.articles.get(entity), self.context_chars))


def load_served_rag_partner(model: str, *, base_url: str, api_key_env: str | None, knowledge: list[Path],
                            entities: list[str], cache_dir: Path) -> ServedRagPartner:
    """The served RAG partner for ``entities``: their articles from ``knowledge`` (FactScore's SQLite dump, or JSONL /
    a corpus directory, as ``lacy.knowledge.load_references`` reads them). The key is checked first."""
    lm = make_next_token_lm(model, cache_dir=cache_dir, base_url=base_url, api_key_env=api_key_env)
    return ServedRagPartner(lm=lm, articles=load_articles_of(knowledge, entities), name=f"{model} + RAG")


# ---------------------------------------------------------------------------------------------------------------
# The local partner given the article (the embedded default's Gemma-3-270M)


@dataclass
class LocalRagSession:
    """The local RAG partner's view of one sequence: the local partner's view, every text after the fixed head."""

    session: LocalSession
    head: str

    def candidates(self, text: str, k: int) -> list[Candidate]:
        """The local model's ``k`` most probable next tokens after ``text`` in the RAG prompt, best first."""
        return self.session.candidates(self.head + text, k)

    def input_ids(self, text: str) -> list[int]:
        """The local model's ids for the RAG prompt around ``text`` (writing alone)."""
        return self.session.input_ids(self.head + text)

    def text_start(self, ids: list[int]) -> int:
        """Where our text starts in ``ids``: after the ids it shares with the head alone."""
        return common_prefix(self.session.input_ids(self.head), ids)


@dataclass
class LocalRagPartner:
    """A local partner (``lacy.partners.local``) given each subject's article in a plain-text RAG prompt."""

    partner: LocalPartner
    articles: dict[str, str]
    name: str
    context_chars: int = CONTEXT_CHARS

    @property
    def eos_ids(self) -> frozenset[int]:
        return self.partner.eos_ids

    @property
    def context(self) -> int | None:
        return self.partner.context

    def head(self, entity: str) -> str:
        """The fixed start of every prompt about ``entity``: the instruction and the background."""
        return local_rag_prompt(entity, background(self.articles.get(entity), self.context_chars), "")

    def session(self, entity: str | None, use_cache: bool) -> LocalRagSession:
        """A view of one sequence about ``entity``; with ``use_cache`` the head is read once."""
        entity = _subject(entity)
        return LocalRagSession(self.partner.session(entity, use_cache), self.head(entity))

    def batch_candidates(self, sessions: list[LocalRagSession], texts: list[str], k: int) -> list[list[Candidate]]:
        """The ``k`` most probable next tokens after each text in its RAG prompt, from one batched forward pass."""
        return self.partner.batch_candidates([s.session for s in sessions],
                                             [s.head + text for s, text in zip(sessions, texts)], k)

    def next_token_logits_for_ids(self, sessions: list[LocalRagSession], ids: list[list[int]]) -> torch.Tensor:
        """The local model's next-token logits after each id sequence (writing alone), one pass."""
        return self.partner.next_token_logits_for_ids([s.session for s in sessions], ids)

    def decode(self, ids: list[int]) -> str:
        return self.partner.decode(ids)


def load_local_rag_partner(spec: str, *, knowledge: list[Path], entities: list[str],
                           device: torch.device | str = "cpu") -> LocalRagPartner:
    """The local partner ``spec`` (``lacy.partners.local.load_partner``) given the articles of ``entities`` from
    ``knowledge``; named "<spec> + RAG (local)"."""
    return LocalRagPartner(partner=load_partner(spec, device), articles=load_articles_of(knowledge, entities),
                           name=f"{spec} + RAG (local)")
