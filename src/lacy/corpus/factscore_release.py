"""FactScore's release data (Min et al. 2023): the labelled entity list, its Wikipedia dump and its atomic-fact
demonstrations (§5.2, §B).

FactScore distributes them through Google Drive (``factscore/download_data.py`` of its repository; the file ids are
those of its latest revision): ``data.zip`` holds ``data/labeled/prompt_entities.txt`` (the 183 biography subjects
the paper evaluates), ``enwiki-20230401.db`` is the knowledge source (SQLite, table ``documents(title, text)``, an
article's passages joined by a separator) and ``demos.zip`` holds ``demos/demons.json`` (sentence -> atomic facts),
the demonstrations of FActScore's fact extraction, read by ``lacy factscore llm`` beside the database. Downloads
resume from a partial file and are renamed into place only when complete.
"""

from __future__ import annotations

import logging
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm


log = logging.getLogger(__name__)

DRIVE_URL = "https://drive.usercontent.google.com/download?id={id}&export=download&confirm=t"
FILES = {"data.zip": "155exEdKs7R21gZF4G-x54-XN3qswBcPo", "enwiki-20230401.db": "1Qu4JHWjpUKhGPaAW5UHhS5RJ545CVy4I",
         "demos.zip": "1sbW6pkYl6cc9gooD4WLaeoFKcAj3poZu"}
#: What each archive must unpack, relative to the release directory.
UNPACKED = {"data.zip": Path("data") / "labeled" / "prompt_entities.txt", "demos.zip": Path("demos") / "demons.json"}


def download(url: str, dest: Path, chunk: int = 1 << 20) -> Path:
    """Fetch ``url`` to ``dest``, resuming a ``dest.part`` left by an interrupted run (HTTP Range)."""
    dest = Path(dest)
    if dest.exists():
        return dest
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request) as response:
        if have and response.status != 206:  # the server ignored the range: start over
            have = 0
        total = int(response.headers.get("Content-Length", 0)) + have or None
        with open(part, "ab" if have else "wb") as f, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                                           desc=dest.name, mininterval=2) as bar:
            while block := response.read(chunk):
                f.write(block)
                bar.update(len(block))
    part.replace(dest)
    return dest


def unpack(archive: Path, out_dir: Path, member: Path) -> Path:
    """``out_dir / member``, extracting ``archive`` into ``out_dir`` first unless it is there already."""
    target = out_dir / member
    if not target.exists():
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(out_dir)
        if not target.exists():
            raise FileNotFoundError(f"{archive}: no {member} inside")
    return target


def fetch_release(out_dir: Path, url_template: str = DRIVE_URL) -> None:
    """Download and unpack FactScore's entity lists, Wikipedia dump and demonstrations into ``out_dir``."""
    out_dir = Path(out_dir)
    for name, member in UNPACKED.items():
        unpack(download(url_template.format(id=FILES[name]), out_dir / name), out_dir, member)
    download(url_template.format(id=FILES["enwiki-20230401.db"]), out_dir / "enwiki-20230401.db")
    entities = out_dir / UNPACKED["data.zip"]
    n = sum(1 for line in entities.read_text().splitlines() if line.strip())
    log.info("FactScore release in %s: %d labelled entities (the paper uses 183)", out_dir, n)
