"""Views of generations (§5.1, Figure 4): the prompt and the generated text with the cascade partner's tokens marked.

Each view reads the records ``lacy.cascade`` writes (``{"entity", "prompt", "tokens": [{"text", "source"}], ...}``)
and nothing else, so it draws a cascade and a partner writing alone alike: ``format_marked`` for a terminal (ANSI
colour, else [brackets]), ``render_html`` a page in the manner of Figure 4 (partner tokens highlighted),
``render_pdf`` the same as a PDF with one page per generation (``generation_page``, which ``lacy.figures`` draws
Figure 4 with).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from lacy.io import atomic_output

ANSI_PARTNER, ANSI_RESET = "\033[1;36m", "\033[0m"


def format_marked(record: dict, colour: bool) -> str:
    """Prompt plus generation, runs of partner tokens in ANSI colour or, without colour, in [brackets]."""
    opening, closing = (ANSI_PARTNER, ANSI_RESET) if colour else ("[", "]")
    return record["prompt"] + "".join(_runs(record["tokens"], opening, closing, str))


def render_html(records: list[dict], title: str = "Cascaded generations") -> str:
    """A page in the manner of Figure 4: each generation with the cascade partner's tokens highlighted."""
    body = []
    for r in records:
        text = "".join(_runs(r["tokens"], "<mark>", "</mark>", html.escape))
        body.append(f"<h2>{html.escape(r['entity'] or r['prompt'])}</h2>\n<p><b>{html.escape(r['prompt'])}</b>"
                    f"{text}</p>\n<p class=stats>{r['n_calls']} calls in {r['n_steps']} steps "
                    f"(call rate {r['call_rate']:.1%})</p>")
    style = "body{font-family:serif;max-width:50em;margin:auto} mark{background:#f6c79b} .stats{color:#666}"
    return (f"<!doctype html>\n<html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
            f"<p>Highlighted: tokens from the cascade partner.</p>\n" + "\n".join(body) + "\n</body></html>\n")


def _runs(tokens: list[dict], opening: str, closing: str, escape) -> list[str]:
    out, inside = [], False
    for token in tokens:
        partner = token["source"] == "partner"
        if partner != inside:
            out.append(opening if partner else closing)
            inside = partner
        out.append(escape(token["text"]))
    if inside:
        out.append(closing)
    return out


#: Layout of the PDF view, in points: page width, margin, font size, line height.
PDF_WIDTH, PDF_MARGIN, PDF_FONT_SIZE, PDF_LINE = 540.0, 36.0, 10.0, 15.0
PDF_HIGHLIGHT = "0.82"


def render_pdf(records: list[dict], path: Path, title: str = "Cascaded generations") -> None:
    """The view of ``render_html`` as a PDF, one page per generation: the prompt in italics, the cascade partner's
    tokens on a grey highlight (Figure 4). Words wrap at spaces; the file is written atomically. A record's own
    ``"view_title"`` replaces ``title`` on its page."""
    import matplotlib  # heavy and needed only for PDFs: a terminal or HTML view runs without it
    from matplotlib.backends.backend_pdf import PdfPages

    with matplotlib.rc_context({"pdf.fonttype": 42}), atomic_output(path) as tmp:
        with PdfPages(tmp, metadata={"Title": title, "CreationDate": None}) as pdf:
            for record in records:
                pdf.savefig(generation_page(record, record.get("view_title", title)))


def styled_words(record: dict) -> list[list[tuple[str, str]] | None]:
    """The prompt and tokens as words, each a list of (text, style) fragments (style: prompt, slm or partner);
    None marks a line break. Whitespace separates words and is not drawn."""
    words: list[list[tuple[str, str]] | None] = [[]]
    for text, style in [(record["prompt"], "prompt")] + [(t["text"], t["source"]) for t in record["tokens"]]:
        for part in re.split(r"(\s+)", text):
            if not part:
                continue
            if part.isspace():
                words += [None] * part.count("\n") + [[]]
            else:
                words[-1].append((part, style))
    return [w for w in words if w is None or w]


def generation_page(record: dict, title: str):
    """One generation laid out on a figure of ``PDF_WIDTH`` points, as tall as its text."""
    from matplotlib.figure import Figure  # heavy, PDF views only (render_pdf)
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import Rectangle
    from matplotlib.textpath import TextToPath

    fonts = {style: FontProperties(family="serif", size=PDF_FONT_SIZE, style="italic" if style == "prompt" else
                                   "normal") for style in ("prompt", "slm", "partner")}
    measure = TextToPath()

    def width(text: str, style: str) -> float:
        return measure.get_text_width_height_descent(text, fonts[style], ismath=False)[0]

    space, right = width("x x", "slm") - width("xx", "slm"), PDF_WIDTH - PDF_MARGIN
    placed, x, line = [], PDF_MARGIN, 0  # (x, line, text, style)
    for word in styled_words(record):
        if word is None:
            x, line = PDF_MARGIN, line + 1
            continue
        total = sum(width(text, style) for text, style in word)
        if x > PDF_MARGIN and x + space + total > right:
            x, line = PDF_MARGIN, line + 1
        elif x > PDF_MARGIN:
            x += space
        for text, style in word:
            placed.append((x, line, text, style))
            x += width(text, style)

    head = PDF_MARGIN + 2 * PDF_LINE
    height = head + (line + 1) * PDF_LINE + 2 * PDF_LINE + PDF_MARGIN
    fig = Figure(figsize=(PDF_WIDTH / 72, height / 72), dpi=72)

    def at(x: float, y: float) -> tuple[float, float]:  # points from the top left -> figure fraction
        return x / PDF_WIDTH, 1 - y / height

    fig.text(*at(PDF_MARGIN, PDF_MARGIN), title, fontsize=8, color="0.45", va="baseline", parse_math=False)
    fig.text(*at(PDF_MARGIN, PDF_MARGIN + PDF_LINE + 4), record.get("entity") or record["prompt"], fontsize=13,
             weight="bold", family="serif", va="baseline", parse_math=False)
    for x, line_no, text, style in placed:
        baseline = head + (line_no + 1) * PDF_LINE
        if style == "partner":
            fig.patches.append(Rectangle(at(x, baseline + 0.3 * PDF_FONT_SIZE), width(text, style) / PDF_WIDTH,
                                         PDF_LINE / height * 0.95, transform=fig.transFigure, facecolor=PDF_HIGHLIGHT,
                                         edgecolor="none", zorder=0))
        fig.text(*at(x, baseline), text, fontproperties=fonts[style], va="baseline", parse_math=False, zorder=1)
    stats = (f"{record['n_calls']} calls in {record['n_steps']} steps (call rate {record['call_rate']:.1%}); "
             "grey: tokens from the cascade partner; italics: the prompt")
    fig.text(*at(PDF_MARGIN, head + (line + 2.5) * PDF_LINE), stats, fontsize=8, color="0.4", va="baseline",
             parse_math=False)
    return fig
