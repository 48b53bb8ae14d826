"""Request ids and one structured (JSON) log line per request."""

from __future__ import annotations

import json
import logging
import random
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, g, has_request_context, request

import metrics

SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
access_log = logging.getLogger("flask_api.access")


class JsonFormatter(logging.Formatter):
    """One JSON object per line; the request id is added inside a request."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if has_request_context() and "request_id" in g:
            entry["request_id"] = g.request_id
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class JsonLinesHandler(logging.StreamHandler):
    """A StreamHandler that formats before taking its lock: every request writes a line, and
    with the lock held only for the write, a worker's threads no longer queue behind formatting."""

    def handle(self, record: logging.LogRecord) -> bool:
        if not self.filter(record):
            return False
        try:
            line = self.format(record) + self.terminator
            with self.lock:
                self.stream.write(line)
                self.stream.flush()
        except Exception:  # logging must never take a request down: the stdlib way to report it
            self.handleError(record)
        return True


def init_app(app: Flask) -> None:
    handler = JsonLinesHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    level = app.config["SETTINGS"].app.log_level
    for logger in (app.logger, access_log, logging.getLogger("flask_api")):
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    app.before_request(_start)
    # With app.metrics off, the one `observe is not None` test in _finish is all metrics cost a request.
    observe = metrics.request_observer(app)
    app.after_request(_finish if observe is None else lambda response: _finish(response, observe))


def _start() -> None:
    g.started = time.perf_counter()
    incoming = request.headers.get("X-Request-ID", "")
    # An identifier, not a secret: random bits need no system call, and workers reseed at fork.
    g.request_id = incoming if SANE_REQUEST_ID.match(incoming) else f"{random.getrandbits(128):032x}"


def _finish(response: Response, observe: Callable[[Any, str, int, float], None] | None = None) -> Response:
    if "request_id" not in g:  # a request that failed before any hook ran
        _start()
    seconds = time.perf_counter() - g.started
    if observe is not None:  # the URL rule, never the path: order numbers and tokens stay out of labels
        observe(request.url_rule, request.method, response.status_code, seconds)
    response.headers["X-Request-ID"] = g.request_id
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Only the path: query strings may carry codes or tokens.
    access_log.info("request", extra={"fields": {
        "request_id": g.request_id,
        "method": request.method,
        "path": request.path,
        "status": response.status_code,
        "duration_ms": round(seconds * 1000, 2),
        "user_id": g.get("user_id"),
    }})
    return response
