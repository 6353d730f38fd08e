"""Accuracy vs acceptability (§3, §A.1): judge-answer parsing, retries, resume, recording, binning."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import torch

from lacy import acceptability as acc
from lacy.batches import TokenWindows
from lacy.losses import token_log_probs
from lacy.model import build_model
from lacy.tokenizer import LacyTokenizer


class FakeLLM:
    """Answers from a list (cycled per call) and records every prompt; ``choose`` answers the same way."""

    name = "fake:judge"

    def __init__(self, answers):
        self.answers = list(answers)
        self.prompts: list[str] = []
        self.options: list[tuple[str, ...]] = []

    def complete(self, prompt, *, system=None, max_tokens=512):
        self.prompts.append(prompt)
        return self.answers[(len(self.prompts) - 1) % len(self.answers)]

    def choose(self, prompt, options, *, system=None):
        self.options.append(tuple(options))
        return self.complete(prompt)


def position(i: int, correct: bool = False, loss: float = 1.0, cls: str = "fact") -> dict:
    return {"id": f"0:{i}", "row": 0, "position": i, "context": "Alan Turing was an English", "greedy": " linguist",
            "truth": " mathematician" if not correct else " linguist", "correct": correct, "loss": loss,
            "class": cls}


@pytest.mark.parametrize("answer, label", [
    ("The meaning changes.\n**output**: 0", 0),
    ("Compatible statements.\n**output**: 1", 1),
    ("output: 1", 1),
    ("Output = **0**", 0),
    ("**output**: '1'", 1),
    ("**Output:** 1", 1),
    ("1", 1),
    (" 0.\n", 0),
    ("Format is '**output**: 0'. ... **output**: 1", 1),  # the last label wins
])
def test_parse_judgement(answer, label):
    assert acc.parse_judgement(answer) == label


@pytest.mark.parametrize("answer", ["", None, "valid", "output: 2", "output: 0.5", "output: 10", "yes, 1 or 0"])
def test_parse_judgement_malformed(answer):
    assert acc.parse_judgement(answer) is None


def test_prompt_is_the_papers_with_slots_filled():
    prompt = acc.judge_prompt("Line one\nEntre {} Campos", " metro", " Yellow")
    assert prompt.startswith("# Task\nYou must evaluate whether a proposed next token")
    assert "## Example 3: Valid Continuation" in prompt and "Mozart was born in 1756" in prompt
    assert prompt.endswith("**starting_text**: 'Line one\\nEntre {} Campos'\n**proposed_next_token**: ' metro'\n"
                           "**reference_next_token**: ' Yellow'\n**explanation**:")


def test_exact_matches_need_no_judge_and_retry_once_then_unparsable(tmp_path):
    llm = FakeLLM(["I cannot decide."])  # never parsable
    out = acc.judge_position(llm, position(0, correct=True))
    assert out["acceptable"] == 1 and out["judge"] == "exact" and llm.prompts == []
    out = acc.judge_position(llm, position(1))
    assert out["acceptable"] is None and out["judge"] == "unparsable" and out["attempts"] == 2
    assert len(llm.prompts) == 2 and llm.prompts[1] == llm.prompts[0] + acc.FORMAT_REMINDER

    retried = FakeLLM(["hmm", "**output**: 0"])  # fixed by the reminder
    out = acc.judge_position(retried, position(2))
    assert out["acceptable"] == 0 and out["judge"] == "llm" and out["attempts"] == 2

    summary = acc.summarise([acc.judge_position(FakeLLM(["x"]), position(3)),
                             acc.judge_position(FakeLLM(["**output**: 1"]), position(4)),
                             acc.judge_position(FakeLLM(["x"]), position(5, correct=True))])
    assert summary["unparsable"] == 1 and summary["llm"] == 1 and summary["exact"] == 1
    assert summary["acceptability"] == 1.0  # the unparsable one is not scored


def test_next_token_scoring_asks_for_the_label_at_once():
    llm = FakeLLM([" 0", " 1"])
    out = acc.judge_position(llm, position(0), scoring="next_token")
    assert out["acceptable"] == 0 and out["judge"] == "llm" and out["attempts"] == 1
    assert llm.options == [(" 0", " 1")]
    prompt = llm.prompts[0]
    assert prompt == acc.label_prompt("Alan Turing was an English", " linguist", " mathematician")
    assert prompt.endswith("**reference_next_token**: ' mathematician'\n**output**:")
    assert "**explanation**: The proposed_next_token does not match" in prompt  # the examples keep theirs
    assert acc.judge_position(llm, position(1), scoring="next_token")["acceptable"] == 1
    assert acc.judge_position(llm, position(2, correct=True), scoring="next_token")["judge"] == "exact"


def test_a_capped_sample_is_unbiased_and_the_rest_is_unsampled(tmp_path):
    rng = np.random.default_rng(1)
    positions = [position(i, correct=bool(rng.random() < 0.3)) for i in range(2000)]
    chosen = acc.judged_sample(positions, 300, seed=0)
    sample = [p for p in positions if p["id"] in chosen]
    assert sum(not p["correct"] for p in sample) == 300
    exact_share = np.mean([p["correct"] for p in positions])
    assert abs(np.mean([p["correct"] for p in sample]) - exact_share) < 0.05  # exact ones sampled alike
    assert chosen == acc.judged_sample(positions, 300, seed=0)
    assert len(acc.judged_sample(positions, None)) == 2000

    llm = FakeLLM(["**output**: 0"])
    summary = acc.judge_positions(llm, positions[:40], tmp_path / "j.jsonl", max_judged=5, judged_by="stand-in")
    records = [json.loads(line) for line in (tmp_path / "j.jsonl").read_text().splitlines()]
    assert len(llm.prompts) == 5 and summary["llm"] == 5
    assert summary["unsampled"] == 40 - summary["llm"] - summary["exact"]
    assert all(r["acceptable"] is None for r in records if r["judge"] == "unsampled")
    assert {r["judged_by"] for r in records} == {"stand-in"}
    with pytest.raises(ValueError, match="judged by stand-in, not other"):
        acc.judge_positions(llm, positions[:40], tmp_path / "j.jsonl", judged_by="other")


def test_judge_command_judges_several_checkpoints_with_one_named_judge(tmp_path, monkeypatch):
    import lacy.llm

    llms = []
    monkeypatch.setattr(lacy.llm, "llm_from_args", lambda args: llms.append(FakeLLM([" 1"])) or llms[-1])
    argv = ["acceptability", "judge", "--backend", "transformers", "--llm", "gemma3-270m-gguf", "--cache-dir",
            str(tmp_path / "cache"), "--judge-name", "local stand-in", "--scoring", "next_token"]
    for name in ("early", "final"):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(position(i)) + "\n" for i in range(3)))
        argv += ["--positions", str(tmp_path / f"{name}.jsonl"), "--out", str(tmp_path / f"{name}.judged.jsonl"),
                 "--summary", str(tmp_path / f"{name}.summary.json")]
    parser = argparse.ArgumentParser()
    acc.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    args.func(args)
    assert len(llms) == 1 and len(llms[0].prompts) == 6  # one judge for both files
    for name in ("early", "final"):
        summary = json.loads((tmp_path / f"{name}.summary.json").read_text())
        assert summary["judge"] == "local stand-in" and summary["scoring"] == "next_token"
        assert summary["acceptability"] == 1.0 and summary["llm"] == 3
    with pytest.raises(ValueError, match=r"one out file \(and one summary file, if any\) per positions file"):
        args.func(parser.parse_args(argv[:-2]))


def test_judge_resumes_and_skips_judged_positions(tmp_path):
    out = tmp_path / "judged.jsonl"
    positions = [position(i) for i in range(6)]
    first = FakeLLM(["**output**: 1"])
    acc.judge_positions(first, positions[:3], out, workers=2)
    assert len(first.prompts) == 3
    with open(out, "a") as f:  # a crash mid-write leaves a truncated line
        f.write('{"id": "0:3", "acce')
    second = FakeLLM(["**output**: 0"])
    summary = acc.judge_positions(second, positions, out, workers=2)
    assert len(second.prompts) == 3  # only 0:3, 0:4, 0:5
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == [p["id"] for p in positions]
    assert [r["acceptable"] for r in records] == [1, 1, 1, 0, 0, 0]
    assert summary["positions"] == 6 and summary["acceptability"] == 0.5
    third = FakeLLM(["**output**: 0"])
    acc.judge_positions(third, positions, out)
    assert third.prompts == []


class CallHeavy(torch.nn.Module):
    """The tiny model with a huge <CALL> logit: greedy must still be a text token."""

    def __init__(self, model, call_id):
        super().__init__()
        self.model, self.call_id = model, call_id

    def forward(self, x):
        out = self.model(x)
        out.logits[..., self.call_id] = 1e4
        return out


def test_record_fields_on_a_tiny_model(data, tmp_path):
    annotation, _, tokenizer_dir = data
    tokenizer = LacyTokenizer.load(tokenizer_dir)
    torch.manual_seed(0)
    model = build_model("test-tiny", tokenizer.vocab_size, 32, tokenizer.call_id).eval()
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    windows = TokenWindows.from_directory(annotation, "validation", 32, seed=0)
    batch = next(windows.sequential(2, max_batches=1))
    records = acc.record_positions(CallHeavy(model, tokenizer.call_id), batch, tokenizer, context_tokens=8)
    assert len(records) == int(batch.valid.sum())
    with torch.no_grad():
        expected = -token_log_probs(model(batch.x).logits, batch.y, tokenizer.call_id).true_without_call
    for r in records:
        b, t = r["row"], r["position"]
        assert r["greedy_id"] != tokenizer.call_id
        assert r["truth_id"] == int(batch.y[b, t])
        assert r["correct"] == (r["greedy_id"] == r["truth_id"])
        assert math.isclose(r["loss"], float(expected[b, t]), rel_tol=1e-4, abs_tol=1e-4)
        assert r["class"] == ("fact" if batch.fact[b, t] else "non-fact")
        assert 1 <= r["context_tokens"] <= 8 and isinstance(r["context"], str)
    assert {r["class"] for r in records} == {"fact", "non-fact"}
    assert len(acc.record_positions(model, batch, tokenizer, context_tokens=8, max_positions=5)) == 5

    # the subcommand end to end on the saved model (registered directly: lacy.cli wires it separately)
    (tmp_path / "model" / "train.json").write_text(json.dumps({"steps": 27, "tokens": 55296}))
    parser = argparse.ArgumentParser()
    acc.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["acceptability", "record", "--model", str(tmp_path / "model"), "--annotation",
                              str(annotation), "--out", str(tmp_path / "pos.jsonl"), "--batch-size", "2",
                              "--max-positions", "10", "--seed", "0", "--context-tokens", "8"])
    args.func(args)
    lines = (tmp_path / "pos.jsonl").read_text().splitlines()
    assert len(lines) == 10 and {"greedy", "truth", "loss", "class", "context"} <= set(json.loads(lines[0]))
    assert json.loads(lines[0])["checkpoint_step"] == 27
    assert acc.checkpoint_label("early", [json.loads(lines[0])]) == "early (step 27, 55.3k tokens)"


def test_quantile_bins():
    losses = np.arange(100, dtype=float)
    bins, edges = acc.quantile_bins(losses, 10)
    assert np.array_equal(np.bincount(bins, minlength=10), np.full(10, 10))
    assert bins[0] == 0 and bins[9] == 0 and bins[10] == 1 and bins[99] == 9
    assert edges[0] == 0 and edges[-1] == 99
    bins, _ = acc.quantile_bins(np.random.default_rng(0).exponential(size=1000), 4)
    assert np.array_equal(np.bincount(bins, minlength=4), np.full(4, 250))


def test_binned_rows_and_csv(tmp_path):
    records = []
    for i in range(20):  # losses 0..19, two bins: 0..9 and 10..19
        cls = "fact" if i % 2 else "non-fact"
        r = position(i, correct=i < 5, loss=float(i), cls=cls)
        r.update(acceptable=1 if (i < 5 or cls == "non-fact") else 0, judge="exact" if i < 5 else "llm",
                 judged_by="stand-in judge")
        records.append(r)
    records[19].update(acceptable=None, judge="unparsable")
    rows = {(r["class"], r["bin"]): r for r in acc.binned_rows("final", records, 2)}
    low_fact = rows[("fact", 0)]  # i = 1, 3, 5, 7, 9: correct 1, 3
    assert low_fact["n"] == 5 and low_fact["accuracy"] == pytest.approx(0.4)
    assert low_fact["acceptability"] == pytest.approx(0.4) and low_fact["loss_mean"] == 5.0
    high_fact = rows[("fact", 1)]  # 11, 13, 15, 17 scored 0; 19 unparsable
    assert high_fact["n"] == 5 and high_fact["n_scored"] == 4 and high_fact["n_unparsable"] == 1
    assert high_fact["acceptability"] == 0.0 and high_fact["accuracy"] == 0.0
    assert rows[("non-fact", 1)]["acceptability"] == 1.0 and rows[("non-fact", 1)]["accuracy"] == 0.0

    path = tmp_path / "judged.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "fig.pdf"
    acc.plot([("10B", path), ("50B", path)], out, n_bins=2, title="Figure 8")
    assert out.exists() and out.with_suffix(".png").exists()
    lines = out.with_suffix(".csv").read_text().splitlines()
    assert len(lines) == 1 + 2 * 2 * 2 and lines[0].startswith("label,judged_by,class,bin,")
    assert all(",stand-in judge," in line for line in lines[1:])


# ---- §A.1's three judging examples --------------------------------------------------------------------------------

#: The three examples of §A.1's "Prompt for Judging Acceptability", copied from the paper (only the PDF page
#: break inside Example 2 removed); ``\n`` inside the quotes is the two characters the paper prints.
PAPER_EXAMPLES = (
    r"""## Example 1: Invalid Continuation
