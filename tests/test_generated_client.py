"""A typed client generated from the live OpenAPI document carries a client app's whole story."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.live import BIN, Gunicorn

pytestmark = pytest.mark.live
STORY = Path(__file__).with_name("generated_client_story.py")
# Strict for the story; the generator's own code (client.py) is its business, not the document's.
MYPY_CONFIG = "[mypy]\nstrict = True\n\n[mypy-flask_api_client.*]\nignore_errors = True\n"


def run(*command: str, cwd: Path) -> subprocess.CompletedProcess:
    # The generator formats its output with ruff, which it finds on PATH.
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "PYTHONPATH": str(cwd)}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_a_generated_client_type_checks_and_runs_the_story(app, tmp_path):
    with Gunicorn(workers=1) as server:
        (tmp_path / "openapi.json").write_text(requests.get(server.url + "/api/openapi.json", timeout=10).text)
        generated = run(str(BIN / "openapi-python-client"), "generate", "--path", "openapi.json",
                        "--output-path", "flask_api_client", "--meta", "none", cwd=tmp_path)
        assert generated.returncode == 0, generated.stdout + generated.stderr
        assert "Warning" not in generated.stdout, generated.stdout  # nothing of the document left out
        shutil.copy(STORY, tmp_path / "story.py")
        (tmp_path / "mypy.ini").write_text(MYPY_CONFIG)
        checked = run(str(BIN / "mypy"), "--config-file", "mypy.ini", "story.py", cwd=tmp_path)
        assert checked.returncode == 0, checked.stdout
        ran = run(sys.executable, "story.py", server.url, cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr
    order_no, status = ran.stdout.split()
    assert len(order_no) == 20 and status == "CANCELLED"


def test_the_story_would_not_type_check_against_a_document_with_optional_fields(app, tmp_path):
    """The check above can fail: with the response fields optional again (no `required`), mypy refuses
    the story, as it refused every client generated before the document listed them."""
    with Gunicorn(workers=1) as server:
        document = requests.get(server.url + "/api/openapi.json", timeout=10).json()
    for schema in document["components"]["schemas"].values():
        schema.pop("required", None)
    (tmp_path / "openapi.json").write_text(json.dumps(document))
    assert run(str(BIN / "openapi-python-client"), "generate", "--path", "openapi.json", "--output-path",
               "flask_api_client", "--meta", "none", cwd=tmp_path).returncode == 0
    shutil.copy(STORY, tmp_path / "story.py")
    (tmp_path / "mypy.ini").write_text(MYPY_CONFIG)
    checked = run(str(BIN / "mypy"), "--config-file", "mypy.ini", "story.py", cwd=tmp_path)
    assert checked.returncode == 1 and "Unset" in checked.stdout



