"""One small interface to instruction-following LLMs, used by the evaluations of §5.2, §5.3 and §B.

FactScore (Min et al., 2023) extracts atomic facts and judges them with an LLM (§5.2, §B), PopQA queries
are rephrased with Gemini 2.0 Flash (§B), and the acceptability judge asks an LLM too. All of them call
``make_llm(...).complete(prompt)``.

* **Backends.** ``openai``: any OpenAI-compatible chat-completions endpoint through the ``openai`` client
  (OpenAI itself, vLLM, a llama.cpp server). ``gemini``: Google's ``google-genai`` client (the maintained
  successor of the deprecated ``google-generativeai``).
* **Credentials.** ``make_llm`` reads the key from the environment and fails before any request, naming
  the variable, when it is missing. The key is passed to the client only; it is never logged or cached.
  ``openai`` reads ``api_key_env`` (default ``OPENAI_API_KEY``); with a ``base_url`` and
  ``api_key_env=None`` no key is read at all (a local server), so an OpenAI key never travels to a
  third-party URL by accident. ``gemini`` reads ``api_key_env``, else ``GEMINI_API_KEY``, else
  ``GOOGLE_API_KEY``.
* **Cache.** Every answer is stored as one JSON file per request under
  ``<cache_dir>/<hash[:2]>/<hash>.json``, where the hash is the SHA-256 of the request
  (backend, model, system, prompt, temperature, max_tokens). Files are written atomically, so concurrent
  jobs and threads may share a cache and a crash never leaves a half-written answer.
* **Retries.** Rate limits (HTTP 429), server errors (5xx) and connection failures are retried with
  exponential backoff; any other 4xx is a bug in the request and raised at once.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from lacy.io import atomic_output

log = logging.getLogger(__name__)

BACKENDS = ("openai", "gemini")
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

    def key(self) -> str:
        fields = [self.backend, self.model, self.system, self.prompt, self.temperature, self.max_tokens]
        return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode("utf-8")).hexdigest()


class AnswerCache:
    """One JSON file per request: ``<root>/<key[:2]>/<key>.json`` holding the request and the answer."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, request: Request) -> Path:
        key = request.key()
        return self.root / key[:2] / f"{key}.json"

    def get(self, request: Request) -> str | None:
        path = self.path(request)
        if not path.exists():
            return None
        return json.loads(path.read_text(encoding="utf-8"))["answer"]

    def put(self, request: Request, answer: str) -> None:
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
        answer = self._cache.get(request)
        if answer is None:
            answer = with_retries(lambda: self._send(request), max_attempts=self._max_attempts,
                                  backoff_s=self._backoff_s)
            self._cache.put(request, answer)
        return answer


def openai_sender(model: str, base_url: str | None, api_key: str | None) -> Callable[[Request], str]:
    """Send a request to an OpenAI-compatible chat-completions endpoint (the client's own retries are off)."""
    import openai

    # A keyless local server still needs a non-empty string for the client's Authorization header.
    client = openai.OpenAI(api_key=api_key or "no-key", base_url=base_url, max_retries=0)

    def send(request: Request) -> str:
        messages = [{"role": "system", "content": request.system}] if request.system is not None else []
        messages.append({"role": "user", "content": request.prompt})
        try:
            response = client.chat.completions.create(model=model, messages=messages,
                                                      temperature=request.temperature,
                                                      max_tokens=request.max_tokens)
        except openai.APIStatusError as err:
            if is_transient(err.status_code):
                raise TransientError(f"{model}: HTTP {err.status_code}") from err
            raise
        except openai.APIConnectionError as err:
            raise TransientError(f"{model}: {type(err).__name__}") from err
        return response.choices[0].message.content or ""

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


def read_key(names: tuple[str, ...], backend: str) -> str:
    """The value of the first set variable of ``names``; fails naming them all when none is set."""
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    raise MissingCredentialsError(f"{backend}: no API key: set the environment variable {' or '.join(names)}")


def make_llm(backend: str, model: str, *, cache_dir: Path, base_url: str | None = None,
             api_key_env: str | None = None, temperature: float = 0.0, max_attempts: int = MAX_ATTEMPTS,
             backoff_s: float = BACKOFF_S) -> LLM:
    """A cached, retrying ``LLM`` named ``"<backend>:<model>"``; credentials are checked here, before any request."""
    if backend == "openai":
        if api_key_env is None and base_url is not None:
            api_key = None
        else:
            api_key = read_key((api_key_env or OPENAI_KEY_ENV,), backend)
        send = openai_sender(model, base_url, api_key)
    elif backend == "gemini":
        send = gemini_sender(model, base_url, read_key((api_key_env,) if api_key_env else GEMINI_KEY_ENVS, backend))
    else:
        raise ValueError(f"unknown LLM backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return CachedLLM(backend, model, send, AnswerCache(cache_dir), temperature, max_attempts, backoff_s)
