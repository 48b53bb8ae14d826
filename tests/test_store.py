"""The Redis layout is declared in one package: every key a user's story leaves behind is one of
the keys store/ declares, and no other module spells a key."""

from __future__ import annotations

import re
from pathlib import Path

from extensions import redis_store
from store import keys
from tests.helpers import AUTH, ORDER, TEST_PREFIX, bearer, code_in, created, notify_dev, register, send_code, verify

ROOT = Path(__file__).resolve().parent.parent


def undeclared(key: str) -> bool:
    name = key.removeprefix(TEST_PREFIX)
    return not name.startswith(keys.LIMITER_PREFIX + ":LIMITER/") and not any(
        declared.pattern.fullmatch(name) for declared in keys.DECLARED)


def test_every_key_a_story_leaves_is_declared_by_the_store(app, client, smtp):
    alice = register(client, "alice@example.com")
    headers = bearer(alice["access_token"])
    client.post(f"{AUTH}/login", json={"email": "alice@example.com", "password": "wrong password"})
    client.post(f"{AUTH}/refresh", json={"refresh_token": alice["refresh_token"]})
    order = created(client, headers)
    client.get(f"{ORDER}/status/{order['order_no']}", headers=headers)
    client.get(f"{ORDER}/list", headers=headers)
    notify_dev(client, app, order["order_no"], order["amount"])
    send_code(client, "bob@example.com")
    verify(client, code_in(smtp.last_to("bob@example.com")), "bob@example.com")
    send_code(client, "carol@example.com")  # left pending, after one wrong try
    code = code_in(smtp.last_to("carol@example.com"))
    verify(client, "000000" if code != "000000" else "111111", "carol@example.com")
    client.post(f"{AUTH}/logout", json={}, headers=headers)

    with app.app_context():
        left = list(redis_store.client.scan_iter(match=TEST_PREFIX + "*", count=1000))
    assert len(left) >= 15
    assert [key for key in left if undeclared(key)] == []
    kinds = {declared.name for declared in keys.DECLARED for key in left
             if declared.pattern.fullmatch(key.removeprefix(TEST_PREFIX))}
    assert kinds >= {"access_token", "refresh_token", "session", "refresh_token_next", "user", "order",
                     "email_code", "email_code_lock", "login_failures"}


def test_no_module_outside_the_store_spells_a_key():
    names = "|".join(re.escape(declared.name) for declared in keys.DECLARED)
    spelled = re.compile(rf"""["'](?:{names}|{keys.LIMITER_PREFIX}):""")
    found = [f"{path.relative_to(ROOT)}:{number}"
             for path in ROOT.glob("**/*.py") if path.relative_to(ROOT).parts[0] not in ("store", ".venv")
             for number, line in enumerate(path.read_text().splitlines(), 1) if spelled.search(line)]
    assert found == []
