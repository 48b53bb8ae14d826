"""The container's health check (the Dockerfile's HEALTHCHECK): exit 0 when /api/system/health answers 200.

Standard library only: python:3.11-slim has no curl. The port is GUNICORN_BIND's, so that a changed
bind keeps the check right. A 503 (the database or Redis down) is unhealthy too.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").rsplit(":", 1)[-1]
    url = f"http://127.0.0.1:{port}/api/system/health"
    try:
        with urllib.request.urlopen(url, timeout=4) as answer:
            return 0 if answer.status == 200 else 1
    except urllib.error.HTTPError as refused:  # a 503 says which part is down
        print(f"unhealthy: {url}: {refused.code} {refused.read(500).decode(errors='replace')}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
