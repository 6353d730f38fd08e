"""Fact leakage (§5.3, §B): scoring, prompts, query sets, generation with <CALL> disabled, BIG-bench extraction."""

from __future__ import annotations

import argparse
import io
import json
import tarfile

import pytest
import torch

from lacy import bigbench, leakage
from lacy.model import build_model

ALVAR = {"id": "Alvar Aalto", "title": "Alvar Aalto", "is_person": True,
         "description": "Finnish architect and designer (1898–1976)",
         "text": "Alvar Aalto was a Finnish architect. He was born in 1898 in Kuortane."}


def test_normalisation_is_squad_style():
    assert leakage.normalize_answer("  The  U.S.A., an ally!") == "u s ally"
    assert leakage.normalize_answer("Jean-Paul") == "jean paul"


@pytest.mark.parametrize("generation,answers,hit", [
    ("a Finnish architect", ["Finnish"], True),
    ("the Republic of Finland.", ["Finland", "Suomi"], True),
    ("SUOMI", ["Finland", "Suomi"], True),
    ("born in 18985", ["1898"], False),          # whole words only
    ("a party animal", ["art"], False),
    ("the", ["The"], False),                     # an answer that normalises to nothing never counts
    ("", ["Finland"], False),
])
def test_containment(generation, answers, hit):
    assert leakage.contains_answer(generation, answers) is hit


def test_shots_are_other_queries_fixed_by_seed():
    for i in range(10):
        shots = leakage.shot_indices(10, i, 3, seed=0)
        assert len(set(shots)) == 3 and i not in shots and all(0 <= j < 10 for j in shots)
        assert shots == leakage.shot_indices(10, i, 3, seed=0)
    with pytest.raises(ValueError):
        leakage.shot_indices(3, 0, 3)


def test_few_shot_prompt_puts_examples_before_the_query():
    shots = [{"prompt": "The country of Ufa is", "answers": ["Russia"]},
             {"prompt": "Alvar Aalto was", "answers": ["Finnish"], "completion": "Finnish architect"}]
    prompt = leakage.few_shot_prompt({"prompt": "The capital of Finland is", "answers": ["Helsinki"]}, shots)
    assert prompt == "The country of Ufa is Russia\nAlvar Aalto was Finnish architect\nThe capital of Finland is"
    queries = [{"prompt": f"q{i}", "answers": [f"a{i}"]} for i in range(5)]
    prompts = leakage.build_prompts(queries, 3, seed=0)
    assert all(p.endswith(f"\nq{i}") and p.count("\n") == 3 and f"q{i} a{i}" not in p for i, p in enumerate(prompts))


def test_person_cloze_keeps_answers_found_in_the_training_text():
    queries = leakage.person_cloze_queries(ALVAR)
    assert queries == [
        {"id": "Alvar Aalto-description", "prompt": "Alvar Aalto was", "answers": ["Finnish", "architect"],
         "completion": "Finnish architect and designer"},
        {"id": "Alvar Aalto-born", "prompt": "Alvar Aalto was born in", "answers": ["1898"]},
    ]
    living = {**ALVAR, "title": "Jane Doe (chemist)", "description": "British chemist (born 1956)",
              "text": "Jane Doe is a British chemist."}
    assert leakage.person_cloze_queries(living) == [
        {"id": "Alvar Aalto-description", "prompt": "Jane Doe is", "answers": ["British", "chemist"],
         "completion": "British chemist"}]
    group = {**ALVAR, "is_person": False}
    assert leakage.corpus_person_cloze([ALVAR, group]) == queries


def test_qa_wikidata_targets_become_alias_lists():
    task = {"examples": [{"input": "The genre of X is", "target": ["comedy", "parody"]},
                         {"input": "The language of Y is ", "target": "English"}]}
    assert leakage.qa_wikidata_queries(task) == [
        {"id": "qa_wikidata-0", "prompt": "The genre of X is", "answers": ["comedy", "parody"]},
        {"id": "qa_wikidata-1", "prompt": "The language of Y is", "answers": ["English"]}]


class FakeLLM:
    def __init__(self):
        self.calls = []

    def complete(self, prompt, system=None, max_tokens=512):
        self.calls.append(prompt)
        return ' "Ufa is the capital of..."\nextra line'


def test_popqa_long_tail_and_rephrasing():
    rows = [{"id": 1, "question": "What is Ufa the capital of?", "possible_answers": '["Bashkortostan"]',
             "s_pop": 99},
            {"id": 2, "question": "What is Paris the capital of?", "possible_answers": '["France"]', "s_pop": 5000}]
    selected = leakage.select_long_tail(rows)
    assert selected == [{"id": "1", "question": "What is Ufa the capital of?", "s_pop": 99,
                         "answers": ["Bashkortostan"]}]
    llm = FakeLLM()
    queries = leakage.rephrase_popqa(selected, llm)
    assert queries[0]["prompt"] == "What is Ufa the capital of? Ufa is the capital of"
    assert queries[0]["answers"] == ["Bashkortostan"] and "What is Ufa the capital of?" in llm.calls[0]


