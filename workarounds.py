"""Every place where we reach into a library's private parts, each for a measured reason.

create_app() applies them last, once everything is registered; gunicorn.conf.py calls the worker
one. Each is switched off by one setting, `workarounds.<name>: false`, and then the library
behaves as it ships (slower, or as noted): a library upgrade that breaks one can be answered by
a config change while the code catches up. tests/test_workarounds.py runs the app with all of
them off.
"""

from __future__ import annotations

import logging
import os
import select
import time
from functools import partial
from typing import Any

from flask import Flask, request

from extensions import limiter


def apply(app: Flask) -> None:
    switches = app.config["SETTINGS"].workarounds
    if switches.drop_idle_limiter_hooks:
        _drop_idle_limiter_hooks(app)
    if switches.cors_only_with_origin:
        _cors_only_with_origin(app)
    if switches.skip_log_caller_lookup:
        # No format here or in gunicorn's shows the caller's file and line: skip the stack walk that
        # finds them for every record (the setting the logging HOWTO gives under "Optimization").
        # It is process-wide: once one app of the process set it, it stays set.
        logging._srcfile = None


def _drop_idle_limiter_hooks(app: Flask) -> None:
    """Flask-Limiter runs three hooks around every request; with our settings all three are idle,
    and together they cost about a tenth of an authenticated request:

    - before it, a check of default, application and meta limits: we configure none, and each
      @limiter.limit view checks its own limits when it runs;
    - after it, headers: off (RATELIMIT_HEADERS_ENABLED; errors.py sets Retry-After on a 429),
      and costs deducted by response (deduct_when), which no limit here uses;
    - at teardown, resetting its per-request state, which lives on the request context and
      ends with it anyway.

    Flask-Limiter 4 has no public setting for this (its init_app registers all three whatever
    the config; the old auto_check switch is gone), and a subclass would override the same
    private names. Each removal names the function Flask-Limiter registered: a version that
    renames one stops the start here (ValueError), instead of silently keeping the cost.
    """
    config = app.config
    if not any(config.get(key) for key in ("RATELIMIT_DEFAULT", "RATELIMIT_APPLICATION", "RATELIMIT_META")):
        app.before_request_funcs[None].remove(limiter._check_request_limit)
    if not config.get("RATELIMIT_HEADERS_ENABLED"):
        inject_headers = next((hook for hook in app.after_request_funcs[None]
                               if isinstance(hook, partial) and hook.args == (limiter,)), None)
        app.after_request_funcs[None].remove(inject_headers)
    app.teardown_request_funcs[None].remove(limiter._Limiter__release_context)


def _cors_only_with_origin(app: Flask) -> None:
    """flask-cors, consulted only for requests that carry an Origin header.

    Its after-request function matches every response against the resource rules, at about a
    twentieth of an authenticated request; a request without Origin is not cross-origin (no
    browser asked), and there is nothing for it to add. flask-cors has no setting for that, and
    its extension object offers no hook to wrap: so the function its init_app registered (found
    by its name; a version that renames it stops the start here) is wrapped where it stands.
    """
    hooks = app.after_request_funcs[None]
    position = next(index for index, hook in enumerate(hooks)
                    if getattr(hook, "__module__", "") == "flask_cors.extension"
                    and hook.__name__ == "cors_after_request")
    answer_cors = hooks[position]
    hooks[position] = lambda response: answer_cors(response) if "Origin" in request.headers else response


def leave_reuse_port_group_on_stop(worker: Any) -> None:
    """gunicorn post_worker_init: leave the reuse_port group as soon as a stopping worker stops
    accepting.

    gthread stops accepting at the start of a graceful stop (SIGTERM, HUP, max_requests) but
    closes its sockets only at the end; meanwhile the kernel would go on queueing connections on
    them, to be reset at the close. gthread has no hook there, so its set_accept_enabled is wrapped.
    Off: a graceful stop resets the connections the kernel queued on the stopping worker.
    """
    stop_accepting = getattr(worker, "set_accept_enabled", None)
    if stop_accepting is None or not worker.wsgi.config["SETTINGS"].workarounds.gthread_leave_reuse_port_group:
        return

    def set_accept_enabled(enabled: bool) -> None:
        stop_accepting(enabled)
        if not enabled and not worker.alive:
            _leave_group(worker)

    worker.set_accept_enabled = set_accept_enabled


def _leave_group(worker: Any, wait: float = 2.0) -> None:
    """Close the worker's listeners once the port has a full set of listeners besides any that
    left before: on HUP the new workers bind a moment after the old ones are told to stop, and
    a worker recycled after max_requests is replaced only after it exits, so a second worker
    leaving meanwhile waits for that replacement. Closing first would leave the port with no
    listener, and connections refused. What is queued on the listeners is served first."""
    ports = {name[1] for name in (listener.getsockname() for listener in worker.sockets) if isinstance(name, tuple)}
    deadline = time.monotonic() + wait
    while any(_listening(port) < max(2, worker.cfg.workers) for port in ports) and time.monotonic() < deadline:
        time.sleep(0.01)
    for listener in worker.sockets:
        while select.select([listener], [], [], 0)[0]:
            worker.accept(listener)
        listener.close()


def _listening(port: int) -> int:
    """Sockets listening on this TCP port, from Linux's /proc (2 where it is missing: no waiting)."""
    tables = [table for table in ("/proc/net/tcp", "/proc/net/tcp6") if os.path.exists(table)]
    if not tables:
        return 2
    count = 0
    for table in tables:
        with open(table) as rows:
            next(rows)
            for row in rows:
                local, state = row.split()[1], row.split()[3]
                count += local.endswith(f":{port:04X}") and state == "0A"  # 0A: LISTEN
    return count
