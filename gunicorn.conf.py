"""gunicorn settings: `gunicorn -c gunicorn.conf.py wsgi:app`."""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", 4))
timeout = 30
graceful_timeout = 20
keepalive = 2
max_requests = 10000
max_requests_jitter = 1000
# Load the app in the master: a bad config stops the start once, with its message.
preload_app = True
accesslog = None  # the app writes one structured line per request
# gunicorn's control socket has one default path per user: several servers on one
# machine (tests, the benchmark) would take it from each other. Signals suffice.
control_socket_disable = True
