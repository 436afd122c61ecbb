"""Small helpers every component body uses: logging set-up and config parsing."""

from __future__ import annotations

import logging
import os
import sys

from mvd.config import Config, config_from_json


def setup(config_json: str) -> Config:
    """Configure logging for a component process and parse its config."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    return config_from_json(config_json)


def kfp_compile_time() -> bool:
    """True where KFP's full DSL is loaded. Inside a running component (``_KFP_RUNTIME=true``)
    ``kfp.dsl`` holds only the artifact types, so the stage modules define their
    ``@dsl.component`` wrappers only when this is true."""
    return os.environ.get("_KFP_RUNTIME", "false") != "true"
