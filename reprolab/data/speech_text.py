"""Sentence corpora in Spanish, Catalan, Basque, Galician and English from Debian packages, split by sentence.

Nothing is downloaded at run time: the text comes from Debian packages that ``make assets`` installs
(``apt-get install -y --no-install-recommends libreoffice-help-es libreoffice-help-ca fortunes-es gimp-help-ca libreoffice-help-en-us fortunes libreoffice-help-eu``,
or ``apt-get download`` + ``dpkg-deb -x`` into ``~/.cache/reprolab/debian/<package>/``). Sources (package -> files):

- ``libreoffice-help-<lang>`` (MPL-2.0): HTML help pages under ``/usr/share/libreoffice/help/<lang>/`` - the
  in-distribution source of every language;
- ``fortunes-es``: Spanish sayings in ``/usr/share/games/fortunes/es/`` - Spanish out-of-distribution;
- ``gimp-help-ca``: GIMP's Catalan manual in ``/usr/share/gimp/2.0/help/ca/`` - Catalan out-of-distribution;
- ``libreoffice-help-en-us`` and ``fortunes`` (English sayings in ``/usr/share/games/fortunes/``): English in- and
  out-of-distribution.

Cleaning: HTML tags, scripts and styles removed; text split into sentences at ``. ! ?``; a sentence is kept
when it has ``min_words``..``max_words`` words, mostly letters, and no path/markup residue; duplicates
(after lower-casing) removed; order fixed by sorting then a seeded shuffle, so splits are reproducible.
"""

from __future__ import annotations

import hashlib
import html
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import AssetMissing, ConfigError

SOURCES: dict[tuple[str, str], tuple[str, str, str]] = {
    # (language, source) -> (Debian package, root folder, file glob)
    ("es", "libreoffice"): ("libreoffice-help-es", "/usr/share/libreoffice/help/es", "**/*.html"),
    ("ca", "libreoffice"): ("libreoffice-help-ca", "/usr/share/libreoffice/help/ca", "**/*.html"),
    ("eu", "libreoffice"): ("libreoffice-help-eu", "/usr/share/libreoffice/help/eu", "**/*.html"),
    ("gl", "libreoffice"): ("libreoffice-help-gl", "/usr/share/libreoffice/help/gl", "**/*.html"),
    ("es", "fortunes"): ("fortunes-es", "/usr/share/games/fortunes/es", "*.fortunes"),
    ("ca", "gimp"): ("gimp-help-ca", "/usr/share/gimp/2.0/help/ca", "**/*.html"),
    ("en", "libreoffice"): ("libreoffice-help-en-us", "/usr/share/libreoffice/help/en-US", "**/*.html"),
    ("en", "fortunes"): ("fortunes", "/usr/share/games/fortunes", "*"),  # the English fortune files (no suffix; .dat/.u8 skipped)
}
IN_DOMAIN = {"es": "libreoffice", "ca": "libreoffice", "eu": "libreoffice", "gl": "libreoffice", "en": "libreoffice"}
OUT_OF_DOMAIN = {"es": "fortunes", "ca": "gimp", "en": "fortunes"}
DEBIAN_PACKAGES = sorted({v[0] for v in SOURCES.values()})

_INDEX_SUFFIXES = frozenset((".dat", ".u8"))  # fortune(6)'s index files and UTF-8 links beside the text files
_TAGS = re.compile(r"<(script|style)[^>]*>.*?</\1>|<[^>]+>", re.S | re.I)
_SPLIT = re.compile(r"(?<=[.!?])\s+")
# English left untranslated in the help pages: a sentence with 2+ of these words is dropped (not for "en")
_ENGLISH = frozenset(("the of and is to in that this with for are be you can by on from which an it as not each has its own "
                      "your will when if or all have was were use used click select file name button text page").split())
_BAD = re.compile(r"[/\\_={}<>|@#$%^*~\[\]]|\.\w{2,4}\b|\d{3,}")


def extracted_root() -> Path:
    """Where ``apt-get download <pkg> && dpkg-deb -x <pkg>.deb <here>/<pkg>`` puts packages without installing them."""
    return Path(os.environ.get("REPROLAB_CACHE", Path.home() / ".cache" / "reprolab")) / "debian"


