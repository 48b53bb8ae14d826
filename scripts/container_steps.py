"""The Dockerfile's steps without Docker: from a clean copy of the tree, in a fresh virtualenv, its RUN
lines, then its CMD, then its HEALTHCHECK against the started server, then a graceful stop.

No Docker engine runs where this project is tested, so the image is never built here. What can go
wrong in it beyond the base image (a requirement that does not install, a step that fails, a start
that needs something only `make` makes, such as the compiled catalogs, or a file .dockerignore
leaves out) goes wrong here the same way: the commands are read from the Dockerfile, not copied.

Where this differs from `docker build` and `docker run`, and why:
- the tree is the files git holds (tracked, and new ones it does not ignore) minus .dockerignore's
  patterns: what a build from a clean clone copies in (so the COPY lines have nothing left to do);
- a virtualenv stands for the image's Python: its bin/ comes first on PATH, so `pip`, `pybabel`,
  `gunicorn` and `python` are its own;
- pip keeps its cache (the Dockerfile's PIP_NO_CACHE_DIR is not applied): a second run installs in
  seconds instead of downloading everything again;
- the user's creation (useradd) is left out: it needs root and would change this machine;
- gunicorn binds a free loopback port instead of 0.0.0.0:8000, and the APP__ settings (the database
  and Redis to use) come from this process's environment, as compose.yaml gives them to the container.

Usage: .venv/bin/python scripts/container_steps.py   (exit status 0 when every step passed)
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from scripts.clean_tree import clean_tree  # noqa: E402
from scripts.processes import free_port, stop_gracefully  # noqa: E402

NOT_APPLIED_ENV = {"PIP_NO_CACHE_DIR"}  # see the module's docstring
SKIPPED_RUN = ("useradd ",)
KNOWN = {"FROM", "ENV", "RUN", "WORKDIR", "COPY", "USER", "EXPOSE", "HEALTHCHECK", "CMD"}


@dataclass
class Dockerfile:
    env: dict[str, str] = field(default_factory=dict)
    run: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    start_period: float = 30.0
    python: str = ""  # the base image's Python version, python:<version>-slim


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    result, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = (pending + stripped).strip()
        pending = ""
        keyword, _, arguments = whole.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
    return result


def parse(path: Path) -> Dockerfile:
    parsed = Dockerfile()
    for keyword, arguments in instructions(path.read_text()):
        if keyword not in KNOWN:  # a step this script would silently not run
            sys.exit(f"[container] {path.name}: {keyword} is not a step this script knows how to run")
        if keyword == "FROM":
            parsed.python = arguments.removeprefix("python:").split("-", 1)[0]
        elif keyword == "ENV":
            for pair in shlex.split(arguments):
                name, _, value = pair.partition("=")
                parsed.env[name] = value
        elif keyword == "RUN":
            parsed.run.append(arguments)
        elif keyword == "CMD":
            parsed.cmd = json.loads(arguments)
        elif keyword == "HEALTHCHECK":
            options, _, command = arguments.partition("CMD ")
            parsed.healthcheck = json.loads(command)
            for option in shlex.split(options):
                if option.startswith("--start-period="):
                    parsed.start_period = float(option.split("=", 1)[1].rstrip("s"))
    if not parsed.cmd or not parsed.healthcheck:
        sys.exit(f"[container] {path.name}: no CMD or no HEALTHCHECK in exec form")
    return parsed


def dockerignore() -> list[str]:
    return [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def step(what: str, command: list[str] | str, cwd: Path, env: dict[str, str]) -> float:
    started = time.monotonic()
    print(f"[container] {what}: {command if isinstance(command, str) else shlex.join(command)}", flush=True)
    shell = isinstance(command, str)
    result = subprocess.run(command, cwd=cwd, env=env, shell=shell, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"[container] {what} failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    seconds = time.monotonic() - started
    print(f"[container]   ok in {seconds:.1f} s", flush=True)
    return seconds


def main() -> None:
    started = time.monotonic()
    dockerfile = parse(ROOT / "Dockerfile")
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if here != dockerfile.python:
        print(f"[container] note: the image runs Python {dockerfile.python}, this virtualenv {here}")
    work = Path(tempfile.mkdtemp(prefix="container-steps-"))
    app_dir, venv = work / "app", work / "venv"
    server = None
    try:
        clean_tree(app_dir, leave_out=dockerignore())
        assert not list(app_dir.glob("translations/*/LC_MESSAGES/*.mo")), "a clean tree has no compiled catalog"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        env = {key: value for key, value in os.environ.items()
               if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_NO_CACHE_DIR")}
        env.update({key: value for key, value in dockerfile.env.items() if key not in NOT_APPLIED_ENV})
        env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv),
                   GUNICORN_BIND=f"127.0.0.1:{free_port()}")
        for command in dockerfile.run:
            if command.startswith(SKIPPED_RUN):
                print(f"[container] skipped (needs root, changes the machine): {command}")
                continue
            step("RUN", command, app_dir, env)
        print(f"[container] CMD: {shlex.join(dockerfile.cmd)} on {env['GUNICORN_BIND']}", flush=True)
        with (work / "server.log").open("wb") as log:
            server = subprocess.Popen(dockerfile.cmd, cwd=app_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + dockerfile.start_period
        while True:
            check = subprocess.run(dockerfile.healthcheck, cwd=app_dir, env=env, capture_output=True, text=True)
            if check.returncode == 0:
                break
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"[container] HEALTHCHECK never passed: {check.stderr.strip()}\n"
                         f"{(work / 'server.log').read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        print(f"[container] HEALTHCHECK: {shlex.join(dockerfile.healthcheck)}: healthy", flush=True)
        server.send_signal(signal.SIGTERM)  # what docker stop sends
        if server.wait(timeout=30) != 0:
            sys.exit(f"[container] gunicorn exited {server.returncode} on SIGTERM")
        print(f"[container] stopped cleanly; every step passed in {time.monotonic() - started:.0f} s")
    finally:
        stop_gracefully(server)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
