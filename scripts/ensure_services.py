"""Make sure the configured MySQL-compatible server and Redis answer.

Where one does not answer on a loopback address, start a local one, installing
Debian's mariadb-server / redis-server first if needed, and say so. Servers that
already answer are used as they are.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from config import load_config  # noqa: E402

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_for(host: str, port: int, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if answers(host, port):
            return True
        time.sleep(0.5)
    return False


def run(*command: str) -> None:
    prefix = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else [])
    subprocess.run([*prefix, *command], check=True)


def apt_install(package: str) -> None:
    print(f"[services] installing Debian package {package}")
    run("apt-get", "update", "-q")
    run("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", package)


def start_redis(port: int) -> None:
    if not shutil.which("redis-server"):
        apt_install("redis-server")
    print(f"[services] starting redis-server on 127.0.0.1:{port}")
    subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(port),
                    "--save", "", "--appendonly", "no"], check=True)


def start_mariadb(port: int) -> None:
    if not Path("/usr/sbin/mariadbd").exists():
        apt_install("mariadb-server")
    print(f"[services] starting mariadbd on 127.0.0.1:{port}")
    Path("/run/mysqld").mkdir(parents=True, exist_ok=True)
    shutil.chown("/run/mysqld", "mysql", "mysql")
    run("start-stop-daemon", "--start", "--oknodo", "--background", "--exec", "/usr/sbin/mariadbd",
        "--", f"--port={port}", "--bind-address=127.0.0.1")


def allow_root_over_tcp(user: str) -> None:
    """Debian's MariaDB lets root in by socket only; our URL logs in over TCP without a password."""
    if user != "root" or not shutil.which("mariadb"):
        return
    sql = ("ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');"
           "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';"
           "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;")
    subprocess.run(["mariadb", "-uroot", "-e", sql], check=False)


def ensure(name: str, url: str, default_port: int, start) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    if answers(host, port):
        print(f"[services] {name} answers at {host}:{port}")
        return
    if host not in LOOPBACK:
        sys.exit(f"[services] {name} does not answer at {host}:{port}, and it is not a local address to start")
    start(port)
    if not wait_for(host, port):
        sys.exit(f"[services] {name} did not come up at {host}:{port}")
    if name == "MariaDB":
        allow_root_over_tcp(parts.username or "")
    print(f"[services] {name} is up at {host}:{port}")


def main() -> None:
    config = load_config()
    ensure("MariaDB", config.database.url.replace("+pymysql", ""), 3306, start_mariadb)
    if not config.redis.cluster:
        ensure("Redis", config.redis.url, 6379, start_redis)


if __name__ == "__main__":
    main()
