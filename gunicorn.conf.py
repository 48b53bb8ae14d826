"""gunicorn settings: `gunicorn -c gunicorn.conf.py wsgi:app`.

gthread workers, one per core, 4 threads each: while a thread waits on Redis or
MariaDB another one uses the core, and keep-alive connections stay open.
GUNICORN_WORKER_CLASS=gevent runs gevent workers instead (GUNICORN_WORKER_CONNECTIONS each,
100): gevent then patches the standard library here, before the app and the libraries it
imports create a lock or a socket, since the app is preloaded in the master, and argon2 runs on
a real thread (services/signin/passwords.py). `make bench` measured both and more processes with fewer
threads; why gthread stays the default is in docs/performance.md, "Worker models".

reuse_port gives every worker a listening socket of its own, and the kernel
spreads new connections over them. With the one socket shared by all workers, the
worker that is awake when a burst of connections arrives accepts all of them and
keeps them alive, and the other worker sits idle: `make bench` saw the bare Flask
ceiling fall to a third in such runs. With reuse_port both workers stay busy.
The price: a second server started on the same port by the same user joins the
group instead of failing, and a worker that stops must leave the group as it stops
accepting (workarounds.leave_reuse_port_group_on_stop), or the connections the kernel goes on handing
it would wait and then be reset. gevent workers have no such hook: one that stops resets what was
queued on its listener (the recycling test in tests/test_gunicorn.py sees a few per run).

With app.metrics on, each worker writes its Prometheus values to files of its own in
PROMETHEUS_MULTIPROC_DIR, and a scrape of any worker adds up all of them (metrics.py).
"""

import multiprocessing
import os

worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
if worker_class == "gevent":
    from gevent import monkey

    monkey.patch_all()

import metrics  # noqa: E402  (after the patch)
import workarounds  # noqa: E402
from config import ConfigError, load_config  # noqa: E402
from services import keyset  # noqa: E402

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count()))
threads = int(os.environ.get("GUNICORN_THREADS", 4))
# Connections a worker serves at once. gevent: 100, each of which may use the database at once up to
# database.pool_size + max_overflow (60); gthread: gunicorn's 1000, served by its threads in turn.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", 100 if worker_class == "gevent" else 1000))
reuse_port = True
timeout = 30
graceful_timeout = 20
keepalive = 2
# Recycling workers after max_requests (a guard against slow leaks) is off, as in gunicorn
# itself: no leak has been seen, and with reuse_port a port whose workers all restart at one
# moment has no listener until a new one binds, so new connections are refused meanwhile
# (tests/test_gunicorn.py shows it). GUNICORN_MAX_REQUESTS=N turns it on, with 10 % jitter.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 0))
max_requests_jitter = max_requests // 10
# Load the app in the master: a bad config stops the start once, with its message.
preload_app = True
accesslog = None  # the app writes one structured line per request
# gunicorn's control socket has one default path per user: several servers on one
# machine (tests, the benchmark) would take it from each other. Signals suffice.
control_socket_disable = True
# Above the app's own limits (app.py: 4096 for the URL, 8192 per header), so that the app answers
# those with the envelope (414, 431); gunicorn answers a longer request line (its maximum, 8190)
# or header field itself, with a bare 400 or 414.
limit_request_line = 8190
limit_request_field_size = 16384


def when_ready(server):
    """With reuse_port the master holds no socket, so gunicorn's own "Listening at:" names none.
    The address is the one in force (server.cfg): a -b on the command line wins over this file's."""
    addresses = ", ".join(f"http://{address}" for address in server.cfg.bind)
    server.log.info("Listening at: %s (a socket per worker, reuse_port)", addresses)


def post_worker_init(worker):
    workarounds.leave_reuse_port_group_on_stop(worker)
    # The app is preloaded in the master, so a HUP's new workers would keep the keyset read at the
    # first start: each worker reads it again, and `flask keys` takes effect at the next reload.
    keyset.reload(worker.wsgi)


def _metrics_on() -> bool:
    try:
        return load_config().app.metrics
    except ConfigError:  # the preload below stops the start with the message; a HUP keeps what runs
        return False


# Here, not in a server hook: the directory must be in the environment before the preload imports
# prometheus_client, and gunicorn's hooks run after it.
metrics.prepare_multiprocess_dir(_metrics_on())


def child_exit(server, worker):
    """The worker's counters stay in the sum; prometheus_client is told it is gone."""
    metrics.worker_exited(worker.pid)


def on_exit(server):
    metrics.remove_multiprocess_dir()
