"""Does an answer's time tell a known email from an unknown one? Prints both medians per endpoint.

Serves the service under gunicorn (as `make bench` does: its own database and key prefix, the rate
limits out of the way, an SMTP sink on loopback), registers known@example.com, locks it and
unknown@example.com with wrong passwords, then alternates the two emails on each endpoint below
and times every answer from the client's side. A figure, not a test: run it with

    .venv/bin/python bench/signin_timing.py      (SIGNIN_TIMING_TRIES, default 200 per email)

The events a known email causes (login_locked, code_sent) are written after the answer is sent,
so the two medians should differ by less than their spread (the interquartile range).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import requests
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import Server, bench_settings, prepare_storage  # noqa: E402
from scripts.processes import free_port  # noqa: E402

AUTH = "/api/client/auth"
KNOWN, UNKNOWN = "known@example.com", "unknown@example.com"
ENDPOINTS = {
    "POST /login (locked)": ("/login", lambda email: {"email": email, "password": "wrong password"}),
    "POST /send-email-code": ("/send-email-code", lambda email: {"email": email}),
    "POST /password/forgot": ("/password/forgot", lambda email: {"email": email}),
}


class Sink:
    async def handle_DATA(self, server, session, envelope) -> str:
        return "250 OK"


def spread(times: list[float]) -> float:
    quartiles = statistics.quantiles(times, n=4)
    return quartiles[2] - quartiles[0]


def timed(http: requests.Session, url: str, body: dict, expected: int) -> float:
    """One answer's time, on the kept-alive connection: it would also show work that the previous
    request's event left for the thread that reads this one."""
    start = time.perf_counter()
    answer = http.post(url, json=body, timeout=10)
    elapsed = time.perf_counter() - start
    if answer.status_code != expected:
        sys.exit(f"[timing] {url} answered {answer.status_code}, not {expected}: {answer.text}")
    return elapsed * 1000


def main() -> None:
    tries = int(os.environ.get("SIGNIN_TIMING_TRIES", "200"))
    smtp = Controller(Sink(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    env = {**bench_settings(), "APP__SMTP__PORT": str(smtp.port), "APP__AUTH__EMAIL_CODE_RESEND_SECONDS": "0"}
    prepare_storage(env)
    server = Server("signin-timing", "wsgi:app", env, "/api/system/health").start()
    try:
        http = requests.Session()
        base = server.url + AUTH
        assert http.post(base + "/register", json={"email": KNOWN, "password": "correct horse battery"}).ok
        for email in (KNOWN, UNKNOWN):
            for _ in range(5):
                http.post(base + "/login", json={"email": email, "password": "wrong password"})
        print(f"{'endpoint':<24} {'known ms (IQR)':>18} {'unknown ms (IQR)':>18}  "
              "medians differ by less than the spread?")
        for name, (path, body) in ENDPOINTS.items():
            expected = 423 if "login" in path else 200
            times: dict[str, list[float]] = {KNOWN: [], UNKNOWN: []}
            for _ in range(tries):
                for email in (KNOWN, UNKNOWN):
                    times[email].append(timed(http, base + path, body(email), expected))
                    time.sleep(float(os.environ.get("SIGNIN_TIMING_PAUSE", "0")))
            known, unknown = (statistics.median(times[e]) for e in (KNOWN, UNKNOWN))
            widest = max(spread(times[KNOWN]), spread(times[UNKNOWN]))
            print(f"{name:<24} {known:>9.2f} ({spread(times[KNOWN]):.2f}) {unknown:>10.2f} "
                  f"({spread(times[UNKNOWN]):.2f})  {'yes' if abs(known - unknown) < widest else 'NO'}")
    finally:
        server.stop()
        smtp.stop()


if __name__ == "__main__":
    main()
