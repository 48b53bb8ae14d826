"""make bench: every hot endpoint under each gunicorn worker model, against bare-Flask ceilings, in one run.

Starts the service as production runs it (gunicorn -c gunicorn.conf.py wsgi:app)
on loopback against the real MariaDB and Redis, on a database and key prefix of
its own, with the rate limits raised out of the way; seeds users, sessions and
orders through the API (refresh chains through the service layer: a login each
would cost an argon2 verify). Then, for each worker model (WORKER_MODELS: the
gunicorn.conf.py default first), it serves the service and bench/ceiling.py under
that model and drives each row with wrk after a warm-up. Each round runs the
fixed reference (the ceiling under gthread 2 x 4, the model of every earlier
table), the model's own ceiling, then each row; every figure is the median of
ROUNDS runs. The worker-model table shows each row against both ceilings; the
target table shows the default model's rows against the reference. POST /login is
compared with the raw argon2 verify rate (same hasher, as many processes as
gunicorn workers), which bounds it. GET /me is also served by a second server with
app.metrics on, each of its runs right after a run of /me with them off: the
table shows the ratio, and a line after it each one's worker CPU per request.
Writes everything as JSON to bench/results.json.

Environment: BENCH_DURATION (seconds per run, 8), BENCH_WARMUP (2),
BENCH_ROUNDS (3), BENCH_ROWS (comma-separated row names, default all),
BENCH_MODELS (comma-separated worker models, default all; the default model
always runs), BENCH_CONNECTIONS (32), BENCH_THREADS (wrk threads, 2).
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
# Worker models compared, as gunicorn.conf.py's environment. REFERENCE's ceiling is the fixed
# reference of every table; a default that is none of these is added under its own name.
WORKER_MODELS: dict[str, dict[str, str]] = {
    "gthread 2x4": {"GUNICORN_WORKER_CLASS": "gthread", "GUNICORN_WORKERS": "2", "GUNICORN_THREADS": "4"},
    "gthread 2x2": {"GUNICORN_WORKER_CLASS": "gthread", "GUNICORN_WORKERS": "2", "GUNICORN_THREADS": "2"},
    "gthread 4x2": {"GUNICORN_WORKER_CLASS": "gthread", "GUNICORN_WORKERS": "4", "GUNICORN_THREADS": "2"},
    "gevent 2x100": {"GUNICORN_WORKER_CLASS": "gevent", "GUNICORN_WORKERS": "2", "GUNICORN_WORKER_CONNECTIONS": "100"},
}
REFERENCE = "gthread 2x4"
COMPARED = ["me", "order_status", "order_list", "order_create", "refresh"]  # run under every model
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
        self.name, self.app, self.ready_path = re.sub(r"[^a-z0-9]+", "-", name.lower()), app, ready_path
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


def median_shares(runs: list[dict[str, Any]]) -> list[float]:
    """Each worker's median share of the workers' CPU, the busiest first."""
    return [statistics.median(run["worker_share"][i] for run in runs if len(run["worker_share"]) > i)
            for i in range(max(len(run["worker_share"]) for run in runs))]


def summarize(name: str, runs: list[dict[str, Any]], baseline: list[float]) -> dict[str, Any]:
    """A row's medians, its ratio to the median of baseline (req/s) and whether its targets are met."""
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
            "cpu_us_per_request": round(cpu_per_request_us(runs), 1),
            "worker_share": median_shares(runs),
            "runs": runs, "baseline_runs": baseline}


def summarize_ceiling(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"rps": median_of(runs, "rps"), "p50_ms": median_of(runs, "p50_us") / 1000,
            "p99_ms": median_of(runs, "p99_us") / 1000, "errors": sum(run["errors"] for run in runs),
            "cpu_us_per_request": round(cpu_per_request_us(runs), 1),
            "worker_share": median_shares(runs), "runs": runs}


def target_table(rows: list[dict[str, Any]], reference: dict[str, Any]) -> str:
    head = ("| row | req/s | p50 ms | p99 ms | errors | ratio | target | met | worker CPU µs/req | CPU per worker % |\n"
            "|---|---:|---:|---:|---:|---:|---|---|---:|---|")
    shares = "/".join(str(round(s)) for s in reference["worker_share"])
    lines = [head, f"| reference: bare Flask, {REFERENCE} | {reference['rps']:,.0f} | {reference['p50_ms']:.2f} | "
                   f"{reference['p99_ms']:.2f} | {reference['errors']} | 1.000 | | | "
                   f"{reference['cpu_us_per_request']:,.0f} | {shares} |"]
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
                     f"{row['cpu_us_per_request']:,.0f} | {'/'.join(str(round(s)) for s in row['worker_share'])} |")
    return "\n".join(lines)


