"""make bench: every hot endpoint against a bare-Flask ceiling, in one run.

Starts the service as production runs it (gunicorn -c gunicorn.conf.py wsgi:app)
on loopback against the real MariaDB and Redis, on a
database and key prefix of its own, with the rate limits raised out of the way;
starts bench/ceiling.py with the same gunicorn settings; seeds users, sessions
and orders through the API (refresh chains through the service layer: a login
each would cost an argon2 verify); then drives each row with wrk after a
warm-up. Each row runs ROUNDS times, each run right after a ceiling run, and
every figure is the median of those runs. POST /login is compared with the raw
argon2 verify rate (same hasher, as many processes as gunicorn workers), which
bounds it. GET /me is also served by a second server with app.metrics on, each of
its runs right after a run of /me with them off: the table shows the ratio, and a
line after it each one's worker CPU per request. Prints a table and writes it as
JSON to bench/results.json.

Environment: BENCH_DURATION (seconds per run, 8), BENCH_WARMUP (2),
BENCH_ROUNDS (3), BENCH_ROWS (comma-separated row names, default all),
BENCH_CONNECTIONS (32), BENCH_THREADS (wrk threads, 2).
"""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import RateLimitsSection, load_config  # noqa: E402
from scripts.processes import free_port, stop_gracefully  # noqa: E402

BIN = Path(sys.executable).parent
DURATION = int(os.environ.get("BENCH_DURATION", 8))
WARMUP = int(os.environ.get("BENCH_WARMUP", 2))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", 32))
WRK_THREADS = int(os.environ.get("BENCH_THREADS", 2))
PASSWORD = "bench-password-1234"
AUTH = "/api/client/auth"
ORDER = "/api/client/order"
ORDERS_PER_USER = 25  # more than one page, so /list answers a full page of 20
# Each refresh run mints fresh chains; beyond auth.max_sessions_per_user the oldest (those of
# earlier runs, no longer used) are evicted, outside the measurement.
CHAINS_PER_USER = 8
HZ = os.sysconf("SC_CLK_TCK")

# row: (what it is compared with, target ratio, p99 target in ms)
TARGETS: dict[str, tuple[str, float | None, float | None]] = {
    "health": ("ceiling", None, 50),
    "me": ("ceiling", 0.40, 50),
    "me_metrics": ("me", None, 50),
    "order_status": ("ceiling", 0.30, 50),
    "order_list": ("ceiling", 0.20, 50),
    "order_create": ("ceiling", 0.15, 50),
    "refresh": ("ceiling", 0.30, 50),
    "login": ("argon2", 0.85, None),
}
TITLES = {
    "health": "GET /api/system/health",
    "me": "GET /auth/me",
    "me_metrics": "GET /auth/me, app.metrics on",
    "order_status": "GET /order/status/{order_no}",
    "order_list": "GET /order/list (20 items)",
    "order_create": "POST /order/create",
    "refresh": "POST /auth/refresh",
    "login": "POST /auth/login",
}


def bench_settings() -> dict[str, str]:
    """APP__ overrides: own database and key prefix, the rate limits out of the way.

    app.env stays as configured (development): production refuses the dev payment
    provider, and the others would call out to Stripe or Alipay for every order.
    """
    base = load_config()
    url = base.database.url
    name = re.search(r"/([^/?]+)(\?|$)", url).group(1)
    env = {
        "APP__APP__LOG_LEVEL": "INFO",
        "APP__DATABASE__URL": url.replace(f"/{name}", f"/{name}_bench", 1),
        "APP__REDIS__KEY_PREFIX": base.redis.key_prefix + "bench:",
    }
    for key in RateLimitsSection().fields:
        env[f"APP__AUTH__RATE_LIMITS__{key.upper()}"] = "1000000/minute"
    return env


