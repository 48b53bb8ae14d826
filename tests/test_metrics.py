"""Prometheus metrics: off by default, served to allowed networks only, labelled by route template,
each event counted once; under gunicorn, one scrape adds up every worker, a stopped one's too."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

import codes
from extensions import db
from tests.helpers import AUTH, ORDER, PASSWORD, bearer, notify_dev, register, wait_until
from tests.live import BIN, ROOT, Gunicorn

METRICS = "/api/system/metrics"
REQUESTS = "flask_api_http_request_duration_seconds_count"


def samples(text_format: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a scrape, read with prometheus_client's own parser, by (name, labels)."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text_format) for sample in family.samples}


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


class Meter:
    """A scrape before and after: what the story in between added to each series."""

    def __init__(self, client) -> None:
        self.client = client
        self.before = self.scrape()

    def scrape(self) -> dict:
        response = self.client.get(METRICS)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.content_type.startswith("text/plain; version=0.0.4")
        return samples(response.get_data(as_text=True))

    def added(self, name: str, **labels: str) -> float:
        return value(self.scrape(), name, **labels) - value(self.before, name, **labels)


@pytest.fixture
def metered(make_app):
    """An app with app.metrics on (the session app has them off, the default)."""
    return make_app(app__metrics=True)


def test_metrics_are_off_by_default_and_then_nothing_is_registered_or_hooked(client, app):
    assert client.get(METRICS).status_code == 404
    assert client.get(METRICS).get_json()["code"] == codes.NOT_FOUND.code
    # In a fresh process, so that no other test's app has imported anything yet.
    probe = ("import sys; from app import create_app; from tests.conftest import settings_for_tests; "
             "import logs; a = create_app(settings_for_tests(25)); "
             "print('prometheus_client' in sys.modules, logs._finish in a.after_request_funcs[None])")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["False", "True"], result.stderr


def test_a_scrape_is_refused_with_a_404_outside_the_allowed_networks(make_app):
    refused = make_app(app__metrics=True, app__metrics_allow=["10.0.0.0/8"]).test_client()  # the client is 127.0.0.1
    response = refused.get(METRICS, headers={"Accept-Language": "zh-CN"})
    assert response.status_code == 404
    assert response.get_json() == {"code": codes.NOT_FOUND.code, "data": None, "msg": "请求的资源不存在。"}
    assert b"flask_api" not in response.data
    # The address is the one after ProxyFix: behind one trusted proxy, the client it names.
    behind_proxy = make_app(app__metrics=True, app__metrics_allow=["10.0.0.0/8"], app__trusted_proxies=1)
    assert behind_proxy.test_client().get(METRICS, headers={"X-Forwarded-For": "10.1.2.3"}).status_code == 200
    assert behind_proxy.test_client().get(METRICS, headers={"X-Forwarded-For": "192.0.2.7"}).status_code == 404


def test_metrics_allow_takes_networks_only(make_app):
    with pytest.raises(SystemExit, match=r"app.metrics_allow.0: not a network in CIDR notation"):
        make_app(app__metrics=True, app__metrics_allow=["10.0.0.1/8"])


def test_no_label_carries_a_raw_path_only_the_route_template(metered):
    client = metered.test_client()
    tokens = register(client, "labels@example.com")
    order_no = client.post(f"{ORDER}/create", json={"product_id": "basic-monthly"},
                           headers=bearer(tokens["access_token"])).get_json()["data"]["order_no"]
    assert client.get(f"{ORDER}/status/{order_no}", headers=bearer(tokens["access_token"])).status_code == 200
    assert client.get("/api/no/such/98765432101234").status_code == 404
    assert client.open("/api/system/health", method="BREW").status_code == 405
    scraped = client.get(METRICS).get_data(as_text=True)
    for secret in (order_no, "98765432101234", tokens["access_token"], tokens["refresh_token"], "BREW"):
        assert secret not in scraped
    parsed = samples(scraped)
    assert value(parsed, REQUESTS, route="/api/client/order/status/<order_no>", method="GET", status="2xx") >= 1
    assert value(parsed, REQUESTS, route="unmatched", method="GET", status="4xx") >= 1
    assert value(parsed, REQUESTS, route="unmatched", method="other", status="4xx") >= 1


def login(client, email: str, password: str) -> int:
    return client.post(f"{AUTH}/login", json={"email": email, "password": password}).status_code


def test_login_outcomes_ok_wrong_locked_and_rate_limited(make_app):
    client = make_app(app__metrics=True, auth__max_failed_logins=2,
                      auth__rate_limits__login_per_email="4/minute").test_client()
    register(client, "outcomes@example.com")
    meter = Meter(client)
    statuses = [login(client, "outcomes@example.com", PASSWORD)] + [
        login(client, "outcomes@example.com", "wrong password") for _ in range(4)]
    assert statuses == [200, 401, 401, 423, 429]  # the 2nd failure locks the next try; the 5th is over the limit
    assert [meter.added("flask_api_logins_total", outcome=outcome) for outcome in
            ("ok", "wrong", "locked", "rate_limited")] == [1, 2, 1, 1]
    assert meter.added("flask_api_rate_limited_total", route=f"{AUTH}/login") == 1


def test_refresh_outcomes_rotated_grace_reuse_and_unknown(make_app):
    client = make_app(app__metrics=True).test_client()
    no_grace = make_app(app__metrics=True, auth__refresh_grace_seconds=0).test_client()
    first = register(client, "rotate@example.com")["refresh_token"]
    meter = Meter(client)

    def refresh(on, token: str):
        return on.post(f"{AUTH}/refresh", json={"refresh_token": token})

    assert refresh(client, first).status_code == 200  # rotated
    assert refresh(client, first).status_code == 200  # again inside the grace window
    second = refresh(no_grace, register(client, "reuse@example.com")["refresh_token"]).get_json()["data"]
    assert refresh(no_grace, second["refresh_token"]).status_code == 200  # rotated
    assert refresh(no_grace, second["refresh_token"]).status_code == 401  # an older generation: reuse
    assert refresh(no_grace, second["refresh_token"]).status_code == 401  # every session ended: unknown
    assert {outcome: meter.added("flask_api_refreshes_total", outcome=outcome)
            for outcome in ("rotated", "grace", "reuse", "unknown")} == {
        "rotated": 3, "grace": 1, "reuse": 1, "unknown": 1}


def test_email_codes_sent_and_failed(make_app):
    client = make_app(app__metrics=True).test_client()
    meter = Meter(client)
    assert client.post(f"{AUTH}/send-email-code", json={"email": "code@example.com"}).status_code == 200
    assert client.post(f"{AUTH}/password/forgot", json={"email": "reset@example.com"}).status_code == 200
    mail_down = make_app(app__metrics=True, smtp__port=1).test_client()
    assert mail_down.post(f"{AUTH}/send-email-code", json={"email": "down@example.com"}).status_code == 503
    assert meter.added("flask_api_email_codes_total", purpose="login", outcome="sent") == 1
    assert meter.added("flask_api_email_codes_total", purpose="reset", outcome="sent") == 1
    assert meter.added("flask_api_email_codes_total", purpose="login", outcome="failed") == 1


def notify(client, app, order_no: str, amount: int, transaction_id: str, secret: str | None = None):
    return notify_dev(client, app, order_no, amount, transaction_id=transaction_id, secret=secret)


def test_orders_and_payment_notifications_by_outcome(metered):
    client = metered.test_client()
    headers = bearer(register(client, "orders@example.com")["access_token"])

    def create() -> dict:
        return client.post(f"{ORDER}/create", json={"product_id": "basic-monthly"}, headers=headers).get_json()["data"]

    meter = Meter(client)
    paid, cancelled, expired, mismatched = create(), create(), create(), create()
    assert notify(client, metered, paid["order_no"], paid["amount"], "txn_paid").status_code == 200
    assert notify(client, metered, paid["order_no"], paid["amount"], "txn_paid").status_code == 200  # duplicate
    assert client.post(f"{ORDER}/cancel/{cancelled['order_no']}", headers=headers).status_code == 200
    assert notify(client, metered, cancelled["order_no"], cancelled["amount"], "txn_late").status_code == 200
    assert notify(client, metered, mismatched["order_no"], 1, "txn_short").status_code == 400
    assert notify(client, metered, "20260101000000000000", 100, "txn_unknown").status_code == 404
    assert notify(client, metered, paid["order_no"], paid["amount"], "txn_forged", secret="not-the-secret-at-all"
                  ).status_code == 400
    with metered.app_context():  # past its deadline: the next read expires it
        db.session.execute(text("UPDATE orders SET expires_at = expires_at - INTERVAL 1 DAY WHERE order_no = :no"),
                           {"no": expired["order_no"]})
        db.session.commit()
    shown = client.get(f"{ORDER}/status/{expired['order_no']}", headers=headers).get_json()["data"]
    assert shown["status"] == "EXPIRED"
    assert {event: meter.added("flask_api_orders_total", event=event)
            for event in ("created", "paid", "cancelled", "expired")} == {
        "created": 4, "paid": 1, "cancelled": 1, "expired": 1}
    assert {outcome: meter.added("flask_api_payment_notifications_total", provider="dev", outcome=outcome)
            for outcome in ("paid", "duplicate", "needs_refund", "amount_mismatch", "unknown_order", "refused")} == {
        "paid": 1, "duplicate": 1, "needs_refund": 1, "amount_mismatch": 1, "unknown_order": 1, "refused": 1}


def test_the_503s_are_counted_by_dependency_and_kind(make_app, user):
    meter = Meter(make_app(app__metrics=True).test_client())
    database_down = make_app(app__metrics=True, database__url="mysql+pymysql://root@127.0.0.1:1/flask_api_test")
    answer = database_down.test_client().post(f"{AUTH}/login", json={"email": user["email"], "password": PASSWORD})
    assert answer.status_code == 503
    redis_down = make_app(app__metrics=True, redis__url="redis://127.0.0.1:1/0")
    assert redis_down.test_client().get(f"{AUTH}/me", headers=bearer(user["access_token"])).status_code == 503
    assert meter.added("flask_api_dependency_errors_total", dependency="database", kind="unavailable") == 1
    assert meter.added("flask_api_dependency_errors_total", dependency="redis", kind="unavailable") == 1


# --- under gunicorn: the multiprocess mode ---------------------------------------------------------------

HEALTH = "/api/system/health"


def served(scraped: dict) -> float:
    return value(scraped, REQUESTS, route=HEALTH, method="GET", status="2xx")


def scrape(server: Gunicorn) -> dict:
    response = requests.get(server.url + METRICS, timeout=10)
    assert response.status_code == 200, response.text
    return samples(response.text)


def workers_of(server: Gunicorn) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True).stdout
    return sorted(int(pid) for pid in found.split())


def served_by_each(directory: Path, scratch: Path) -> dict[int, float]:
    """Each worker's own count, read from its file alone with prometheus_client's collector."""
    counts = {}
    for file in directory.glob("histogram_*.db"):
        alone = scratch / file.stem
        alone.mkdir()
        shutil.copy(file, alone / file.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        counts[int(file.stem.split("_")[1])] = served({(s.name, frozenset(s.labels.items())): s.value
                                                       for family in registry.collect() for s in family.samples})
    return counts


@pytest.mark.live
def test_one_scrape_adds_up_both_workers_and_keeps_a_stopped_workers_counts(app, tmp_path):
    directory = tmp_path / "metrics"
    server = Gunicorn(workers=2, app__metrics="true")
    server.env["PROMETHEUS_MULTIPROC_DIR"] = str(directory)  # given, so that the test can read each file
    with server:
        sent = 120
        for _ in range(sent):  # a fresh connection each: reuse_port spreads them over both workers
            assert requests.get(server.url + HEALTH, headers={"Connection": "close"}, timeout=10).ok
        assert served(scrape(server)) == sent  # whichever worker answered the scrape
        workers = workers_of(server)
        by_worker = served_by_each(directory, tmp_path)
        assert len(workers) == 2 and all(by_worker.get(pid, 0) > 0 for pid in workers), by_worker
        assert sum(by_worker.values()) == sent  # neither served them all: the scrape added both up

        os.kill(workers[0], signal.SIGTERM)  # gunicorn replaces it; child_exit marks it dead
        wait_until(lambda: len(workers_of(server)) == 2 and workers[0] not in workers_of(server),
                   what="a replacement worker")
        assert served(scrape(server)) == sent
        server.signal(signal.SIGHUP)  # a reload: every worker new, the same directory
        wait_until(lambda: not set(workers) & set(workers_of(server)) and len(workers_of(server)) == 2,
                   what="the reloaded workers")
        time.sleep(0.5)
        assert served(scrape(server)) == sent
    assert "Traceback" not in server.output()


def test_a_flask_command_makes_a_missing_multiprocess_directory(app, tmp_path):
    # Named but not made yet (a first run, a fresh volume): before any gunicorn start made it, a command's
    # first counter would write there and stop the command with a FileNotFoundError.
    directory = tmp_path / "not" / "made" / "yet"
    env = {**Gunicorn(app__metrics="true").env, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    result = subprocess.run([str(BIN / "flask"), "--app", "app", "sync-schema", "--yes"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert directory.is_dir() and "Traceback" not in result.stderr


@pytest.mark.live
def test_gunicorn_makes_a_directory_of_its_own_when_none_is_given_and_removes_it_at_exit(app):
    before = set(Path(tempfile.gettempdir()).glob("flask-api-metrics-*"))
    server = Gunicorn(workers=1, app__metrics="true")
    server.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with server:
        requests.get(server.url + HEALTH, timeout=10)
        made = set(Path(tempfile.gettempdir()).glob("flask-api-metrics-*")) - before
        assert len(made) == 1 and list(made.pop().glob("*.db"))
        assert served(scrape(server)) == 1
    assert not set(Path(tempfile.gettempdir()).glob("flask-api-metrics-*")) - before