def source_files(language: str, source: str) -> list[Path]:
    """The files of one source: the installed package's folder, else the same folder under
    ``extracted_root()/<package>/`` (a ``dpkg-deb -x`` extraction); or AssetMissing naming the package."""
    if (language, source) not in SOURCES:
        raise ConfigError("(language, source)", (language, source), f"one of {sorted(SOURCES)}")
    package, root, glob = SOURCES[(language, source)]
    files: list[Path] = []
    for base in (Path(root), extracted_root() / package / root.lstrip("/")):
        if base.is_dir():
            files = sorted(f for f in base.glob(glob) if f.is_file() and f.suffix not in _INDEX_SUFFIXES)
            if files:
                break
    if not files:
        raise AssetMissing(f"debian:{package}", fix=f"sudo apt-get install -y {package}  (or: make assets)")
    return files


def _clean_sentences(text: str, min_words: int, max_words: int, language: str = "") -> list[str]:
    out = []
    for para in re.split(r"\n\s*\n|\n%\n", text):
        para = re.sub(r"\s+", " ", para).strip()
        for s in _SPLIT.split(para):
            s = s.strip(" -\u2013\u2014\"'\u00ab\u00bb")
            words = s.split()
            if not (min_words <= len(words) <= max_words) or _BAD.search(s):
                continue
            if language != "en" and sum(w.lower() in _ENGLISH for w in words) >= 2:
                continue
            letters = sum(c.isalpha() for c in s)
            if letters < 0.75 * len(s.replace(" ", "")) or not s[0].isupper() or s[-1] not in ".!?":
                continue
            out.append(s)
    return out


def sentences(language: str, source: str, min_words: int = 5, max_words: int = 40) -> list[str]:
    """Clean, de-duplicated sentences of one source, in a fixed order (sorted, then shuffled with seed 0)."""
    seen: set[str] = set()
    out: list[str] = []
    for f in source_files(language, source):
        raw = f.read_text(encoding="utf-8", errors="replace")
        if f.suffix == ".html":
            raw = html.unescape(_TAGS.sub("\n\n", raw))
        else:  # fortune files: entries separated by a line with '%'
            raw = raw.replace("\n%\n", "\n\n")
        for s in _clean_sentences(raw, min_words, max_words, language):
            key = s.lower()
            if key not in seen:
                seen.add(key)
                out.append(s)
    out.sort()
    random.Random(0).shuffle(out)
    return out


def documents(language: str, source: str, min_words: int = 5, max_words: int = 40, min_sentences: int = 2) -> list[list[str]]:
    """The source as documents: one per file (a help page), its clean sentences in page order (the
    order :func:`sentences` shuffles away), for tasks that need context such as story-cloze items.
    A sentence seen earlier (in sorted file order, lower-cased) is dropped, so boilerplate repeated
    across pages appears once; documents with fewer than ``min_sentences`` sentences are dropped."""
    if min_sentences < 1:
        raise ConfigError("min_sentences", min_sentences, "a positive integer")
    seen: set[str] = set()
    out: list[list[str]] = []
    for f in source_files(language, source):
        raw = f.read_text(encoding="utf-8", errors="replace")
        raw = html.unescape(_TAGS.sub("\n\n", raw)) if f.suffix == ".html" else raw.replace("\n%\n", "\n\n")
        doc = []
        for s in _clean_sentences(raw, min_words, max_words, language):
            if s.lower() not in seen:
                seen.add(s.lower())
                doc.append(s)
        if len(doc) >= min_sentences:
            out.append(doc)
    return out


@dataclass(frozen=True)
class Splits:
    """Disjoint sentence splits of one source: LM training, dev (tuning) and test."""

    train: list[str]
    dev: list[str]
    test: list[str]


def split_sentences(items: list[str], dev: int, test: int) -> Splits:
    """Hold out ``dev`` and ``test`` sentences by a hash of the lower-cased sentence (stable when the corpus
    grows), the rest is LM training text; a sentence is in exactly one split (no overlap)."""
    if dev < 0 or test < 0 or dev + test >= len(items):
        raise ConfigError("dev + test", dev + test, f"fewer than the {len(items)} sentences available")
    keyed = sorted(items, key=lambda s: hashlib.sha1(s.lower().encode()).hexdigest())
    return Splits(train=keyed[dev + test :], dev=keyed[:dev], test=keyed[dev : dev + test])


def speech_sentences(items: list[str], min_words: int = 5, max_words: int = 12) -> list[str]:
    """Sentences short enough to synthesise (5-12 words, a few seconds of speech)."""
    return [s for s in items if min_words <= len(s.split()) <= max_words]
