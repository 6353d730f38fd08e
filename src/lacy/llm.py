"""One small interface to instruction-following LLMs, used by the evaluations of §5.2, §5.3 and §B.

FactScore (Min et al., 2023) extracts atomic facts and judges them with an LLM (§5.2, §B), PopQA queries
are rephrased with Gemini 2.0 Flash (§B), and the acceptability judge asks an LLM too (§3, §A.1). All of them
call ``make_llm(...).complete(prompt)``. The served RAG cascade partner of §A.5 (``lacy.partners.rag``) needs a
served model's ranked next tokens for a raw prompt instead: ``make_next_token_lm(...).top_tokens(prompt, k)``, from
the *completions* endpoint with ``logprobs`` (chat endpoints apply their own template to messages; the paper's prompt
is already a full ChatML string), and, writing a biography alone, its greedy continuation token by token
(``continuation(prompt, max_tokens, repetition_penalty)``).

* **Backends.** ``openai``: any OpenAI-compatible chat-completions endpoint through the ``openai`` client
  (OpenAI itself, vLLM, a llama.cpp server). ``gemini``: Google's ``google-genai`` client (the maintained
  successor of the deprecated ``google-generativeai``). ``transformers``: a causal LM run locally, loaded
  like a cascade partner (``lacy.local_models.load_causal_lm``: a model name or directory, or
  ``gemma3-270m-gguf`` for the PyPI package's Gemma-3-270M); no key, no network. It is loaded at its first
  uncached request, so a rerun whose answers are all cached never loads it, and prompts sharing a long head
  (few-shot examples) run that head once (:class:`SharedHeadLM`).
* **Completion and choice.** ``complete`` returns generated text (the ``transformers`` backend decodes
  greedily, system text and prompt joined by a blank line: base models have no chat template).
  ``choose(prompt, options)`` returns the option the model finds most probable right after the prompt: the
  options' shared leading text (e.g. the space of ``" 0"`` / ``" 1"``) is appended to the prompt, and the
  first token of each option's remainder is compared by its next-token probability (an option must tokenise,
  after the prompt, as the shared text's tokens and tokens of its own). Only the
  ``transformers`` backend chooses (the API backends return no token probabilities through this
  interface); that is how a base model, which cannot be relied on to follow an answer format, gives a label.
* **Command lines.** Every LLM command takes the options of :func:`add_llm_arguments` and builds its LLM with
  :func:`llm_from_args`, or, where the function it calls takes an LLM spec as the configuration holds it,
  reads that spec with :func:`llm_spec_from_args`.
* **Credentials.** ``make_llm`` reads the key from the environment and fails before any request, naming
  the variable, when it is missing. The key is passed to the client only; it is never logged or cached.
  ``openai`` reads ``api_key_env`` (default ``OPENAI_API_KEY``); with a ``base_url`` and
  ``api_key_env=None`` no key is read at all (a local server), so an OpenAI key never travels to a
  third-party URL by accident. ``gemini`` reads ``api_key_env``, else ``GEMINI_API_KEY``, else
  ``GOOGLE_API_KEY``.
* **Cache.** Every answer is stored as one JSON file per request under
  ``<cache_dir>/<hash[:2]>/<hash>.json``, where the hash is the SHA-256 of the request
  (backend, model, system, prompt, temperature, max_tokens, and the options of a choice; for next tokens:
  endpoint, model, prompt, top_logprobs; for a continuation: endpoint, model, prompt, max_tokens, repetition
  penalty). Files are written atomically, so concurrent jobs and threads may
  share a cache and a crash never leaves a half-written answer.
* **Retries.** Rate limits (HTTP 429), server errors (5xx) and connection failures are retried with
  exponential backoff; any other 4xx is a bug in the request and raised at once.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib
import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol

import torch
from transformers import DynamicCache

from lacy.io import atomic_output
from lacy.local_models import load_causal_lm

log = logging.getLogger(__name__)

BACKENDS = ("openai", "gemini", "transformers")
#: Backends that can score options by their token probabilities (``LLM.choose``).
CHOICE_BACKENDS = ("transformers",)
OPENAI_KEY_ENV = "OPENAI_API_KEY"
GEMINI_KEY_ENVS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
#: Attempts per request (1 + retries) and the first backoff delay; the delay doubles up to ``MAX_BACKOFF_S``.
MAX_ATTEMPTS = 6
BACKOFF_S = 2.0
MAX_BACKOFF_S = 60.0


class LLM(Protocol):
    """What every caller of an LLM relies on."""

    name: str  # "<backend>:<model>"

    def complete(self, prompt: str, *, system: str | None = None, max_tokens: int = 512) -> str: ...

    def choose(self, prompt: str, options: tuple[str, ...], *, system: str | None = None) -> str: ...


class MissingCredentialsError(ValueError):
    """The environment variable holding the API key is not set."""


class TransientError(RuntimeError):
    """A failure worth retrying: rate limit, server error or lost connection."""


@dataclass(frozen=True)
class Request:
    """Everything an answer depends on; its hash names the cache file."""

    backend: str
    model: str
    system: str | None
    prompt: str
    temperature: float
    max_tokens: int
    options: tuple[str, ...] | None = None  # a choice among these continuations instead of a completion

    def key(self) -> str:
        fields = [self.backend, self.model, self.system, self.prompt, self.temperature, self.max_tokens]
        if self.options is not None:  # completion keys stay as they were before choices existed
            fields.append(list(self.options))
        return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class NextTokenRequest:
    """The ranked next tokens of a raw prompt (completions endpoint); its hash names the cache file."""

    endpoint: str
    model: str
    prompt: str
    top_logprobs: int

    def key(self) -> str:
        fields = [self.endpoint, self.model, self.prompt, self.top_logprobs]
        return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ContinuationRequest:
    """A greedy continuation of a raw prompt, token by token (completions endpoint); its hash names the cache file."""

    endpoint: str
    model: str
    prompt: str
    max_tokens: int
    repetition_penalty: float

    def key(self) -> str:
        fields = ["continuation", self.endpoint, self.model, self.prompt, self.max_tokens, self.repetition_penalty]
        return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode("utf-8")).hexdigest()


class AnswerCache:
    """One JSON file per request: ``<root>/<key[:2]>/<key>.json`` holding the request and the answer."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, request: Request | NextTokenRequest | ContinuationRequest) -> Path:
        key = request.key()
        return self.root / key[:2] / f"{key}.json"

    def get(self, request: Request | NextTokenRequest | ContinuationRequest):
        path = self.path(request)
        if not path.exists():
            return None
        return json.loads(path.read_text(encoding="utf-8"))["answer"]

    def put(self, request: Request | NextTokenRequest | ContinuationRequest, answer) -> None:
        record = {"request": request.__dict__, "answer": answer}
        with atomic_output(self.path(request)) as tmp:
            tmp.write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def with_retries(send: Callable[[], str], *, max_attempts: int = MAX_ATTEMPTS, backoff_s: float = BACKOFF_S,
                 sleep: Callable[[float], None] = time.sleep) -> str:
    """Call ``send`` until it succeeds, sleeping ``backoff_s * 2**k`` (capped) after the k-th TransientError."""
    for attempt in range(max_attempts):
        try:
            return send()
        except TransientError as err:
            if attempt == max_attempts - 1:
                raise
            delay = min(backoff_s * 2 ** attempt, MAX_BACKOFF_S)
            log.warning("%s; retrying in %.1f s (attempt %d of %d)", err, delay, attempt + 2, max_attempts)
            sleep(delay)
    raise AssertionError("unreachable")


