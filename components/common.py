"""Small helpers every component body uses: logging set-up and config parsing."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

from mvd.config import Config, config_from_json

ERROR_DIR_ENV = "MAR_ERROR_DIR"


def setup(config_json: str) -> Config:
    """Configure logging for a component process, record its fatal error (see ``record_errors``)
    and parse its config."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    record_errors()
    return config_from_json(config_json)


def _task_name() -> str:
    argv = sys.argv
    if "--function_to_execute" in argv[:-1]:
        return argv[argv.index("--function_to_execute") + 1].replace("_", "-")
    return Path(argv[0]).stem if argv and argv[0] else "task"


def record_errors() -> None:
    """When env MAR_ERROR_DIR is set (``mar run`` sets it), the exception that ends this process is
    also written there as JSON (task, type, message), so the runner can name the root cause."""
    where = os.environ.get(ERROR_DIR_ENV)
    if not where or getattr(sys.excepthook, "_mar", False):
        return
    previous = sys.excepthook

    def hook(tp, value, tb):
        try:
            d = Path(where)
            d.mkdir(parents=True, exist_ok=True)
            record = {"task": _task_name(), "type": tp.__name__, "message": str(value), "time": time.time()}
            (d / f"{time.time_ns()}-{os.getpid()}.json").write_text(json.dumps(record))
        except OSError:  # e.g. the disk is full: the traceback below still says it
            pass
        previous(tp, value, tb)

    hook._mar = True  # type: ignore[attr-defined]
    sys.excepthook = hook

