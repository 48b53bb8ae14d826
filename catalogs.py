"""The compiled translation catalogs (.mo), made at start from the .po files git holds.

The .mo files are build output, ignored by git. An install that never ran `make translations`
(pip install -r requirements.txt, then gunicorn) would find none, and flask-babel answers every
language without one in English, silently. So create_app compiles each configured language's
catalog, with Babel's own reader and writer, when its .mo is missing or older than its .po; where it
cannot write one (a read-only install), it refuses to start with one line naming the language.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

DOMAIN = "messages"


class CatalogError(SystemExit):
    """A language without a usable catalog: stops the start with one message and no traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(f"translations error: {message}")


def is_source_language(language: str) -> bool:
    """The msgids are English: English needs no catalog."""
    return language.split("_")[0].lower() == "en"


def ensure_compiled(directory: Path, languages: Iterable[str]) -> list[str]:
    """Compile the catalog of every language that needs one and lacks a fresh .mo; returns those compiled."""
    compiled = []
    for language in languages:
        if is_source_language(language):
            continue
        po = directory / language / "LC_MESSAGES" / f"{DOMAIN}.po"
        mo = po.with_suffix(".mo")
        if not po.is_file():
            raise CatalogError(f"{language}: no catalog at {po} (app.languages lists it)")
        if mo.is_file() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        try:
            _compile(po, mo, language)
        except OSError as exc:
            raise CatalogError(f"{language}: {mo} is missing or older than its .po and cannot be written here "
                               f"({exc.strerror or exc.__class__.__name__}); run `pybabel compile -d "
                               f"translations` where the code is installed") from None
        compiled.append(language)
    return compiled


def _compile(po: Path, mo: Path, language: str) -> None:
    """What `pybabel compile` does for one catalog (fuzzy entries left out), written whole or not at all:
    workers or commands starting side by side may compile at the same moment."""
    with po.open("rb") as source:
        catalog = read_po(source, locale=language)
    partial = mo.with_name(f".{mo.name}.{os.getpid()}.tmp")
    try:
        with partial.open("wb") as target:
            write_mo(target, catalog)
        os.replace(partial, mo)
    finally:
        partial.unlink(missing_ok=True)
