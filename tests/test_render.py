"""Views of generation records (lacy.render): terminal, HTML and PDF, from the records alone."""

from __future__ import annotations

import re

from lacy import render

RECORD = {"entity": "Ada <Lovelace>", "prompt": "Tell me a bio of Ada. Ada is",
          "tokens": [{"text": " an", "source": "slm"}, {"text": " English", "source": "partner"},
                     {"text": " math", "source": "partner"}, {"text": "ematician", "source": "slm"},
                     {"text": " &\nwriter", "source": "partner"}],
          "n_calls": 2, "n_steps": 4, "call_rate": 0.5}


def test_terminal_view_marks_runs_of_partner_tokens():
    assert render.format_marked(RECORD, colour=False) == \
        "Tell me a bio of Ada. Ada is an[ English math]ematician[ &\nwriter]"
    coloured = render.format_marked(RECORD, colour=True)
    assert coloured.count(render.ANSI_PARTNER) == 2 and coloured.count(render.ANSI_RESET) == 2


def test_html_view_escapes_text_and_highlights_partner_runs():
    page = render.render_html([RECORD], title="A & B")
    assert "<title>A &amp; B</title>" in page and "<h2>Ada &lt;Lovelace&gt;</h2>" in page
    assert "an<mark> English math</mark>ematician<mark> &amp;\nwriter</mark>" in page
    assert "2 calls in 4 steps (call rate 50.0%)" in page


def test_pdf_words_keep_their_fragments_and_line_breaks():
    words = render.styled_words(RECORD)
    assert words[-6:] == [[("an", "slm")], [("English", "partner")], [("math", "partner"), ("ematician", "slm")],
                          [("&", "partner")], None, [("writer", "partner")]]


def test_pdf_view_is_written_atomically_with_one_page_per_record(tmp_path):
    render.render_pdf([RECORD, RECORD | {"entity": None, "view_title": "own title"}], tmp_path / "v.pdf", "title")
    data = (tmp_path / "v.pdf").read_bytes()
    assert data.startswith(b"%PDF") and len(re.findall(rb"/Type /Page\b", data)) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["v.pdf"]
