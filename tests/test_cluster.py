"""The token store, rate limits, email codes and order caches on a real 3-master Redis
Cluster, with no code path of their own: the auth and order suites run unchanged against it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.live import ROOT, RedisCluster

pytestmark = pytest.mark.live

SUITE = ["tests/test_auth.py", "tests/test_tokens.py", "tests/test_email_code.py", "tests/test_commands.py",
         "tests/test_orders.py"]


@pytest.fixture(scope="module")
def cluster():
    cluster = RedisCluster().start()
    yield cluster
    cluster.cleanup()


def test_the_auth_and_order_suites_pass_on_redis_cluster(cluster):
    env = {**os.environ, "APP__REDIS__URL": cluster.url, "APP__REDIS__CLUSTER": "true",
           "TEST_RUN_ID": f"cluster{os.getpid()}"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-o", "addopts=", "-q", "-x", "-p", "no:cacheprovider",
                             *SUITE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "skipped" not in summary, summary
    # the scripts really ran on the cluster, spread over its masters
    scripts_per_node = [script_calls(node.port) for node in cluster.nodes]
    assert sum(scripts_per_node) > 100 and sum(1 for calls in scripts_per_node if calls) >= 2, scripts_per_node


def script_calls(port: int) -> int:
    stats = subprocess.run(["redis-cli", "-p", str(port), "info", "commandstats"], capture_output=True, text=True)
    return sum(int(line.split("calls=")[1].split(",")[0]) for line in stats.stdout.splitlines()
               if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")))


def test_the_keys_of_one_user_one_email_or_one_address_share_a_hash_slot(cluster, app):
    import redis

    from store import keys

    client = redis.RedisCluster.from_url(cluster.url)
    per_user = [key for key in keys.DECLARED if key.owner == "user"]
    per_email = [key for key in keys.DECLARED if key.owner == "email"]
    per_address = [key for key in keys.DECLARED if key.owner == "address"]
    with app.app_context():  # every declared key, as the store modules build them
        user_keys = [key(42, "x" if key.suffix else None) for key in per_user]
        email_keys = {email: [key(email) for key in per_email] for email in ("}a@example.com", "a{b}@example.com")}
        address_keys = [key("::1", window) for key in per_address for window in ("10/1", "120/60")]
    assert len(per_user) >= 7 and len(per_email) >= 4 and len(per_address) >= 1
    assert len({client.keyslot(key) for key in user_keys}) == 1
    for same_email in email_keys.values():
        assert len({client.keyslot(key) for key in same_email}) == 1
    assert len({client.keyslot(key) for key in address_keys}) == 1  # a limit's windows, counted in one script
    client.close()