def is_transient(status: int | None) -> bool:
    """Rate limits and server errors are retried; ``None`` means no HTTP answer (connection failure)."""
    return status is None or status == 429 or status >= 500


def cached_answer(cache: AnswerCache, request, send: Callable, max_attempts: int, backoff_s: float):
    """The cached answer to ``request``, else ``send(request)`` with retries, then cached."""
    answer = cache.get(request)
    if answer is None:
        answer = with_retries(lambda: send(request), max_attempts=max_attempts, backoff_s=backoff_s)
        cache.put(request, answer)
    return answer


class CachedLLM:
    """An ``LLM``: answers from the cache, else from ``send`` with retries, then cached."""

    def __init__(self, backend: str, model: str, send: Callable[[Request], str], cache: AnswerCache,
                 temperature: float, max_attempts: int, backoff_s: float):
        self.name = f"{backend}:{model}"
        self.backend, self.model, self.temperature = backend, model, temperature
        self._send, self._cache = send, cache
        self._max_attempts, self._backoff_s = max_attempts, backoff_s

    def complete(self, prompt: str, *, system: str | None = None, max_tokens: int = 512) -> str:
        request = Request(self.backend, self.model, system, prompt, self.temperature, max_tokens)
        return cached_answer(self._cache, request, self._send, self._max_attempts, self._backoff_s)

    def choose(self, prompt: str, options: tuple[str, ...], *, system: str | None = None) -> str:
        """The one of ``options`` the model finds most probable after ``prompt`` (``CHOICE_BACKENDS`` only)."""
        if self.backend not in CHOICE_BACKENDS:
            raise ValueError(f"backend {self.backend!r} gives no token probabilities; choosing among options "
                             f"needs one of {', '.join(CHOICE_BACKENDS)}")
        request = Request(self.backend, self.model, system, prompt, self.temperature, 1, tuple(options))
        return cached_answer(self._cache, request, self._send, self._max_attempts, self._backoff_s)