@pytest.fixture(scope="module")
def call_models(small_tokenizer):
    """Two tiny models identical except that the second's <CALL> logit dwarfs every other logit."""
    torch.manual_seed(0)
    model = build_model("test-tiny", small_tokenizer.vocab_size, 64, small_tokenizer.call_id).eval()
    huge = build_model("test-tiny", small_tokenizer.vocab_size, 64, small_tokenizer.call_id).eval()
    huge.load_state_dict(model.state_dict())
    with torch.no_grad():
        huge.transformer.ln_f.bias[0] = 10.0
        huge.transformer.wte.weight[:, 0] = 0.0
        huge.transformer.wte.weight[small_tokenizer.call_id, 0] = 1000.0
    return model, huge


def _generate(model, tokenizer, prompts, batch_size):
    return leakage.generate_greedy(model, lambda t: tokenizer.encode(t).tolist(), tokenizer.decode, prompts,
                                   tokenizer.call_id, max_new_tokens=6, batch_size=batch_size)


def test_generation_never_calls_and_ignores_batching(call_models, small_tokenizer):
    _, huge = call_models
    ids = torch.tensor([small_tokenizer.encode("Alvar Aalto was a").tolist()])
    assert huge(ids).logits[0, -1].argmax().item() == small_tokenizer.call_id  # it would call if it could
    prompts = ["Alvar Aalto was a", "The capital of Finland is", "x " * 100]  # the last one is truncated
    batched = _generate(huge, small_tokenizer, prompts, batch_size=3)
    assert batched == _generate(huge, small_tokenizer, prompts, batch_size=1)
    assert all("<CALL>" not in g and "\n" not in g for g in batched)


def test_leakage_run_end_to_end(call_models, small_tokenizer, tmp_path):
    model, _ = call_models
    model.save_pretrained(tmp_path / "model")
    small_tokenizer.save_pretrained(tmp_path / "model")
    queries = [{"id": str(i), "prompt": f"Person {i} was born in", "answers": [str(1900 + i)]} for i in range(6)]
    leakage.write_jsonl(tmp_path / "cloze.jsonl", queries)
    parser = argparse.ArgumentParser()
    leakage.register(parser.add_subparsers())
    args = parser.parse_args(["leakage", "run", "--model", str(tmp_path / "model"), "--out", str(tmp_path / "out.json"),
                              "--queries", f"corpus_person_cloze={tmp_path / 'cloze.jsonl'}", "--max-new-tokens", "4",
                              "--generations", str(tmp_path / "gen.jsonl.gz"), "--bootstrap", "50"])
    args.func(args)
    summary = json.loads((tmp_path / "out.json").read_text())
    result = summary["sets"]["corpus_person_cloze"]
    assert result["queries"] == 6 and 0 <= result["fact_leakage"] <= 1 and len(result["ci95"]) == 2
    assert len(leakage.read_queries(tmp_path / "gen.jsonl.gz")) == 6


def _fake_sdist(path, tasks):
    with tarfile.open(path, "w:gz") as tar:
        for task, content in tasks.items():
            data = json.dumps(content).encode()
            info = tarfile.TarInfo(bigbench.member_name(task))
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_bigbench_extracts_once_from_the_sdist(tmp_path, monkeypatch):
    tasks = {t: {"name": t, "examples": [{"input": t, "target": "x"}]} for t in bigbench.TASKS}
    sdist = _fake_sdist(tmp_path / bigbench.SDIST, tasks)
    paths = bigbench.ensure_tasks(tmp_path / "cache", sdist=sdist)
    assert [json.loads(p.read_text()) for p in paths] == list(tasks.values())

    def no_download(*args, **kwargs):
        raise AssertionError("downloaded although every task is cached")

    monkeypatch.setattr(bigbench, "download_sdist", no_download)
    assert bigbench.ensure_tasks(tmp_path / "cache") == paths
    with pytest.raises(ValueError, match="no bigbench-1.0.0/bigbench/benchmark_tasks/social_iqa"):
        bigbench.extract_tasks(_fake_sdist(tmp_path / "partial.tar.gz", {"qa_wikidata": {}}), tmp_path / "x")


