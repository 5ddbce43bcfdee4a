"""A real S3-compatible server on loopback (moto in server mode, a separate process) for tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    """moto_server on 127.0.0.1:<port>; stop() and start() again on the same port keep nothing (moto
    holds buckets in memory), which is what a test of an outage needs to know."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "medlake-test",
                "AWS_SECRET_ACCESS_KEY": "medlake-test-secret", "AWS_REGION": "us-east-1",
                "AWS_ALLOW_HTTP": "true", "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(self.endpoint + "/", timeout=1).read()
                return
            time.sleep(0.1)
        raise RuntimeError("the S3 test server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def make_bucket(self, name: str) -> None:
        import pyarrow.fs as pafs

        from medlake.lake.objects import s3_filesystem

        s3_filesystem(self.env(), allow_bucket_creation=True).create_dir(name)
        assert s3_filesystem(self.env()).get_file_info(name).type == pafs.FileType.Directory


@contextlib.contextmanager
def s3_environment(server: S3Server) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def bucket_user(server: S3Server, bucket: str) -> dict[str, str]:
    """An IAM user whose only permission is every S3 action on `bucket`; its AWS_* credentials.
    Created before enforce_access(), while the server still answers unsigned administration."""
    import json

    import boto3

    admin = dict(endpoint_url=server.endpoint, region_name="us-east-1", aws_access_key_id="admin",
                 aws_secret_access_key="admin")
    iam = boto3.client("iam", **admin)
    user = f"only-{bucket}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="own-bucket", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*",
                                                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def enforce_access(server: S3Server) -> None:
    """From now on the server checks every request's signature against its IAM users' policies."""
    req = urllib.request.Request(server.endpoint + "/moto-api/reset-auth", data=b"0", method="POST",
                                 headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(req, timeout=10).read()