class NextTokenLM:
    """Ranked next tokens of a raw prompt from a served model, and its greedy continuations, cached and retried like
    ``CachedLLM``."""

    def __init__(self, model: str, send: Callable[[NextTokenRequest | ContinuationRequest], list | dict],
                 cache: AnswerCache, max_attempts: int, backoff_s: float):
        self.name = f"openai-completions:{model}"
        self.model = model
        self._send, self._cache = send, cache
        self._max_attempts, self._backoff_s = max_attempts, backoff_s

    def top_tokens(self, prompt: str, k: int) -> list[tuple[str, float]]:
        """The ``k`` most probable next tokens after ``prompt`` as (text, log-probability), best first."""
        request = NextTokenRequest("completions", self.model, prompt, k)
        return [(text, logprob) for text, logprob in
                cached_answer(self._cache, request, self._send, self._max_attempts, self._backoff_s)]

    def continuation(self, prompt: str, max_tokens: int, repetition_penalty: float) -> tuple[list[str], bool]:
        """The model's greedy continuation of ``prompt`` with ``repetition_penalty``, at most ``max_tokens`` tokens: the
        text of each of its tokens, and whether it ended by itself (its end-of-sequence token) before the limit."""
        request = ContinuationRequest("completions", self.model, prompt, max_tokens, repetition_penalty)
        answer = cached_answer(self._cache, request, self._send, self._max_attempts, self._backoff_s)
        return list(answer["tokens"]), answer["finish_reason"] == "stop"


def openai_client(base_url: str | None, api_key: str | None):
    """An ``openai`` client with its own retries off (``with_retries`` counts each request once)."""
    import openai

    # A keyless local server still needs a non-empty string for the client's Authorization header.
    return openai.OpenAI(api_key=api_key or "no-key", base_url=base_url, max_retries=0)


@contextmanager
def openai_errors(model: str) -> Iterator[None]:
    """Turn the ``openai`` client's rate-limit, server and connection errors into ``TransientError``."""
    import openai

    try:
        yield
    except openai.APIStatusError as err:
        if is_transient(err.status_code):
            raise TransientError(f"{model}: HTTP {err.status_code}") from err
        raise
    except openai.APIConnectionError as err:
        raise TransientError(f"{model}: {type(err).__name__}") from err


def openai_sender(model: str, base_url: str | None, api_key: str | None) -> Callable[[Request], str]:
    """Send a request to an OpenAI-compatible chat-completions endpoint."""
    client = openai_client(base_url, api_key)

    def send(request: Request) -> str:
        messages = [{"role": "system", "content": request.system}] if request.system is not None else []
        messages.append({"role": "user", "content": request.prompt})
        with openai_errors(model):
            response = client.chat.completions.create(model=model, messages=messages,
                                                      temperature=request.temperature,
                                                      max_tokens=request.max_tokens)
        return response.choices[0].message.content or ""

    return send


def openai_next_token_sender(model: str, base_url: str | None,
                             api_key: str | None) -> Callable[[NextTokenRequest | ContinuationRequest], list | dict]:
    """Ask an OpenAI-compatible *completions* endpoint for one greedy token with its ``top_logprobs`` alternatives
    (returned as ``[text, logprob]`` pairs, best first), or for a greedy continuation (returned as its tokens' texts
    and the finish reason). The continuation's repetition penalty is vLLM's ``repetition_penalty`` sampling
    parameter (sent in the request body; it penalises the prompt's tokens and the generated ones, as
    ``transformers`` does); one log-probability is requested so that the reply lists the tokens."""
    client = openai_client(base_url, api_key)

    def send(request: NextTokenRequest | ContinuationRequest) -> list | dict:
        if isinstance(request, ContinuationRequest):
            with openai_errors(model):
                response = client.completions.create(
                    model=model, prompt=request.prompt, max_tokens=request.max_tokens, temperature=0.0, logprobs=1,
                    extra_body={"repetition_penalty": request.repetition_penalty})
            choice = response.choices[0]
            if choice.logprobs is None or choice.logprobs.tokens is None:
                raise ValueError(f"{model}: the completions endpoint listed no tokens; serve the model where the "
                                 "completions API supports 'logprobs' (vLLM)")
            tokens = list(choice.logprobs.tokens)
            if "".join(tokens) != choice.text:
                log.warning("%s: the continuation's tokens do not add up to its text; its tokens are kept", model)
            return {"tokens": tokens, "finish_reason": choice.finish_reason}
        with openai_errors(model):
            response = client.completions.create(model=model, prompt=request.prompt, max_tokens=1,
                                                 temperature=0.0, logprobs=request.top_logprobs)
        logprobs = response.choices[0].logprobs
        if logprobs is None or not logprobs.top_logprobs:
            raise ValueError(f"{model}: the completions endpoint returned no top_logprobs; serve the model where "
                             "the completions API supports 'logprobs' (vLLM, llama.cpp server)")
        ranked = sorted(logprobs.top_logprobs[0].items(), key=lambda item: -item[1])
        return [[text, float(logprob)] for text, logprob in ranked]

    return send