def test_bigbench_sdist_comes_from_the_package_index_with_its_checksum(tmp_path):
    """A local HTTP server plays the PEP 503 index: the page's sha256 must match the downloaded bytes."""
    import functools
    import hashlib
    import http.server
    import threading

    import pytest

    from lacy import bigbench

    served = tmp_path / "index"
    (served / "bigbench").mkdir(parents=True)
    payload = b"not really a tarball"
    (served / bigbench.SDIST).write_bytes(payload)
    good = hashlib.sha256(payload).hexdigest()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    index = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for sha, dest in ((good, tmp_path / "ok"), ("0" * 64, tmp_path / "bad")):
            (served / "bigbench" / "index.html").write_text(f'<a href="../{bigbench.SDIST}#sha256={sha}">x</a>')
            if sha == good:
                assert bigbench.download_sdist(dest, index).read_bytes() == payload
            else:
                with pytest.raises(ValueError, match="SHA-256"):
                    bigbench.download_sdist(dest, index)
                assert not (dest / bigbench.SDIST).exists()
    finally:
        server.shutdown()


def test_run_leakage_is_what_the_command_runs(call_models, small_tokenizer, tmp_path):
    """The fact_leakage rule's adapter calls run_leakage; `lacy leakage run` maps its options onto the same call."""
    import gzip

    from lacy.cli import main

    model, _ = call_models
    model.save_pretrained(tmp_path / "model")
    small_tokenizer.save_pretrained(tmp_path / "model")
    sets = {}
    for name, template in (("corpus_person_cloze", "Person {} was born in"), ("bigbench_qa_wikidata", "City {} is in")):
        sets[name] = tmp_path / f"{name}.jsonl"
        leakage.write_jsonl(sets[name], [{"id": str(i), "prompt": template.format(i), "answers": [str(1900 + i)]}
                                         for i in range(8)])
    summary = leakage.run_leakage(tmp_path / "model", sets, tmp_path / "run.json", tmp_path / "run.jsonl.gz",
                                  shots=2, max_queries=5, max_new_tokens=4, n_resamples=50)
    main(["leakage", "run", "--model", str(tmp_path / "model"), "--out", str(tmp_path / "cli.json"),
          "--generations", str(tmp_path / "cli.jsonl.gz"), "--shots", "2", "--max-queries", "5",
          "--max-new-tokens", "4", "--bootstrap", "50",
          *(f"--queries={name}={path}" for name, path in sets.items())])
    assert (tmp_path / "run.json").read_bytes() == (tmp_path / "cli.json").read_bytes()
    assert gzip.decompress((tmp_path / "run.jsonl.gz").read_bytes()) == gzip.decompress(
        (tmp_path / "cli.jsonl.gz").read_bytes())
    assert list(summary["sets"]) == list(sets) and summary["shots"] == 2
    assert [r["queries"] for r in summary["sets"].values()] == [5, 5]
    assert len(leakage.read_queries(tmp_path / "run.jsonl.gz")) == 10


def test_popqa_rephrasing_with_the_llm_a_config_spec_makes(tmp_path):
    """The leakage_popqa_rephrase rule's adapter: make_llm(cache_dir=..., **spec) and write_popqa_queries; a rerun
    answers from the cache."""
    from test_llm import FakeChatServer

    from lacy.llm import make_llm

    rows = tmp_path / "popqa_long_tail.jsonl"
    leakage.write_jsonl(rows, [{"id": "7", "question": "What is Ufa the capital of?", "s_pop": 99,
                                "answers": ["Bashkortostan"]}])
    with FakeChatServer(lambda messages: (200, "Sentence start: Ufa is the capital of\n")) as server:
        spec = {"backend": "openai", "model": "test-model", "base_url": server.base_url, "api_key_env": None}
        assert leakage.write_popqa_queries(rows, make_llm(cache_dir=tmp_path / "cache", **spec),
                                           tmp_path / "queries.jsonl") == 1
    assert len(server.requests) == 1 and "What is Ufa the capital of?" in json.dumps(server.requests[0])
    assert leakage.read_queries(tmp_path / "queries.jsonl") == [
        {"id": "popqa-7", "prompt": "What is Ufa the capital of? Ufa is the capital of", "answers": ["Bashkortostan"],
         "s_pop": 99}]
    leakage.write_popqa_queries(rows, make_llm(cache_dir=tmp_path / "cache", **spec), tmp_path / "again.jsonl")
    assert (tmp_path / "again.jsonl").read_bytes() == (tmp_path / "queries.jsonl").read_bytes()


def test_run_command_gives_run_leakage_its_own_defaults():
    """`lacy leakage run` without its optional flags calls run_leakage with run_leakage's own defaults (the fact_leakage
    rule's script leaves them to the function), and those are the evaluation's settings: 3 shots, 16 new tokens, every
    query, seed 0, 1,000 bootstrap resamples."""
    from command_calls import command_call

    argv = ["leakage", "run", "--model", "m", "--queries", "cloze=q.jsonl", "--out", "o.json"]
    got, defaults = command_call(leakage, "run_leakage", argv)
    assert got == defaults
    assert defaults == {"generations": None, "shots": 3, "max_new_tokens": 16, "max_queries": 0, "seed": 0,
                        "n_resamples": 1000, "batch_size": 16}
