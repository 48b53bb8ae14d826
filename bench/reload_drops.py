"""Does a reload (SIGHUP to the gunicorn master) drop a request? Prints wrk's errors per run.

Serves the service as `make bench` does (gunicorn.conf.py, its own database and key prefix, the rate
limits out of the way), signs a user in, then RELOAD_RUNS times (default 20): wrk -t2 -c32 -d20s
against GET /api/client/auth/me on kept-alive connections, with a SIGHUP to the master at 5, 10
and 15 s. A figure, not a test (tests/test_gunicorn.py holds the short version):

    .venv/bin/python bench/reload_drops.py
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import Server, bench_settings, prepare_storage  # noqa: E402

SECONDS, HUPS_AT = 20, (5, 10, 15)
ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
REQUESTS = re.compile(r"(\d+) requests in")


def one_run(server: Server, token: str) -> dict[str, int]:
    timers = [threading.Timer(at, server.process.send_signal, (signal.SIGHUP,)) for at in HUPS_AT]
    for timer in timers:
        timer.start()
    output = subprocess.run(["wrk", "-t2", "-c32", f"-d{SECONDS}s", "-H", f"Authorization: Bearer {token}",
                             server.url + "/api/client/auth/me"], capture_output=True, text=True, check=True).stdout
    for timer in timers:
        timer.join()
    errors = ERRORS.search(output)
    kinds = ("connect", "read", "write", "timeout")
    counts = dict(zip(kinds, map(int, errors.groups()), strict=True)) if errors else {}
    non_2xx = NON_2XX.search(output)
    counts["non_2xx"] = int(non_2xx.group(1)) if non_2xx else 0
    counts["requests"] = int(REQUESTS.search(output).group(1))
    return counts


def main() -> None:
    runs = int(os.environ.get("RELOAD_RUNS", "20"))
    env = bench_settings()
    prepare_storage(env)
    server = Server("reload-drops", "wsgi:app", env, "/api/system/health").start()
    try:
        auth = server.url + "/api/client/auth"
        body = {"email": "reload@example.com", "password": "correct horse battery"}
        token = requests.post(auth + "/register", json=body, timeout=10).json()["data"]["access_token"]
        total = {}
        for run in range(1, runs + 1):
            counts = one_run(server, token)
            failed = sum(value for key, value in counts.items() if key != "requests")
            print(f"run {run:2}: {counts['requests']:7} requests, failed {failed}  {counts}", flush=True)
            total = {key: total.get(key, 0) + value for key, value in counts.items()}
            time.sleep(3)  # the last reload's old workers finish leaving
        failed = sum(value for key, value in total.items() if key != "requests")
        print(f"all {runs} runs ({3 * runs} reloads): {total['requests']} requests, {failed} failed  {total}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