def http_transport_errors() -> tuple[type[Exception], ...]:
    """Connection-level errors of whichever of ``httpx`` / its fork ``httpx2`` google-genai runs on."""
    found = []
    for module in ("httpx", "httpx2"):
        try:
            found.append(importlib.import_module(module).TransportError)
        except ImportError:
            continue
    return tuple(found)


def gemini_sender(model: str, base_url: str | None, api_key: str) -> Callable[[Request], str]:
    """Send a request to the Gemini API through ``google-genai``."""
    from google import genai
    from google.genai import errors, types

    transport_errors = http_transport_errors()
    http_options = types.HttpOptions(base_url=base_url) if base_url else None
    client = genai.Client(api_key=api_key, http_options=http_options)

    def send(request: Request) -> str:
        config = types.GenerateContentConfig(system_instruction=request.system, temperature=request.temperature,
                                             max_output_tokens=request.max_tokens)
        try:
            response = client.models.generate_content(model=model, contents=request.prompt, config=config)
        except errors.APIError as err:
            if is_transient(err.code):
                raise TransientError(f"{model}: HTTP {err.code}") from err
            raise
        except transport_errors as err:
            raise TransientError(f"{model}: {type(err).__name__}") from err
        return response.text or ""

    return send


class SharedHeadLM:
    """Next-token logits of a local causal LM for prompts that share a long head (the few-shot examples of a
    judging prompt): the head, the token prefix a prompt shares with the one before it, is run once and its KV
    cache copied for every later prompt that starts with it, which then feeds only its own tail. The cache is
    copied, never cropped: cropping past a sliding attention window (Gemma 3: 512 tokens) is unsupported."""

    def __init__(self, model):
        self.model = model
        self.head: list[int] = []
        self.head_cache = None
        self.previous: list[int] = []

    def next_token_logits(self, ids: list[int]):
        if not (self.head and ids[:len(self.head)] == self.head and len(ids) > len(self.head)):
            self.head = ids[:min(len(os.path.commonprefix([self.previous, ids])), len(ids) - 1)]
            self.head_cache = None
            if self.head:
                self.head_cache = DynamicCache(config=self.model.config)
                self.model(torch.tensor([self.head]), past_key_values=self.head_cache, use_cache=True,
                           logits_to_keep=1)
        self.previous = ids
        cache = copy.deepcopy(self.head_cache)
        out = self.model(torch.tensor([ids[len(self.head):]]), past_key_values=cache, use_cache=cache is not None,
                         logits_to_keep=1)
        return out.logits[0, -1]


def transformers_sender(model: str) -> Callable[[Request], str]:
    """Answer requests with a local causal LM (loaded on the first request; one request at a time)."""
    lock = threading.Lock()
    loaded: dict = {}

    def load():
        if not loaded:
            start = time.perf_counter()
            loaded["model"], loaded["tokenizer"] = load_causal_lm(model)
            loaded["lm"] = SharedHeadLM(loaded["model"])
            log.info("loaded %s for local LLM requests in %.0f s", model, time.perf_counter() - start)
        return loaded

    def send(request: Request) -> str:
        text = request.prompt if request.system is None else f"{request.system}\n\n{request.prompt}"
        with lock, torch.no_grad():
            tokenizer = load()["tokenizer"]
            if request.options is None:
                encoded = tokenizer(text, return_tensors="pt")
                out = loaded["model"].generate(**encoded, max_new_tokens=request.max_tokens, do_sample=False)
                return tokenizer.decode(out[0, encoded.input_ids.shape[1]:], skip_special_tokens=True)
            shared = os.path.commonprefix(list(request.options))
            prefix = tokenizer(text + shared).input_ids
            first = []
            for option in request.options:
                ids = tokenizer(text + option).input_ids
                if ids[:len(prefix)] != prefix or len(ids) == len(prefix):
                    raise ValueError(f"option {option!r} does not tokenise as the shared {shared!r} and tokens of "
                                     "its own")
                first.append(ids[len(prefix)])
            logits = loaded["lm"].next_token_logits(prefix)
            return request.options[max(range(len(first)), key=lambda i: float(logits[first[i]]))]

    return send


