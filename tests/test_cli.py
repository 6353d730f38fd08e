"""The ``lacy`` command: help for every command, and each stage's command runs in that stage's environment."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

from lacy.cli import COMMANDS

#: The heavy libraries a stage's conda env (envs/*.yaml) does not install.
MISSING_IN_ENV = {
    "corpus": ["torch", "spacy", "transformers"],
    "tokenizer": ["torch", "spacy", "transformers"],
    "llm-judge": ["torch", "spacy", "transformers"],
    "download-dwiki": ["torch", "spacy", "transformers"],
    "annotate": ["torch", "transformers"],
    "train": ["spacy"],
    "validation-losses": ["spacy"],
}


def run_lacy(args: list[str], blocked: list[str] = ()) -> subprocess.CompletedProcess:
    """``python -m lacy ARGS`` with the ``blocked`` top-level packages made unimportable."""
    code = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {list(blocked)!r}:
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        sys.argv = ["lacy", *{args!r}]
        from lacy.cli import main
        main()
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_help_lists_every_command():
    run = run_lacy(["--help"])
    assert run.returncode == 0, run.stderr
    for command in COMMANDS:
        assert command in run.stdout


@pytest.mark.parametrize("command", sorted(MISSING_IN_ENV))
def test_command_needs_only_its_stages_dependencies(command):
    run = run_lacy([command, "--help"], blocked=MISSING_IN_ENV[command])
    assert run.returncode == 0, run.stderr[-2000:]
    assert "usage: lacy" in run.stdout


def test_annotate_words_prints_one_json_object_per_word():
    import json

    run = subprocess.run([sys.executable, "-m", "lacy", "annotate", "words"], input="Marie Curie was born in 1867.",
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    words = [json.loads(line) for line in run.stdout.splitlines()]
    assert [w["text"] for w in words] == ["Marie", "Curie", "was", "born", "in", "1867", "."]
    assert {w["text"]: w["label"] for w in words}["1867"] == "fact"
    assert words[1] == {"text": "Curie", "start": 6, "end": 11, "label": "fact"}


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_memory_is_retained_under_glibc():
    from lacy.cli import retain_freed_memory

    assert retain_freed_memory()


def test_a_workflow_script_logs_a_bad_inputs_message_as_the_command_does(tmp_path):
    """A workflow/scripts/ adapter's bad input (ValueError, FileNotFoundError) reaches the rule's log as its message,
    as `lacy` prints it; the job still fails."""
    log = tmp_path / "rule.log"
    code = textwrap.dedent(f"""
        from lacy.cli import workflow_script
        with workflow_script({str(log)!r}):
            raise ValueError("results/x.json: no field 'score'")
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode != 0
    assert "ERROR lacy: results/x.json: no field 'score'" in log.read_text()
