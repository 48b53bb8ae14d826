"""A copy of the tree as a clean clone has it: the files git holds, nothing a build or a run left behind.

For the tests and scripts that must start the service the way a fresh install does (no .venv, no
compiled catalogs, no caches): tests/test_catalogs.py, scripts/container_steps.py.
"""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def clean_tree(dest: Path, leave_out: Iterable[str] = ()) -> Path:
    """Copy the files git holds (tracked, and new ones it does not ignore), as a clone of this tree
    would have them once committed, to dest; without those leave_out's patterns match
    (.dockerignore's syntax, roughly: a pattern matches a path or a folder above it)."""
    patterns = list(leave_out)
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in listed:
        source = ROOT / name
        if not name or not source.is_file() or source.is_symlink() or _left_out(name, patterns):
            continue  # a file deleted but still in the index, or one left out
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest / name)
    return dest


def _left_out(path: str, patterns: list[str]) -> bool:
    parts = path.split("/")
    candidates = ["/".join(parts[:end]) for end in range(1, len(parts) + 1)]
    for pattern in patterns:
        anywhere = pattern.removeprefix("**/")  # **/x: x in any folder
        for candidate in candidates:
            if fnmatch.fnmatchcase(candidate, pattern):
                return True
            if anywhere != pattern and fnmatch.fnmatchcase(candidate.rsplit("/", 1)[-1], anywhere):
                return True
    return False
