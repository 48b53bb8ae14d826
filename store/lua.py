"""Running a Lua script on the app's Redis client, registered once per app and script."""

from __future__ import annotations

from typing import Any

from extensions import redis_store


def run(script: str, keys: list[str], *args: Any) -> Any:
    """EVALSHA the script (redis-py loads it again if the server lost it)."""
    scripts = redis_store.scripts
    if script not in scripts:
        scripts[script] = redis_store.client.register_script(script)
    return scripts[script](keys=keys, args=list(args))
