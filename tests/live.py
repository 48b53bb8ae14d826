"""Real processes for tests that need them: gunicorn serving the app, Redis or
MariaDB servers of the test's own (other ports, own data), so that a test can
stop and start them while the shared ones keep running, and a headless browser."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import requests
from playwright.sync_api import Browser, Page, Playwright, Route, sync_playwright

from scripts.processes import free_port, stop_gracefully
from tests.helpers import TEST_DB_URL, TEST_PREFIX, wait_until

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


class Gunicorn:
    """gunicorn -c gunicorn.conf.py wsgi:app on a free loopback port, with APP__ overrides."""

    def __init__(self, workers: int = 2, threads: int = 4, args: tuple[str, ...] = (), **settings: object) -> None:
        self.args = args  # more of gunicorn's command line, after -c gunicorn.conf.py
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "GUNICORN_WORKERS": str(workers),
            "GUNICORN_THREADS": str(threads),
            "APP__APP__ENV": "testing",
            "APP__APP__LOG_LEVEL": "WARNING",
            "APP__DATABASE__URL": TEST_DB_URL,
            "APP__REDIS__KEY_PREFIX": TEST_PREFIX,
        }
        self.env.update({"APP__" + key.upper(): str(value) for key, value in settings.items()})
        self.process: subprocess.Popen | None = None

    def start(self) -> Gunicorn:
        log_fd, self.log_path = tempfile.mkstemp(prefix="gunicorn-", suffix=".log")
        self.process = subprocess.Popen([str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", *self.args, "wsgi:app"],
                                        cwd=ROOT, env=self.env, stdout=log_fd, stderr=subprocess.STDOUT)
        os.close(log_fd)
        wait_until(lambda: requests.get(self.url + "/api/openapi.json", timeout=1).ok, what="gunicorn up")
        return self

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self) -> None:
        stop_gracefully(self.process)

    def output(self) -> str:
        return Path(self.log_path).read_text(errors="replace")

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisServer:
    """A redis-server of the test's own, on its own port, keeping nothing on disk."""

    def __init__(self, port: int | None = None, *extra: str) -> None:
        self.port = port or free_port()
        self.extra = extra
        self.dir = tempfile.mkdtemp(prefix="redis-")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, *self.extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True,
                                          text=True).stdout.strip() == "PONG", what="redis up")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class MariaDBServer:
    """A mariadbd of the test's own: its own data directory, port and socket."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="mariadb-"))
        self.process: subprocess.Popen | None = None
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.dir / 'data'}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True)

    def url(self, database: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}?charset=utf8mb4"

    def start(self) -> MariaDBServer:
        self.process = subprocess.Popen(
            ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={self.dir / 'data'}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.dir / 'mysqld.sock'}", "--user=root",
             "--skip-log-bin", "--innodb-buffer-pool-size=32M", f"--pid-file={self.dir / 'mysqld.pid'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        def answers() -> bool:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True

        wait_until(answers, seconds=60, what="mariadb up")
        return self

    def stop(self) -> None:
        """A clean shutdown, as an operator's restart would do."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=120)

    def cleanup(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair for a cluster node")


class RedisCluster:
    """Three Redis masters on loopback joined with redis-cli --cluster create."""

    def __init__(self) -> None:
        self.nodes = [RedisServer(cluster_port(), "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                  "--cluster-node-timeout", "2000") for _ in range(3)]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in self.nodes],
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)

        def ready() -> bool:
            info = subprocess.run(["redis-cli", "-p", str(self.nodes[0].port), "cluster", "info"],
                                  capture_output=True, text=True).stdout
            return "cluster_state:ok" in info

        wait_until(ready, seconds=30, what="cluster ok")
        return self

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()


CHROMIUM = Path("/usr/bin/chromium")
# No sandbox: the suite runs as root. The rest stop the browser's own traffic (updates, sync, first-run pages).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
LOOPBACK = {"127.0.0.1", "localhost"}


class OfflineBrowser:
    """Debian's chromium, headless, driven by Playwright (which never downloads a browser here).

    Its pages reach loopback only: any other request is aborted before it leaves and its URL kept
    in `refused`, so a page that renders here renders on a machine without internet."""

    def __init__(self) -> None:
        self.refused: list[str] = []
        self.playwright: Playwright | None = None
        self.browser: Browser | None = None

    def start(self) -> OfflineBrowser:
        self.playwright = sync_playwright().start()
        self.browser = self.playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        return self

    def new_page(self) -> Page:
        """A page in a fresh context: no cookies or storage from another page."""
        context = self.browser.new_context()
        context.route("**/*", self._loopback_only)
        return context.new_page()

    def _loopback_only(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            self.refused.append(route.request.url)
            route.abort("blockedbyclient")

    def stop(self) -> None:
        if self.browser:
            self.browser.close()
        if self.playwright:
            self.playwright.stop()
