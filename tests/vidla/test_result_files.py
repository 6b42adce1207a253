"""Evaluation results go where ``--output`` says: a local directory, an object store, any fsspec URI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
from s3_server import ACCESS_KEY, SECRET_KEY, S3Server, moto_s3

from vidla_eval.result_files import ResultDir, redacted

BUCKET = "eval-results"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with moto_s3() as server:
        server.make_bucket(BUCKET)
        yield server


def test_a_local_directory_is_created_and_files_replace_whole(tmp_path: Path) -> None:
    out = ResultDir(tmp_path / "eval" / "run")
    out.write_bytes("metrics.json", b"{}")
    out.write_bytes("metrics.json", b'{"a": 1}')
    assert (tmp_path / "eval" / "run" / "metrics.json").read_bytes() == b'{"a": 1}'
    assert os.listdir(tmp_path / "eval" / "run") == ["metrics.json"]  # no temporary left behind
    assert out.show("metrics.json") == f"{tmp_path}/eval/run/metrics.json"


def test_an_s3_uri_writes_objects_under_its_prefix_and_never_a_local_s3_directory(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = ResultDir(s3.uri(BUCKET, "runs/eval"))
    out.write_bytes("metrics.json", b'{"r1": 42}')
    out.write_bytes("retrieval.png", b"\x89PNG...")
    assert s3.keys(BUCKET, "runs/eval/") == ["runs/eval/metrics.json", "runs/eval/retrieval.png"]
    body = s3.client().get_object(Bucket=BUCKET, Key="runs/eval/metrics.json")["Body"].read()
    assert body == b'{"r1": 42}'
    assert list(tmp_path.iterdir()) == []  # the old Path-typed --output wrote to ./s3:/...
    shown = out.show("metrics.json")
    assert (
        shown.startswith(f"s3://***@{BUCKET}/runs/eval")
        and SECRET_KEY not in shown
        and ACCESS_KEY not in shown
    )


def test_a_scheme_pyarrow_does_not_know_goes_through_fsspec() -> None:
    out = ResultDir("memory://vidla-results/eval")
    out.write_bytes("metrics.json", b"[1, 2]")
    assert fsspec.filesystem("memory").cat_file("/vidla-results/eval/metrics.json") == b"[1, 2]"


def test_credentials_are_hidden_from_messages() -> None:
    assert (
        redacted("s3://KEY:SECRET@bucket/x?endpoint_override=h:1")
        == "s3://***@bucket/x?endpoint_override=h:1"
    )
    assert redacted("/local/path") == "/local/path"
