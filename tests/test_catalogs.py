"""Translations that cannot go missing: a start from a clean clone compiles the catalogs it lacks,
and one that cannot stops with a line naming the language."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from babel.support import Translations

import catalogs
from scripts.clean_tree import clean_tree
from scripts.processes import free_port, stop_gracefully
from tests.helpers import TEST_DB_URL, TEST_PREFIX, wait_until
from tests.live import BIN, ROOT

PO = Path("translations/zh_Hans/LC_MESSAGES/messages.po")
MO = PO.with_suffix(".mo")
NOT_FOUND_ZH = "请求的资源不存在。"  # msgstr of "The requested resource was not found."


def app_env() -> dict[str, str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("APP__")}
    return {**environ, "APP__APP__ENV": "testing", "APP__APP__LOG_LEVEL": "WARNING",
            "APP__DATABASE__URL": TEST_DB_URL, "APP__REDIS__KEY_PREFIX": TEST_PREFIX}


@pytest.mark.live
def test_a_clean_clone_started_with_gunicorn_without_make_translations_answers_zh_cn_in_chinese(app, tmp_path):
    tree = clean_tree(tmp_path / "clone")
    assert (tree / PO).is_file() and not list(tree.glob("translations/**/*.mo"))  # git holds no .mo
    port = free_port()
    log = (tmp_path / "gunicorn.log").open("wb")
    # As the README's deploy section starts it: the requirements installed, then gunicorn, nothing else.
    server = subprocess.Popen([str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=tree,
                              env={**app_env(), "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": "1"},
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/api/openapi.json", timeout=1).ok,
                   what="gunicorn from the clone up")
        answer = requests.get(f"http://127.0.0.1:{port}/api/no/such/thing", headers={"Accept-Language": "zh-CN"},
                              timeout=5)
    finally:
        stop_gracefully(server)
        log.close()
    assert answer.status_code == 404
    assert answer.json()["msg"] == NOT_FOUND_ZH, (tmp_path / "gunicorn.log").read_text()
    assert (tree / MO).is_file()  # compiled by the start, in the clone: the served code was the clone's


def test_a_po_newer_than_its_mo_is_compiled_again_and_a_fresh_one_left_alone(tmp_path):
    directory = tmp_path / "translations"
    shutil.copytree(ROOT / "translations", directory, ignore=shutil.ignore_patterns("*.mo"))
    assert catalogs.ensure_compiled(directory, ["en", "zh_Hans"]) == ["zh_Hans"]
    assert catalogs.ensure_compiled(directory, ["en", "zh_Hans"]) == []  # fresh: not compiled again
    po = directory / "zh_Hans" / "LC_MESSAGES" / "messages.po"
    po.write_text(po.read_text(encoding="utf-8").replace(NOT_FOUND_ZH, "找不到。"), encoding="utf-8")
    mo_time = (directory / "zh_Hans" / "LC_MESSAGES" / "messages.mo").stat().st_mtime
    os.utime(po, (mo_time + 5, mo_time + 5))  # edited after the last compile
    assert catalogs.ensure_compiled(directory, ["en", "zh_Hans"]) == ["zh_Hans"]
    translations = Translations.load(str(directory), ["zh_Hans"])
    assert translations.gettext("The requested resource was not found.") == "找不到。"
    assert not list(directory.glob("**/*.tmp"))


def test_a_catalog_that_cannot_be_written_stops_the_start_with_one_line_naming_the_language(tmp_path):
    tree = clean_tree(tmp_path / "clone")
    # What a read-only install looks like to the writer; chmod would not stop root, who runs the suite here.
    (tree / MO).mkdir()
    result = subprocess.run([sys.executable, "-c", "from app import create_app; create_app()"], cwd=tree,
                            env=app_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("translations error: zh_Hans: ") and "cannot be written" in line
    assert "Traceback" not in result.stderr


def test_a_configured_language_without_a_catalog_stops_the_start(make_app):
    with pytest.raises(SystemExit, match=r"^translations error: fr: no catalog at .*fr/LC_MESSAGES/messages.po"):
        make_app(app__languages=["en", "zh_Hans", "fr"])