def read_key(names: tuple[str, ...], backend: str) -> str:
    """The value of the first set variable of ``names``; fails naming them all when none is set."""
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    raise MissingCredentialsError(f"{backend}: no API key: set the environment variable {' or '.join(names)}")


def openai_key(base_url: str | None, api_key_env: str | None) -> str | None:
    """The key for an OpenAI-compatible endpoint: none for a ``base_url`` without ``api_key_env`` (a local
    server), else the value of ``api_key_env`` (default ``OPENAI_API_KEY``), failing if it is not set."""
    if api_key_env is None and base_url is not None:
        return None
    return read_key((api_key_env or OPENAI_KEY_ENV,), "openai")


def make_llm(backend: str, model: str, *, cache_dir: Path, base_url: str | None = None,
             api_key_env: str | None = None, temperature: float = 0.0, max_attempts: int = MAX_ATTEMPTS,
             backoff_s: float = BACKOFF_S) -> LLM:
    """A cached, retrying ``LLM`` named ``"<backend>:<model>"``; credentials are checked here, before any request."""
    if backend == "openai":
        send = openai_sender(model, base_url, openai_key(base_url, api_key_env))
    elif backend == "gemini":
        send = gemini_sender(model, base_url, read_key((api_key_env,) if api_key_env else GEMINI_KEY_ENVS, backend))
    elif backend == "transformers":
        if base_url or api_key_env:
            raise ValueError("the transformers backend runs locally: no --base-url or --api-key-env")
        if temperature != 0:
            raise ValueError(f"the transformers backend decodes greedily: temperature 0, not {temperature}")
        send = transformers_sender(model)
    else:
        raise ValueError(f"unknown LLM backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return CachedLLM(backend, model, send, AnswerCache(cache_dir), temperature, max_attempts, backoff_s)


def make_next_token_lm(model: str, *, cache_dir: Path, base_url: str | None, api_key_env: str | None = None,
                       max_attempts: int = MAX_ATTEMPTS, backoff_s: float = BACKOFF_S) -> NextTokenLM:
    """A cached, retrying ``NextTokenLM`` on an OpenAI-compatible completions endpoint; the key (``openai_key``) is
    checked here, before any request."""
    send = openai_next_token_sender(model, base_url, openai_key(base_url, api_key_env))
    return NextTokenLM(model, send, AnswerCache(cache_dir), max_attempts, backoff_s)


def add_llm_arguments(parser: argparse.ArgumentParser, *, backend: str | None = None, llm: str | None = None,
                      llm_help: str = "model name", aliases: tuple[str, ...] = ()) -> None:
    """The options of every LLM command: ``--backend``, ``--llm`` (plus ``aliases``), ``--base-url``,
    ``--api-key-env``, ``--cache-dir``. Without a default, ``--backend`` / ``--llm`` are required."""
    parser.add_argument("--backend", choices=BACKENDS, default=backend, required=backend is None,
                        help="lacy.llm backend")
    parser.add_argument("--llm", *aliases, dest="llm", default=llm, required=llm is None, help=llm_help)
    parser.add_argument("--base-url", default=None, help="endpoint (openai: vLLM, a llama.cpp server; gemini)")
    parser.add_argument("--api-key-env", default=None,
                        help="environment variable of the key (default: OPENAI_API_KEY, or GEMINI_API_KEY / "
                             "GOOGLE_API_KEY; none for openai with --base-url, and for transformers)")
    parser.add_argument("--cache-dir", type=Path, required=True, help="on-disk cache of LLM answers")


def llm_spec_from_args(args: argparse.Namespace) -> dict:
    """The LLM spec ``{backend, model, base_url, api_key_env}`` (as the configuration's LLM entries hold it, and
    :func:`make_llm` takes it) that the options of :func:`add_llm_arguments` name; the cache is ``args.cache_dir``."""
    return {"backend": args.backend, "model": args.llm, "base_url": args.base_url, "api_key_env": args.api_key_env}


def llm_from_args(args: argparse.Namespace, model: str | None = None) -> LLM:
    """``make_llm`` from the options of :func:`add_llm_arguments` (``model`` replaces ``--llm``)."""
    spec = llm_spec_from_args(args)
    if model:
        spec["model"] = model
    return make_llm(cache_dir=args.cache_dir, **spec)