def model_table(models: list[dict[str, Any]]) -> str:
    """Each model's ceiling and compared rows, against its own ceiling and against the reference."""
    lines = ["| worker model | row | req/s | p99 ms | errors | × own ceiling | × reference | worker CPU µs/req |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for model in models:
        own, reference = model["ceiling"]["rps"], model["reference_rps"]
        lines.append(f"| {model['name']} | ceiling: bare Flask | {own:,.0f} | {model['ceiling']['p99_ms']:.2f} | "
                     f"{model['ceiling']['errors']} | 1.000 | {own / reference:.3f} | "
                     f"{model['ceiling']['cpu_us_per_request']:,.0f} |")
        for row in model["rows"]:
            if row["row"] not in COMPARED:
                continue
            lines.append(f"| {model['name']} | {row['title']} | {row['rps']:,.1f} | {row['p99_ms']:.2f} | "
                         f"{row['errors']} | {row['rps'] / own:.3f} | {row['rps'] / reference:.3f} | "
                         f"{row['cpu_us_per_request']:,.0f} |")
    return "\n".join(lines)


def model_of(settings: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The name and environment of the worker model gunicorn.conf.py gives with these settings."""
    kind, workers = settings["worker_class"], settings["workers"]
    per_worker = settings["worker_connections"] if kind == "gevent" else settings["threads"]
    name = f"{kind} {workers}x{per_worker}"
    return name, WORKER_MODELS.get(name) or {
        "GUNICORN_WORKER_CLASS": kind, "GUNICORN_WORKERS": str(workers), "GUNICORN_THREADS": str(settings["threads"]),
        "GUNICORN_WORKER_CONNECTIONS": str(settings["worker_connections"])}


@dataclass
class Bench:
    """What every model's run shares: the settings, the seed, the reference ceiling, a scratch folder."""

    env: dict[str, str]
    wanted: list[str]
    reference: Server
    workdir: Path
    data: Seed | None = None

    def run_model(self, name: str, model_env: dict[str, str], default: bool) -> dict[str, Any]:
        """Serve the service and the ceiling under one worker model and drive its rows ROUNDS times."""
        env = {**self.env, **model_env}
        app = Server(f"app {name}", "wsgi:app", env, "/api/system/health")
        ceiling = Server(f"ceiling {name}", "bench.ceiling:app", model_env, "/")
        rows = [r for r in self.wanted if r in TARGETS and (default or r in COMPARED)]
        # The same app with app.metrics on, on the same database and prefix (the seeded tokens work).
        metered = Server(f"metrics {name}", "wsgi:app", {**env, "APP__APP__METRICS": "true"}, "/api/system/health")
        servers = [app, ceiling] + ([metered] if "me_metrics" in rows else [])
        try:
            for server in servers:  # inside the try: one that fails to come up stops those already up
                server.start()
            self.data = self.data or seed(app.url)
            return self.drive(name, app, ceiling, metered, rows)
        finally:
            for server in servers:
                server.stop()

    def drive(self, name: str, app: Server, ceiling: Server, metered: Server, rows: list[str]) -> dict[str, Any]:
        data, workdir = self.data, self.workdir

        def run_row(row: str, seconds: int) -> dict[str, Any]:
            if row == "refresh":
                chains = mint_refresh_tokens(self.env, data.refresh_users)
                return measured(app, lambda: wrk(app.url, "refresh", chains, seconds, workdir, path=f"{AUTH}/refresh"))
            if row == "me_metrics":
                return measured(metered, lambda: wrk(metered.url, "get", data.lines["me"], seconds, workdir))
            mode = "post" if row in ("order_create", "login") else "get"
            timeout = 60 if row == "login" else 5
            return measured(app, lambda: wrk(app.url, mode, data.lines[row], seconds, workdir, timeout))

        def run_ceiling(server: Server, seconds: int) -> dict[str, Any]:
            return measured(server, lambda: wrk(server.url, "get", ["-\t/"], seconds, workdir))

        print(f"[bench] {name}: warming up", flush=True)
        run_ceiling(ceiling, WARMUP)
        for row in rows:
            run_row(row, WARMUP)
        runs: dict[str, list[dict[str, Any]]] = {row: [] for row in rows}
        baselines: dict[str, list[float]] = {row: [] for row in rows}
        metrics_off_runs: list[dict[str, Any]] = []  # /me with metrics off, each right before a run with them on
        ceiling_runs, reference_runs = [], []
        for round_no in range(1, ROUNDS + 1):
            reference_runs.append(run_ceiling(self.reference, DURATION))
            ceiling_runs.append(run_ceiling(ceiling, DURATION))
            print(f"[bench] {name} round {round_no} reference {reference_runs[-1]['rps']:9.1f} req/s, own ceiling "
                  f"{ceiling_runs[-1]['rps']:9.1f} req/s", flush=True)
            for row in rows:
                if row == "login":
                    baselines[row].append(argon2_rate(DURATION, len(app.workers())))
                elif row == "me_metrics":
                    metrics_off_runs.append(run_row("me", DURATION))
                    baselines[row].append(metrics_off_runs[-1]["rps"])
                else:
                    baselines[row].append(reference_runs[-1]["rps"])
                runs[row].append(run_row(row, DURATION))
                last = runs[row][-1]
                print(f"[bench] {name} round {round_no} {row:13s} {last['rps']:9.1f} req/s p99 "
                      f"{last['p99_us'] / 1000:7.2f} ms errors {last['errors']} CPU {last['worker_share']} "
                      f"RSS {last['worker_rss_mb']} MB", flush=True)
        summary = [summarize(row, runs[row], baselines[row]) for row in rows]
        metrics_cost = None
        if metrics_off_runs:
            metrics_cost = {"cpu_us_per_request_off": round(cpu_per_request_us(metrics_off_runs), 1),
                            "cpu_us_per_request_on": round(cpu_per_request_us(runs["me_metrics"]), 1),
                            "ratio_rps": next(row["ratio"] for row in summary if row["row"] == "me_metrics")}
        reference = summarize_ceiling(reference_runs)
        return {"name": name, "reference": reference, "reference_rps": reference["rps"],
                "ceiling": summarize_ceiling(ceiling_runs), "rows": summary, "metrics_cost": metrics_cost,
                "worker_rss_mb": {str(pid): round(mb, 1) for pid, mb in app.rss_mb().items()}}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "argon2-worker":
        return argon2_worker(float(sys.argv[2]))
    if not shutil.which("wrk"):
        sys.exit("[bench] wrk is missing: `make bench` installs it (apt-get install wrk)")
    wanted = [r for r in os.environ.get("BENCH_ROWS", ",".join(TARGETS)).split(",") if r]
    env = bench_settings()
    info = machine()
    settings = gunicorn_settings(env)
    default, default_env = model_of(settings)
    chosen = [m for m in os.environ.get("BENCH_MODELS", ",".join(WORKER_MODELS)).split(",") if m]
    unknown = [m for m in chosen if m not in WORKER_MODELS and m != default]
    if unknown:
        sys.exit(f"[bench] unknown worker model(s) {unknown}; known: {list(WORKER_MODELS)}")
    models = [(default, default_env)] + [(m, WORKER_MODELS[m]) for m in chosen if m != default]
    print(f"[bench] database {env['APP__DATABASE__URL'].rsplit('/', 1)[1]}, "
          f"key prefix {env['APP__REDIS__KEY_PREFIX']}, {DURATION}s runs, {ROUNDS} rounds; "
          f"worker models {[m for m, _ in models]}, the default {default}", flush=True)
    prepare_storage(env)
    reference = Server("reference", "bench.ceiling:app", WORKER_MODELS[REFERENCE], "/")
    bench = Bench(env, wanted, reference, Path(tempfile.mkdtemp(prefix="bench-")))
    try:
        reference.start()
        results = [bench.run_model(name, model_env, name == default) for name, model_env in models]
    finally:
        reference.stop()
        shutil.rmtree(bench.workdir, ignore_errors=True)
    info["loadavg_after"] = os.getloadavg()[0]
    chosen_model = results[0]
    rss = chosen_model["worker_rss_mb"]
    rss_ok = max(rss.values()) < 80
    report = target_table(chosen_model["rows"], chosen_model["reference"])
    models_report = model_table(results)
    print()
    print(f"{info['cpu']}, {info['cores']} cores, {info['memory_mb']} MiB; Python {info['python']}; "
          f"{info['wrk']}; wrk -t{WRK_THREADS} -c{CONNECTIONS} -d{DURATION}s, median of {ROUNDS} runs")
    print()
    print("Worker models (each row against its model's own bare-Flask ceiling and against the reference, "
          f"bare Flask on {REFERENCE}):")
    print()
    print(models_report)
    print()
    print(f"Targets, on the default worker model ({default}; gunicorn: {settings['worker_class']}, "
          f"{settings['workers']} workers, keepalive {settings['keepalive']} s):")
    print()
    print(report)
    print()
    print(f"worker RSS after the run: {', '.join(f'{mb:.1f} MB' for mb in rss.values())} "
          f"(target < 80 MB: {'met' if rss_ok else 'NOT met'})")
    metrics_cost = chosen_model["metrics_cost"]
    if metrics_cost:
        print(f"app.metrics on /me: {metrics_cost['ratio_rps']:.3f} of the req/s with them off; worker CPU per "
              f"request {metrics_cost['cpu_us_per_request_on']:.0f} µs on, {metrics_cost['cpu_us_per_request_off']:.0f}"
              f" µs off ({metrics_cost['cpu_us_per_request_on'] - metrics_cost['cpu_us_per_request_off']:+.0f} µs)")
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": info,
              "gunicorn": settings, "default_model": default, "reference_model": REFERENCE,
              "wrk": {"threads": WRK_THREADS, "connections": CONNECTIONS, "duration_s": DURATION, "rounds": ROUNDS},
              "models": results, "worker_rss_mb": rss, "rss_met": rss_ok,
              "all_met": rss_ok and all(row["met"] for row in chosen_model["rows"]),
              "model_table": models_report, "table": report}
    (ROOT / "bench" / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print("[bench] written to bench/results.json")


if __name__ == "__main__":
    main()
