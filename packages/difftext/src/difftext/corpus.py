"""The text corpus: documents that install offline, split into train / validation / test by document.

By default the Python standard library's own documentation text
(``pydoc_data.topics``: 79 reference topics, ~465 kB of English); any folder
of ``.txt`` / ``.md`` files by option. A document goes wholly to one split,
chosen by a hash of its name (about 80 / 10 / 10 %), so no test text is ever
trained on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from diffcore.errors import DataError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Document:
    name: str
    text: str


def load_documents(folder: str | Path | None = None) -> list[Document]:
    """The corpus's documents, sorted by name: ``pydoc_data`` topics, or the text files under ``folder``."""
    if folder is None:
        from pydoc_data.topics import topics

        return [Document(k, topics[k]) for k in sorted(topics) if topics[k].strip()]
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder of .txt / .md files")
    docs = []
    for f in sorted(p for p in root.rglob("*") if p.suffix.lower() in (".txt", ".md") and p.is_file()):
        text = f.read_text(encoding="utf-8", errors="replace")
        if text.strip():
            docs.append(Document(str(f.relative_to(root)), text))
    if not docs:
        raise DataError(f"no non-empty .txt or .md files under {root}")
    return docs


def split_of(name: str) -> str:
    """The split a document belongs to, from a hash of its name: 0 -> test, 1 -> val, else train (mod 10)."""
    h = int(hashlib.sha256(name.encode()).hexdigest(), 16) % 10
    return "test" if h == 0 else "val" if h == 1 else "train"


def split_documents(docs: list[Document]) -> dict[str, list[Document]]:
    out: dict[str, list[Document]] = {s: [] for s in SPLITS}
    for d in docs:
        out[split_of(d.name)].append(d)
    empty = [s for s in SPLITS if not out[s]]
    if empty:
        raise DataError(f"the corpus has {len(docs)} documents and splits {empty} came out empty; add more documents")
    return out
