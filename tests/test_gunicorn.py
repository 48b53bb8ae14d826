"""Deployment behaviour: a reload (HUP) fails no request, a graceful stop (TERM) cuts none."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter

import pytest
import requests
import urllib3

from scripts.processes import free_port
from services import keyset
from tests.helpers import AUTH, PASSWORD, wait_until
from tests.live import Gunicorn

pytestmark = pytest.mark.live


def classify(exc: Exception) -> str:
    """'refused' when no connection was made (the server had stopped listening), else 'reset'."""
    text = repr(exc)
    return "refused" if "Connection refused" in text or "NewConnectionError" in text else "reset"


class Load:
    """Threads sending requests on fresh connections until stopped, recording each outcome."""

    def __init__(self, server: Gunicorn, send, threads: int = 4) -> None:
        self.server, self.send = server, send
        self.outcomes: Counter = Counter()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                response = self.send(self.server.url)
                self.outcomes[response.status_code] += 1
            except (requests.ConnectionError, urllib3.exceptions.HTTPError) as exc:
                self.outcomes[classify(exc)] += 1

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join()


def health(url: str) -> requests.Response:
    return requests.get(url + "/api/system/health", headers={"Connection": "close"}, timeout=30)


def test_a_reload_fails_no_request(app):
    with Gunicorn(workers=2) as server, Load(server, health) as load:
        time.sleep(1)
        server.signal(signal.SIGHUP)
        time.sleep(4)  # new workers boot, old ones finish and leave
    assert load.outcomes[200] > 50
    assert set(load.outcomes) == {200}, load.outcomes


def test_a_graceful_stop_cuts_no_request_in_flight(app):
    server = Gunicorn(workers=2, app__log_level="INFO", auth__rate_limits__login_per_email="100000/minute",
                      auth__rate_limits__login_per_ip="100000/minute").start()
    requests.post(server.url + f"{AUTH}/register", json={"email": "term@example.com", "password": PASSWORD})

    def login(url: str) -> requests.Response:  # slow on purpose: argon2 keeps requests in flight
        return requests.post(url + f"{AUTH}/login", headers={"Connection": "close"}, timeout=30,
                             json={"email": "term@example.com", "password": PASSWORD})

    with Load(server, login) as load:
        time.sleep(1.5)
        server.signal(signal.SIGTERM)
        server.process.wait(timeout=30)
        time.sleep(0.3)
    assert server.process.returncode == 0
    assert load.outcomes[200] > 0
    assert set(load.outcomes) <= {200, "refused", "reset"}, load.outcomes
    # Every login the app began, it finished, and the client received that answer. A reset can
    # only be a connection still in the kernel's accept queue when the listener closed: never
    # read by the app, safe to retry (a load balancer drains a node before stopping it).
    served = [line for line in server.output().splitlines() if f'"path": "{AUTH}/login"' in line]
    assert len(served) == load.outcomes[200]
    assert all('"status": 200' in line for line in served)


def test_recycling_workers_after_max_requests_cuts_no_request(app):
    """GUNICORN_MAX_REQUESTS=40: workers restart every few dozen requests. Every request a worker
    took is answered; a connection made while no worker listened is refused, and one still queued
    unaccepted in a stopping worker's own listener (reuse_port) is reset unread: never half-served,
    but a failed request all the same, which is why recycling is off by default (gunicorn.conf.py)."""
    sessions = threading.local()  # one kept-alive connection per load thread

    def keep_alive(url: str) -> requests.Response:
        if not hasattr(sessions, "client"):
            sessions.client = requests.Session()
        return sessions.client.get(url + "/api/system/health", timeout=30)

    server = Gunicorn(workers=2)
    server.env["GUNICORN_MAX_REQUESTS"] = "40"
    with server, Load(server, keep_alive) as kept, Load(server, health, threads=2) as fresh:
        wait_until(lambda: server.output().count("Autorestarting worker") >= 3, seconds=30, what="3 restarts")
        time.sleep(2)  # and load across the last restart
    restarts = server.output().count("Autorestarting worker")
    print(f"max_requests 40: {restarts} restarts; kept-alive {dict(kept.outcomes)}; fresh {dict(fresh.outcomes)}")
    assert restarts >= 3
    assert kept.outcomes[200] > 100 and fresh.outcomes[200] > 50
    assert set(kept.outcomes) <= {200, "refused"}, kept.outcomes
    assert set(fresh.outcomes) <= {200, "refused", "reset"}, fresh.outcomes


def test_the_start_log_names_the_address_served_even_when_the_command_line_gives_it():
    given = free_port()
    server = Gunicorn(workers=1, args=("-b", f"127.0.0.1:{given}"))  # GUNICORN_BIND names server.port
    server.url = f"http://127.0.0.1:{given}"
    with server:
        assert requests.get(server.url + "/api/system/health", timeout=5).ok
        assert f"Listening at: http://127.0.0.1:{given} " in server.output()
        assert f":{server.port}" not in server.output()


def test_a_reload_picks_up_the_keyset_that_flask_keys_wrote(tmp_path):
    """The app is preloaded in the master; each new worker reads the keyset again."""
    with Gunicorn(workers=1, auth__jwt_keys_dir=str(tmp_path)) as server:
        assert requests.get(server.url + "/.well-known/jwks.json", timeout=5).json() == {"keys": []}
        kid = keyset.generate(str(tmp_path), "EdDSA")["kid"]
        server.signal(signal.SIGHUP)
        wait_until(lambda: [key["kid"] for key in requests.get(server.url + "/.well-known/jwks.json",
                                                                 timeout=5).json()["keys"]] == [kid],
                   what="the new key published after the reload")
