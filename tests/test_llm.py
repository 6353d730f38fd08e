"""lacy.llm against a local HTTP server speaking OpenAI's chat-completions and completions JSON."""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import pytest

from lacy.llm import MissingCredentialsError, make_llm, make_next_token_lm

#: A reply is (HTTP status, assistant text) computed from the request's messages.
Reply = Callable[[list[dict]], tuple[int, str]]


class FakeServer(ABC):
    """An OpenAI-compatible endpoint on localhost; records every request body and its Authorization header.
    Subclasses turn a request body into (HTTP status, JSON payload)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.headers.append({"Authorization": self.headers.get("Authorization")})
                status, payload = server.respond(body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @abstractmethod
    def respond(self, body: dict) -> tuple[int, dict]: ...

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def error_payload(status: int, text: str) -> dict:
    return {"error": {"message": text, "type": "test", "code": status}}


class FakeChatServer(FakeServer):
    """``POST /v1/chat/completions``: the assistant's text from ``reply(messages)``."""

    def __init__(self, reply: Reply):
        super().__init__()
        self.reply = reply

    def respond(self, body: dict) -> tuple[int, dict]:
        status, text = self.reply(body["messages"])
        if status != 200:
            return status, error_payload(status, text)
        return status, {"id": "cmpl-test", "object": "chat.completion", "created": 0, "model": body["model"],
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": text}}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


class FakeCompletionsServer(FakeServer):
    """``POST /v1/completions`` with ``logprobs``: one token and its alternatives from ``top(prompt)``, a dict
    {token text: logprob} in any order (as vLLM answers); ``top`` may return (status, message) to fail."""

    def __init__(self, top: Callable[[str], dict | tuple[int, str]]):
        super().__init__()
        self.top = top

    def respond(self, body: dict) -> tuple[int, dict]:
        top = self.top(body["prompt"])
        if isinstance(top, tuple):
            return top[0], error_payload(*top)
        best = max(top, key=top.get)
        logprobs = {"tokens": [best], "token_logprobs": [top[best]], "top_logprobs": [top], "text_offset": [0]}
        return 200, {"id": "cmpl-test", "object": "text_completion", "created": 0, "model": body["model"],
                     "choices": [{"index": 0, "text": best, "finish_reason": "length", "logprobs": logprobs}],
                     "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def scripted(*replies: tuple[int, str]) -> Reply:
    """Replies in order; the last one repeats."""
    queue = list(replies)
    return lambda messages: queue.pop(0) if len(queue) > 1 else queue[0]


def local_llm(server: FakeChatServer, tmp_path, **kwargs):
    return make_llm("openai", "test-model", cache_dir=tmp_path / "cache", base_url=server.base_url,
                    backoff_s=0.01, **kwargs)


def test_answer_and_cache_hit_avoid_a_second_request(tmp_path):
    with FakeChatServer(scripted((200, "Paris"))) as server:
        llm = local_llm(server, tmp_path)
        assert llm.name == "openai:test-model"
        assert llm.complete("Capital of France?", system="Be brief.") == "Paris"
        assert llm.complete("Capital of France?", system="Be brief.") == "Paris"
        assert len(server.requests) == 1
        request = server.requests[0]
        assert request["messages"] == [{"role": "system", "content": "Be brief."},
                                       {"role": "user", "content": "Capital of France?"}]
        assert request["temperature"] == 0.0 and request["max_tokens"] == 512
        # a new process (new LLM object) reads the same cache
        assert local_llm(server, tmp_path).complete("Capital of France?", system="Be brief.") == "Paris"
        assert len(server.requests) == 1
        # every field of the request is part of the key
        llm.complete("Capital of France?")
        llm.complete("Capital of France?", system="Be brief.", max_tokens=8)
        assert len(server.requests) == 3


def test_rate_limit_and_server_error_are_retried(tmp_path):
    with FakeChatServer(scripted((429, "slow down"), (503, "busy"), (200, "ok"))) as server:
        assert local_llm(server, tmp_path).complete("hi") == "ok"
        assert len(server.requests) == 3


def test_client_error_is_not_retried_nor_cached(tmp_path):
    import openai

    with FakeChatServer(scripted((400, "bad request"), (200, "ok"))) as server:
        llm = local_llm(server, tmp_path)
        with pytest.raises(openai.BadRequestError):
            llm.complete("hi")
        assert len(server.requests) == 1
        assert llm.complete("hi") == "ok"


def test_retries_give_up_after_max_attempts(tmp_path):
    import openai

    with FakeChatServer(scripted((500, "down"))) as server:
        with pytest.raises(Exception) as info:
            local_llm(server, tmp_path, max_attempts=3).complete("hi")
        assert isinstance(info.value.__cause__, openai.InternalServerError)
        assert len(server.requests) == 3


def test_missing_key_names_the_variable_before_any_request(tmp_path, monkeypatch):
    monkeypatch.delenv("LACY_TEST_KEY", raising=False)
    with FakeChatServer(scripted((200, "ok"))) as server:
        with pytest.raises(MissingCredentialsError, match="LACY_TEST_KEY"):
            local_llm(server, tmp_path, api_key_env="LACY_TEST_KEY")
        assert server.requests == []
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MissingCredentialsError, match="OPENAI_API_KEY"):
        make_llm("openai", "gpt-3.5-turbo", cache_dir=tmp_path)
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(MissingCredentialsError, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        make_llm("gemini", "gemini-2.0-flash", cache_dir=tmp_path)


def test_key_is_sent_but_never_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("LACY_TEST_KEY", "sk-secret-123")
    with FakeChatServer(scripted((200, "ok"))) as server:
        local_llm(server, tmp_path, api_key_env="LACY_TEST_KEY").complete("hi")
        assert server.headers[0]["Authorization"] == "Bearer sk-secret-123"
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            assert "sk-secret-123" not in path.read_text()


def test_unknown_backend(tmp_path):
    with pytest.raises(ValueError, match="unknown LLM backend"):
        make_llm("claude-via-fax", "m", cache_dir=tmp_path)


def test_next_tokens_are_ranked_cached_and_retried(tmp_path):
    tops = [(503, "busy"), {" Paris": -0.9, " London": -0.2, "<|im_end|>": -3.0}]
    with FakeCompletionsServer(lambda prompt: tops.pop(0) if len(tops) > 1 else tops[0]) as server:
        lm = make_next_token_lm("served-model", cache_dir=tmp_path / "cache", base_url=server.base_url, backoff_s=0.01)
        assert lm.top_tokens("raw <|im_start|> prompt", 3) == [(" London", -0.2), (" Paris", -0.9),
                                                                ("<|im_end|>", -3.0)]
        assert len(server.requests) == 2
        request = server.requests[-1]
        assert request["prompt"] == "raw <|im_start|> prompt" and request["logprobs"] == 3
        assert request["max_tokens"] == 1 and request["temperature"] == 0.0
        fresh = make_next_token_lm("served-model", cache_dir=tmp_path / "cache", base_url=server.base_url)
        assert fresh.top_tokens("raw <|im_start|> prompt", 3)[0] == (" London", -0.2)
        assert len(server.requests) == 2


# --- the local transformers backend and the options every LLM command shares ---------------------------------


@pytest.fixture(scope="module")
def tiny_local_lm(tmp_path_factory, wiki_records):
    """A tiny random GPT-2 saved like a hub model, with a byte-level BPE trained on digit-free text (so " 0"
    tokenises as a space and a digit, as with Gemma)."""
    import re

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator((re.sub(r"\d", "", r["text"]) for r in wiki_records[:200]),
                            trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_embd=32, n_layer=2, n_head=2,
                                       bos_token_id=0, eos_token_id=0)).eval()
    path = tmp_path_factory.mktemp("tiny-lm")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path, model, tokenizer


def test_transformers_backend_chooses_by_next_token_probability_and_caches(tiny_local_lm, tmp_path, monkeypatch):
    import torch

    path, model, tokenizer = tiny_local_lm
    llm = make_llm("transformers", str(path), cache_dir=tmp_path)
    assert llm.name == f"transformers:{path}"
    for prompt in ["Alan Turing was an English mathematician.\n**output**:", "Entre Campos\n**output**:"]:
        with torch.no_grad():
            logits = model(torch.tensor([tokenizer(prompt + " ").input_ids])).logits[0, -1]
        zero, one = tokenizer.convert_tokens_to_ids(["0", "1"])
        expected = " 1" if logits[one] > logits[zero] else " 0"
        assert llm.choose(prompt, (" 0", " 1")) == expected
        assert llm.choose(prompt, (" 1", " 0")) == expected  # the order of the options does not matter
    with torch.no_grad():
        encoded = tokenizer("Alan Turing was", return_tensors="pt")
        greedy = model.generate(**encoded, max_new_tokens=5, do_sample=False)[0, encoded.input_ids.shape[1]:]
    assert llm.complete("Alan Turing was", max_tokens=5) == tokenizer.decode(greedy, skip_special_tokens=True)

    import lacy.llm

    def no_loading(spec):
        raise AssertionError("a cached answer must not load the model")

    monkeypatch.setattr(lacy.llm, "load_causal_lm", no_loading)
    again = make_llm("transformers", str(path), cache_dir=tmp_path)
    assert again.choose("Entre Campos\n**output**:", (" 0", " 1")) == expected
    assert again.complete("Alan Turing was", max_tokens=5) == tokenizer.decode(greedy, skip_special_tokens=True)


def test_choices_need_options_of_their_own_tokens_and_a_local_backend(tiny_local_lm, tmp_path):
    path, _, tokenizer = tiny_local_lm
    assert tokenizer.tokenize(" the") == ["Ġthe"]  # one merged piece: " " + "the" is not how it tokenises
    with pytest.raises(ValueError, match="does not tokenise as the shared ' '"):
        make_llm("transformers", str(path), cache_dir=tmp_path).choose("Once", (" the", " a"))
    with pytest.raises(ValueError, match="gives no token probabilities"):
        make_llm("openai", "m", cache_dir=tmp_path, base_url="http://127.0.0.1:9/v1").choose("x", (" 0", " 1"))
    with pytest.raises(ValueError, match="decodes greedily"):
        make_llm("transformers", str(path), cache_dir=tmp_path, temperature=0.7)


def test_llm_arguments_are_shared_and_take_the_workflow_flags(tmp_path, monkeypatch):
    import argparse
    import shlex

    from lacy.llm import add_llm_arguments, llm_from_args, llm_spec_from_args

    parser = argparse.ArgumentParser()
    add_llm_arguments(parser)
    with pytest.raises(SystemExit):  # --backend and --llm are required without defaults
        parser.parse_args(["--cache-dir", str(tmp_path)])
    # what workflow/rules/common.smk's llm_options writes, plus the rules' --cache-dir
    flags = "--backend openai --llm gpt-4o-mini --base-url http://127.0.0.1:9/v1 --api-key-env LACY_TEST_KEY"
    args = parser.parse_args([*shlex.split(flags), "--cache-dir", str(tmp_path)])
    assert (args.backend, args.llm, args.base_url, args.api_key_env) == ("openai", "gpt-4o-mini",
                                                                         "http://127.0.0.1:9/v1", "LACY_TEST_KEY")
    assert llm_spec_from_args(args) == {"backend": "openai", "model": "gpt-4o-mini", "base_url": "http://127.0.0.1:9/v1",
                                        "api_key_env": "LACY_TEST_KEY"}  # a config LLM entry, as make_llm takes it
    monkeypatch.delenv("LACY_TEST_KEY", raising=False)
    with pytest.raises(MissingCredentialsError, match="LACY_TEST_KEY"):
        llm_from_args(args)
    args.api_key_env = None
    assert llm_from_args(args, "other-model").name == "openai:other-model"

    factscore_like = argparse.ArgumentParser()
    add_llm_arguments(factscore_like, backend="openai", llm="gpt-3.5-turbo", aliases=("--model",))
    assert factscore_like.parse_args(["--cache-dir", "c"]).llm == "gpt-3.5-turbo"
    assert factscore_like.parse_args(["--model", "m", "--cache-dir", "c"]).llm == "m"


def test_a_shared_head_is_run_once_and_gives_the_full_prompts_logits_past_a_sliding_window():
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from lacy.llm import SharedHeadLM

    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=16, sliding_window=8,
                              layer_types=["sliding_attention", "full_attention"])
    model = Gemma3ForCausalLM(config).double().eval()
    head = torch.randint(3, 64, (40,)).tolist()  # five times the sliding window
    prompts = [head + torch.randint(3, 64, (n,)).tolist() for n in (3, 7, 1, 12)]
    lm = SharedHeadLM(model)
    with torch.no_grad():
        for ids in prompts:
            full = model(torch.tensor([ids])).logits[0, -1]
            assert torch.allclose(lm.next_token_logits(ids), full, atol=1e-10)
    assert lm.head == head  # found from the first two prompts, then reused
