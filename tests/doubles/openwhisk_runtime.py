"""TEST DOUBLE of the OpenWhisk Python action runtime (the action proxy inside a container).

A real invoker starts a container from the action's image and talks to its action proxy
over HTTP: ``POST /init`` with ``{"value": {"code", "main", "env"}}`` once, then
``POST /run`` with ``{"value": <args>, ...}`` per activation. This double is one OS process
per container that speaks the same two steps as JSON lines on stdin/stdout, so the
controller double can run the real adapter (``openwhisk/action.py``) end to end:

* ``{"init": {"code": str, "main": str, "env": {...}}}`` -> ``{"ok": true}`` or
  ``{"error": str}`` (the code is executed as a module; its imports are the init phase);
* ``{"run": {"value": {...}, "env": {...}}}`` -> ``{"result": <main's return value>}`` or
  ``{"error": str}`` when ``main`` raised or returned something that is not a dict.

Like the real proxy it keeps fd 1 for itself and points the action's stdout at stderr.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
import types
from typing import Any


def _protocol() -> Any:
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    return os.fdopen(proto_fd, "w", buffering=1)


def serve() -> int:
    """Serve init, then run lines, until stdin closes."""
    proto = _protocol()
    entry: Any = None
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        if "init" in msg:
            init = msg["init"]
            os.environ.update({k: str(v) for k, v in (init.get("env") or {}).items()})
            module = types.ModuleType("__action__")
            try:
                exec(compile(init["code"], "action.py", "exec"), module.__dict__)
                entry = module.__dict__[init.get("main") or "main"]
            except Exception:  # reported to the controller, as the real proxy does
                reply: dict[str, Any] = {"error": traceback.format_exc(limit=3)}
            else:
                reply = {"ok": True}
        elif entry is None:
            reply = {"error": "Cannot run: the action was not initialized"}
        else:
            run = msg["run"]
            os.environ.update({k: str(v) for k, v in (run.get("env") or {}).items()})
            try:
                result = entry(run.get("value") or {})
            except Exception:  # an action that raises yields a developer error
                reply = {"error": traceback.format_exc(limit=3)}
            else:
                if isinstance(result, dict):
                    reply = {"result": result}
                else:
                    reply = {"error": "The action did not return a dictionary."}
        proto.write(json.dumps(reply) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(serve())