**starting_text**: 'Wolfgang Amadeus Mozart\n\n (27 January 17'
**proposed_next_token**: '6'
**reference_next_token**: '5'
**explanation**: The proposed_next_token does not match reference_next_token.
  Completing with '6' would create 'Wolfgang Amadeus Mozart (27 January
  176...', while the reference creates '...175...'. Mozart was born in 1756,
  and the reference token '5' indicates the correct continuation is 1756 (
  starting with 175). The digit '6' creates a factual conflict because it
  would lead to an incorrect year.
**output**: 0""",

    r"""## Example 2: Invalid Continuation
**starting_text**: 'Alan Turing was an English '
**proposed_next_token**: 'linguist'
**reference_next_token**: 'mathematician'
**explanation**: The proposed_next_token does not match reference_next_token.
    Completing with 'linguist' would create 'Alan Turing was an English
    linguist', while the reference creates 'Alan Turing was an English
    mathematician'. This creates a significant difference in meaning. Hence
    the continuation is invalid.
**output**: 0""",

    r"""## Example 3: Valid Continuation
**starting_text**: 'Entre Campos (Lisbon Metro)\n\nEntre Campos station is
    part of the '
**proposed_next_token**: 'metro'
**reference_next_token**: 'Yellow'
**explanation**: The proposed_next_token does not match reference_next_token,
    but it does not create a factual conflict. The reference would create 'Entre
    Campos station is part of the Yellow [line]', while the proposal
    creates 'Entre Campos station is part of the metro [network/system]'. Both
    statements have similar meaning and are factually true and compatible -
    the station IS part of the Yellow line AND part of the metro system. These
    are not contradictory facts.
