"""A real S3-compatible server on loopback for the object-storage tests: moto's server mode.

Tests talk to it the way a user talks to S3 or MinIO: over HTTP, with credentials and the
endpoint either in the ``AWS_*`` environment variables (:attr:`S3Server.env`, for
subprocesses) or in the URI (:meth:`S3Server.uri`, for code in the test process, so the
test process's environment is never changed).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pyarrow.fs as pafs
from moto.server import ThreadedMotoServer

ACCESS_KEY = "vidla-test-key"
SECRET_KEY = "vidla-test-secret"  # noqa: S105  (moto accepts any credentials)
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    """One running moto server: its endpoint and ways to reach it."""

    host: str
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """What a user exports to point AWS clients (and pyarrow) at this server."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def uri(self, bucket: str, prefix: str = "") -> str:
        """An ``s3://`` URI that carries credentials and endpoint itself (pyarrow's URI form)."""
        path = f"{bucket}/{prefix}".rstrip("/")
        query = f"endpoint_override={self.host}:{self.port}&scheme=http&region={REGION}"
        return f"s3://{ACCESS_KEY}:{SECRET_KEY}@{path}?{query}"

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def filesystem(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            region=REGION,
            endpoint_override=f"{self.host}:{self.port}",
            scheme="http",
        )

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key under ``prefix``, directory markers (``KEY/``) included."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def pending_uploads(self, bucket: str) -> list[str]:
        """Keys of multipart uploads started and neither completed nor aborted."""
        return [u["Key"] for u in self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


@contextmanager
def moto_s3() -> Iterator[S3Server]:
    """Start moto's S3 server on a free loopback port; stop it on exit."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield S3Server(host, port)
    finally:
        server.stop()
