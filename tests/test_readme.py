"""The README is a newcomer's guide: short, and the way to every page of docs/."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_stays_short_and_links_every_page_of_the_docs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    linked = set(re.findall(r"\(docs/([\w-]+\.md)", readme))
    assert linked == {page.name for page in (ROOT / "docs").glob("*.md")}


def test_every_relative_link_of_the_readme_and_the_docs_names_a_file_that_exists():
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), (page.name, target)