**output**: 1""",
)
PAPER_LABELS = (0, 0, 1)  # "Invalid", "Invalid", "Valid" continuation


def test_prompt_holds_the_three_judging_examples_of_a1_verbatim():
    """§A.1: the prompt sent to the judge contains the paper's three examples verbatim, in order, between
    "# Examples" and "# Your Task", whatever the query filled into its slots."""
    prompt = acc.judge_prompt("Errol Flynn was an", " American", " Australian")
    at = [prompt.index(example) for example in PAPER_EXAMPLES]
    assert prompt.index("# Examples") < at[0] < at[1] < at[2] < prompt.index("# Your Task")
    assert prompt.count("## Example") == 3


@pytest.mark.parametrize("k", range(3))
def test_each_example_answer_parses_to_its_label(k):
    """A judge that answers like the examples (an explanation, then ``**output**: 0/1``) gets the example's label:
    Mozart's '6' for '5' and Turing's 'linguist' for 'mathematician' are invalid (0), 'metro' for 'Yellow' valid
    (1). The prompt ends with ``**explanation**:``, so the answer may start with or without that key."""
    answer = PAPER_EXAMPLES[k][PAPER_EXAMPLES[k].index("**explanation**:"):]
    assert acc.parse_judgement(answer) == PAPER_LABELS[k]
    assert acc.parse_judgement(answer.removeprefix("**explanation**:")) == PAPER_LABELS[k]


@pytest.mark.parametrize("k, starting_text, proposed, reference", [
    (0, "Wolfgang Amadeus Mozart\n\n (27 January 17", "6", "5"),
    (1, "Alan Turing was an English ", "linguist", "mathematician"),
])
def test_an_examples_query_renders_like_the_example(k, starting_text, proposed, reference):
    """Filled with an example's own inputs (real newlines in the text), the query section reads exactly like the
    example's first three lines: texts in single quotes, newlines written as \\n. (Example 3's starting text is
    wrapped over two lines by the PDF, so only Examples 1 and 2 can be compared line for line.)"""
    query = "\n".join(PAPER_EXAMPLES[k].splitlines()[1:4]) + "\n**explanation**:"
    assert acc.judge_prompt(starting_text, proposed, reference).endswith("# Your Task\n" + query)


def test_judge_checkpoints_with_the_llm_a_config_spec_makes(tmp_path):
    """The acceptability_judge rule's adapter: make_llm(cache_dir=..., **spec), then judge_checkpoints over both
    checkpoints under the configured name, scoring, workers and sample; a rerun resumes with nothing to judge."""
    from test_llm import FakeChatServer

    from lacy.llm import make_llm

    positions, judged, summaries = [], [], []
    for name in ("early", "final"):
        positions.append(tmp_path / f"{name}.jsonl")
        positions[-1].write_text("".join(json.dumps(dict(position(i, correct=i == 0), context=f"{name} {i}")) + "\n"
                                         for i in range(5)))
        judged.append(tmp_path / f"{name}.judged.jsonl")
        summaries.append(tmp_path / f"{name}.summary.json")
    with FakeChatServer(lambda messages: (200, "The token fits.\n**output**: 1")) as server:
        spec = {"backend": "openai", "model": "test-judge", "base_url": server.base_url, "api_key_env": None}
        results = acc.judge_checkpoints(make_llm(cache_dir=tmp_path / "cache", **spec), positions, judged, summaries,
                                        judge_name="Test Judge", scoring="generated", workers=2, max_judged=2, seed=0)
    assert len(server.requests) == 4  # two sampled non-exact positions per checkpoint
    for path, result in zip(summaries, results):
        summary = json.loads(path.read_text())
        assert summary == result
        assert (summary["judge"], summary["judge_llm"], summary["scoring"]) == ("Test Judge", "openai:test-judge",
                                                                                "generated")
        assert summary["llm"] == 2 and summary["exact"] + summary["unsampled"] == 3 and summary["acceptability"] == 1
    idle = FakeLLM([])
    again = acc.judge_checkpoints(idle, positions, judged, judge_name="Test Judge", max_judged=2)
    assert idle.prompts == [] and [r["llm"] for r in again] == [2, 2]
    with pytest.raises(ValueError, match=r"one out file \(and one summary file, if any\) per positions file"):
        acc.judge_checkpoints(FakeLLM([]), positions, judged[:1])


def test_plot_writes_the_figure_the_acceptability_figure_rule_names(tmp_path):
    records = [dict(position(i, correct=i % 3 == 0, loss=0.1 * i, cls="fact" if i % 2 else "nonfact"),
                    acceptable=1, judge="llm", judged_by="Test Judge") for i in range(12)]
    (tmp_path / "judged.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    rows = acc.plot([("baseline seed 0, final checkpoint", tmp_path / "judged.jsonl")], tmp_path / "fig3.pdf", 2,
                    "Figure 3: a title")
    assert {r["label"] for r in rows} == {"baseline seed 0, final checkpoint"} and len(rows) == 2 * 2
    assert all((tmp_path / f"fig3.{ext}").stat().st_size > 0 for ext in ("pdf", "png", "csv"))


def test_judge_command_gives_judge_checkpoints_its_own_defaults(monkeypatch):
    """`lacy acceptability judge` without its optional flags calls judge_checkpoints with its own defaults (the
    acceptability_judge rule's script passes the config's): the paper's generated judgement, every position judged,
    4 workers, seed 0, the LLM's own name."""
    import lacy.llm
    from command_calls import command_call

    monkeypatch.setattr(lacy.llm, "llm_from_args", lambda args: FakeLLM([]))
    got, defaults = command_call(acc, "judge_checkpoints",
                                 ["acceptability", "judge", "--positions", "p.jsonl", "--out", "j.jsonl", "--backend",
                                  "openai", "--llm", "judge", "--cache-dir", "c"])
    assert got == defaults
    assert defaults == {"summaries": None, "judge_name": None, "scoring": "generated", "workers": 4, "max_judged": 0,
                        "seed": 0}