class Server:
    """gunicorn -c gunicorn.conf.py APP on a free loopback port; output to LOG."""

    def __init__(self, name: str, app: str, env: dict[str, str], ready_path: str) -> None:
        self.name, self.app, self.ready_path = name, app, ready_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env, "GUNICORN_BIND": f"127.0.0.1:{self.port}"}
        self.log_path = ROOT / "bench" / f"{name}-server.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> Server:
        log = open(self.log_path, "wb")  # noqa: SIM115  (gunicorn writes to it until stop())
        self.process = subprocess.Popen([str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", self.app],
                                        cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"[bench] {self.name} server exited; see {self.log_path}")
            try:
                if requests.get(self.url + self.ready_path, timeout=1).ok and len(self.workers()) > 0:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        sys.exit(f"[bench] {self.name} server did not come up; see {self.log_path}")

    def workers(self) -> list[int]:
        """The master's children: gunicorn's workers."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                pids.append(int(stat.parent.name))
        return sorted(pids)

    def cpu(self) -> dict[int, float]:
        """CPU seconds (user + system) used so far by each worker."""
        used = {}
        for pid in self.workers():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            used[pid] = (int(fields[11]) + int(fields[12])) / HZ
        return used

    def settle(self, limit: float = 90) -> None:
        """Wait until the workers are idle: wrk stops at its deadline, but a login backlog goes on."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            before = self.cpu()
            time.sleep(0.5)
            after = self.cpu()
            if sum(after.get(pid, 0.0) - used for pid, used in before.items()) < 0.05:
                return

    def rss_mb(self) -> dict[int, float]:
        rss = {}
        for pid in self.workers():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss[pid] = int(line.split()[1]) / 1024
        return rss

    def stop(self) -> None:
        stop_gracefully(self.process)


def prepare_storage(env: dict[str, str]) -> None:
    """A fresh bench database with the current schema, and no keys under the bench prefix."""
    import redis
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(env["APP__DATABASE__URL"])
    engine = create_engine(url.set(database=""))
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{url.database}`"))
    engine.dispose()
    subprocess.run([str(BIN / "flask"), "--app", "app", "sync-schema", "--yes"], cwd=ROOT, check=True,
                   env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    client = redis.Redis.from_url(load_config().redis.url)
    keys = list(client.scan_iter(match=env["APP__REDIS__KEY_PREFIX"] + "*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start:start + 1000])


@dataclass
class Seed:
    """What the rows need: lines for the wrk script, per row."""

    lines: dict[str, list[str]] = field(default_factory=dict)
    refresh_users: list[int] = field(default_factory=list)


def register(url: str, email: str) -> dict[str, Any]:
    answer = requests.post(url + f"{AUTH}/register", json={"email": email, "password": PASSWORD}, timeout=30)
    if answer.status_code != 201:
        sys.exit(f"[bench] register {email}: {answer.status_code} {answer.text[:300]}")
    return answer.json()["data"]


def seed(url: str) -> Seed:
    """Users per row (so no row evicts another's sessions), then orders through the API."""
    groups = {"me": 16, "orders": 8, "create": 8, "refresh": 8, "login": 4}
    emails = [(group, f"bench-{group}-{i}@example.com") for group, n in groups.items() for i in range(n)]
    with ThreadPoolExecutor(8) as pool:
        users = list(pool.map(lambda item: (item[0], item[1], register(url, item[1])), emails))
    by_group: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for group, email, data in users:
        by_group.setdefault(group, []).append((email, data))
    result = Seed()
    result.lines["health"] = ["-\t/api/system/health"]
    result.lines["me"] = [f"{data['access_token']}\t{AUTH}/me" for _, data in by_group["me"]]
    result.refresh_users = [data["user"]["id"] for _, data in by_group["refresh"]]
    login = [json.dumps({"email": email, "password": PASSWORD}) for email, _ in by_group["login"]]
    result.lines["login"] = [f"-\t{AUTH}/login\t{body}" for body in login]
    seed_orders(url, by_group, result)
    return result


def seed_orders(url: str, by_group: dict[str, list], result: Seed) -> None:
    items = requests.get(url + f"{ORDER}/products", timeout=10).json()["data"]["items"]
    body = json.dumps({"product_id": items[0]["id"], "quantity": 1})

    def create(token: str) -> str:
        answer = requests.post(url + f"{ORDER}/create", data=body, timeout=30, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        if answer.status_code not in (200, 201):
            sys.exit(f"[bench] order create: {answer.status_code} {answer.text[:300]}")
        return answer.json()["data"]["order_no"]

    tokens = [data["access_token"] for _, data in by_group["orders"]]
    with ThreadPoolExecutor(8) as pool:
        order_nos = list(pool.map(create, [t for t in tokens for _ in range(ORDERS_PER_USER)]))
    owned = zip([t for t in tokens for _ in range(ORDERS_PER_USER)], order_nos, strict=True)
    result.lines["order_status"] = [f"{token}\t{ORDER}/status/{no}" for token, no in owned]
    result.lines["order_list"] = [f"{token}\t{ORDER}/list" for token in tokens]
    page = requests.get(url + f"{ORDER}/list", headers={"Authorization": f"Bearer {tokens[0]}"}, timeout=10)
    if len(page.json()["data"]["items"]) != 20:
        sys.exit(f"[bench] /list answered {len(page.json()['data']['items'])} items, not 20")
    result.lines["order_create"] = [f"{data['access_token']}\t{ORDER}/create\t{body}"
                                    for _, data in by_group["create"]]


@functools.cache
def bench_app(env_items: tuple[tuple[str, str], ...]):
    """The service's app in this process, built once, for minting sessions."""
    os.environ.update(env_items)
    from app import create_app

    return create_app()


def mint_refresh_tokens(env: dict[str, str], user_ids: list[int]) -> list[str]:
    """Fresh sessions for the refresh chains, through the service layer (no argon2 per session)."""
    from services import tokens
    from store import sessions

    app = bench_app(tuple(sorted(env.items())))
    cfg = app.config["SETTINGS"].auth
    minted = []
    with app.app_context():
        for user_id in user_ids:
            for _ in range(CHAINS_PER_USER):
                issued = tokens.issue_pair(user_id)
                sessions.store_issued(user_id, issued, cfg.max_sessions_per_user,
                                      cfg.refresh_token_ttl + cfg.refresh_grace_seconds)
                minted.append(issued.refresh_token)
    return minted


def wrk(url: str, mode: str, lines: list[str], seconds: int, workdir: Path, timeout: int = 5,
        path: str = "") -> dict[str, Any]:
    data = workdir / f"{mode}-{time.monotonic_ns()}.tsv"
    data.write_text("\n".join(lines) + "\n")
    script = "bench/wrk/refresh.lua" if mode == "refresh" else "bench/wrk/bench.lua"
    command = ["wrk", f"-t{WRK_THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", f"--timeout={timeout}s",
               "-s", script, url, "--", mode, str(data), str(WRK_THREADS), path]
    output = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    data.unlink()
    match = re.search(r"BENCH_RESULT (\{.*\})", output)
    if not match:
        sys.exit(f"[bench] wrk printed no result:\n{output}")
    result = json.loads(match.group(1))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["errors"] = sum(result[k] for k in ("connect", "read", "write", "status", "timeout", "pool_empty"))
    return result


def measured(server: Server, run) -> dict[str, Any]:
    """Run one wrk measurement and add each worker's share of the CPU it took."""
    before = server.cpu()
    result = run()
    after = server.cpu()
    server.settle()
    used = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
    total = sum(used.values()) or 1.0
    result["worker_cpu_s"] = {str(pid): round(seconds, 2) for pid, seconds in used.items()}
    result["worker_share"] = sorted((round(100 * s / total) for s in used.values()), reverse=True)
    result["workers_recycled"] = sorted(before) != sorted(after)
    result["worker_rss_mb"] = round(max(server.rss_mb().values(), default=0.0), 1)
    return result


def argon2_rate(seconds: int, processes: int) -> float:
    """Raw verifies per second with the service's own hasher, in as many processes as workers."""
    command = [sys.executable, str(Path(__file__)), "argon2-worker", str(seconds)]
    children = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    return sum(float(child.communicate()[0]) for child in children)


def argon2_worker(seconds: float) -> None:
    from argon2 import PasswordHasher

    cost = load_config().auth.password_hashing  # the service's own parameters
    hasher = PasswordHasher(time_cost=cost.time_cost, memory_cost=cost.memory_cost, parallelism=cost.parallelism)
    hashed = hasher.hash(PASSWORD)
    started, count = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        hasher.verify(hashed, PASSWORD)
        count += 1
    print(count / (time.perf_counter() - started))


def gunicorn_settings(env: dict[str, str]) -> dict[str, Any]:
    """The settings gunicorn.conf.py gives under this environment."""
    code = ("import runpy, json; c = runpy.run_path('gunicorn.conf.py'); "
            "print(json.dumps({k: c.get(k) for k in ('worker_class', 'workers', 'threads', 'keepalive', "
            "'worker_connections', 'max_requests', 'preload_app')}))")
    output = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **env},
                            capture_output=True, text=True, check=True).stdout
    return json.loads(output)


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("[")[0]
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mb": memory, "kernel": platform.release(),
            "python": platform.python_version(), "wrk": wrk_version.strip(),
            "loadavg_before": os.getloadavg()[0]}


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def cpu_per_request_us(runs: list[dict[str, Any]]) -> float:
    """Median worker CPU (user + system, every worker) per request answered, in µs."""
    return statistics.median(sum(run["worker_cpu_s"].values()) / max(run["requests"], 1) * 1e6 for run in runs)


def summarize(name: str, runs: list[dict[str, Any]], baseline: list[float]) -> dict[str, Any]:
    kind, target, p99_target = TARGETS[name]
    rps = median_of(runs, "rps")
    base = statistics.median(baseline)
    ratio = rps / base if base else 0.0
    p99 = median_of(runs, "p99_us") / 1000
    errors = sum(run["errors"] for run in runs)
    checks = [errors == 0]
    if target is not None:
        checks.append(ratio >= target)
    if p99_target is not None:
        checks.append(p99 < p99_target)
    return {"row": name, "title": TITLES[name], "rps": round(rps, 1),
            "p50_ms": round(median_of(runs, "p50_us") / 1000, 2), "p99_ms": round(p99, 2), "errors": errors,
            "compared_with": kind, "baseline_rps": round(base, 1),
            "ratio": round(ratio, 3), "target": target, "p99_target_ms": p99_target, "met": all(checks),
            "worker_share": [statistics.median(run["worker_share"][i] for run in runs if len(run["worker_share"]) > i)
                             for i in range(max(len(run["worker_share"]) for run in runs))],
            "runs": runs, "baseline_runs": baseline}


def table(rows: list[dict[str, Any]], ceiling: dict[str, Any]) -> str:
    head = ("| row | req/s | p50 ms | p99 ms | errors | ratio | target | met | CPU per worker % |\n"
            "|---|---:|---:|---:|---:|---:|---|---|---|")
    lines = [head, f"| ceiling: bare Flask envelope | {ceiling['rps']:,.0f} | {ceiling['p50_ms']:.2f} | "
                   f"{ceiling['p99_ms']:.2f} | {ceiling['errors']} | 1.000 | | | "
                   f"{'/'.join(str(s) for s in ceiling['worker_share'])} |"]
    for row in rows:
        if row["row"] == "login":
            ratio = f"{row['ratio']:.3f} of argon2 {row['baseline_rps']:.1f}/s"
            target = f"≥ {row['target']:.2f} × argon2"
        elif row["compared_with"] == "me":
            ratio = f"{row['ratio']:.3f} of /me {row['baseline_rps']:,.0f}/s"
            target = f"p99 < {row['p99_target_ms']:.0f}"
        else:
            ratio = f"{row['ratio']:.3f}"
            target = (f"≥ {row['target']:.2f}, " if row["target"] else "") + f"p99 < {row['p99_target_ms']:.0f}"
        lines.append(f"| {row['title']} | {row['rps']:,.1f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
                     f"{row['errors']} | {ratio} | {target} | {'yes' if row['met'] else 'NO'} | "
                     f"{'/'.join(str(round(s)) for s in row['worker_share'])} |")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "argon2-worker":
        return argon2_worker(float(sys.argv[2]))
    if not shutil.which("wrk"):
        sys.exit("[bench] wrk is missing: `make bench` installs it (apt-get install wrk)")
    wanted = [r for r in os.environ.get("BENCH_ROWS", ",".join(TARGETS)).split(",") if r]
    env = bench_settings()
    info = machine()
    print(f"[bench] database {env['APP__DATABASE__URL'].rsplit('/', 1)[1]}, "
          f"key prefix {env['APP__REDIS__KEY_PREFIX']}, {DURATION}s runs, {ROUNDS} rounds")
    prepare_storage(env)
    app = Server("app", "wsgi:app", env, "/api/system/health")
    # The same app with app.metrics on, on the same database and prefix (the seeded tokens work).
    metered = Server("metrics", "wsgi:app", {**env, "APP__APP__METRICS": "true"}, "/api/system/health")
    ceiling = Server("ceiling", "bench.ceiling:app", {}, "/")
    servers = [app, ceiling] + ([metered] if "me_metrics" in wanted else [])
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        for server in servers:  # inside the try: one that fails to come up stops those already up
            server.start()
        data = seed(app.url)
        rows = [r for r in wanted if r in TARGETS]
        settings = gunicorn_settings(env)
        print(f"[bench] gunicorn: {settings}")

        def run_row(name: str, seconds: int) -> dict[str, Any]:
            if name == "refresh":
                chains = mint_refresh_tokens(env, data.refresh_users)
                return measured(app, lambda: wrk(app.url, "refresh", chains, seconds, workdir,
                                                 path=f"{AUTH}/refresh"))
            if name == "me_metrics":
                return measured(metered, lambda: wrk(metered.url, "get", data.lines["me"], seconds, workdir))
            mode = "post" if name in ("order_create", "login") else "get"
            timeout = 60 if name == "login" else 5
            return measured(app, lambda: wrk(app.url, mode, data.lines[name], seconds, workdir, timeout))

        def run_ceiling(seconds: int) -> dict[str, Any]:
            return measured(ceiling, lambda: wrk(ceiling.url, "get", ["-\t/"], seconds, workdir))

        print("[bench] warming up")
        run_ceiling(WARMUP)
        for name in rows:
            run_row(name, WARMUP)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in rows}
        baselines: dict[str, list[float]] = {name: [] for name in rows}
        metrics_off_runs: list[dict[str, Any]] = []  # /me with metrics off, each right before a run with them on
        ceiling_runs = []
        for round_no in range(1, ROUNDS + 1):
            for name in rows:
                if name == "login":
                    baselines[name].append(argon2_rate(DURATION, len(app.workers())))
                elif name == "me_metrics":
                    metrics_off_runs.append(run_row("me", DURATION))
                    baselines[name].append(metrics_off_runs[-1]["rps"])
                else:
                    ceiling_runs.append(run_ceiling(DURATION))
                    baselines[name].append(ceiling_runs[-1]["rps"])
                runs[name].append(run_row(name, DURATION))
                last = runs[name][-1]
                print(f"[bench] round {round_no} {name:13s} {last['rps']:9.1f} req/s "
                      f"(baseline {baselines[name][-1]:9.1f}) p99 {last['p99_us'] / 1000:7.2f} ms "
                      f"errors {last['errors']} CPU {last['worker_share']} RSS {last['worker_rss_mb']} MB", flush=True)
        rss = app.rss_mb()
        summary_rows = [summarize(name, runs[name], baselines[name]) for name in rows]
        metrics_cost = None
        if metrics_off_runs:
            metrics_cost = {"cpu_us_per_request_off": round(cpu_per_request_us(metrics_off_runs), 1),
                            "cpu_us_per_request_on": round(cpu_per_request_us(runs["me_metrics"]), 1),
                            "ratio_rps": next(row["ratio"] for row in summary_rows if row["row"] == "me_metrics")}
        ceiling_summary = {
            "rps": median_of(ceiling_runs, "rps") if ceiling_runs else 0.0,
            "p50_ms": median_of(ceiling_runs, "p50_us") / 1000 if ceiling_runs else 0.0,
            "p99_ms": median_of(ceiling_runs, "p99_us") / 1000 if ceiling_runs else 0.0,
            "errors": sum(run["errors"] for run in ceiling_runs),
            "worker_share": [statistics.median(r["worker_share"][i] for r in ceiling_runs
                                               if len(r["worker_share"]) > i) for i in range(2)]
            if ceiling_runs else [], "runs": ceiling_runs}
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    info["loadavg_after"] = os.getloadavg()[0]
    rss_ok = max(rss.values()) < 80
    report = table(summary_rows, ceiling_summary)
    print()
    print(f"{info['cpu']}, {info['cores']} cores, {info['memory_mb']} MiB; Python {info['python']}; "
          f"{info['wrk']}; wrk -t{WRK_THREADS} -c{CONNECTIONS} -d{DURATION}s, median of {ROUNDS} runs")
    print(f"gunicorn: {settings['worker_class']}, {settings['workers']} workers x {settings['threads']} "
          f"threads, keepalive {settings['keepalive']} s")
    print()
    print(report)
    print()
    print(f"worker RSS after the run: {', '.join(f'{mb:.1f} MB' for mb in rss.values())} "
          f"(target < 80 MB: {'met' if rss_ok else 'NOT met'})")
    if metrics_cost:
        print(f"app.metrics on /me: {metrics_cost['ratio_rps']:.3f} of the req/s with them off; worker CPU per "
              f"request {metrics_cost['cpu_us_per_request_on']:.0f} µs on, {metrics_cost['cpu_us_per_request_off']:.0f}"
              f" µs off ({metrics_cost['cpu_us_per_request_on'] - metrics_cost['cpu_us_per_request_off']:+.0f} µs)")
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": info,
              "gunicorn": settings, "wrk": {"threads": WRK_THREADS, "connections": CONNECTIONS,
                                           "duration_s": DURATION, "rounds": ROUNDS},
              "ceiling": ceiling_summary, "rows": summary_rows, "metrics_cost": metrics_cost,
              "worker_rss_mb": {str(pid): round(mb, 1) for pid, mb in rss.items()}, "rss_met": rss_ok,
              "all_met": rss_ok and all(row["met"] for row in summary_rows), "table": report}
    (ROOT / "bench" / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print("[bench] written to bench/results.json")


if __name__ == "__main__":
    main()
