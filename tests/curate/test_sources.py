"""Specification of the Sources stage: reading URL lists into ledger rows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.sources import (
    SourceRow,
    load_opt_out,
    normalize_url,
    read_sources,
    source_list_exists,
    video_id_for,
)

RICK = "dQw4w9WgXcQ"
RICK_URL = f"https://www.youtube.com/watch?v={RICK}"
SAFE_ID = re.compile(r"^[A-Za-z0-9_-]+$")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def statuses(rows: list[SourceRow]) -> list[tuple[str, str | None]]:
    return [(row.status, row.error_code) for row in rows]


# --------------------------------------------------------------------------- formats


def test_txt_ignores_comments_and_blank_lines(tmp_path: Path) -> None:
    source = write(
        tmp_path / "urls.txt",
        "# my corpus\n\nhttps://example.com/a.mp4   # a trailing comment\n   \n  https://example.com/b.mp4\n",
    )
    rows = read_sources(source)
    assert [row.url for row in rows] == ["https://example.com/a.mp4", "https://example.com/b.mp4"]
    assert [row.row for row in rows] == [0, 1]
    assert statuses(rows) == [("pending", None), ("pending", None)]


def test_txt_hash_inside_a_url_is_a_fragment_not_a_comment(tmp_path: Path) -> None:
    rows = read_sources(write(tmp_path / "urls.txt", "https://example.com/v.mp4#t=10\n"))
    assert rows[0].url == "https://example.com/v.mp4"


def test_csv_with_id_column_uses_the_ids_as_text(tmp_path: Path) -> None:
    source = write(
        tmp_path / "urls.csv",
        "url,id,title\nhttps://example.com/a.mp4,007,A\nhttps://example.com/b.mp4,bikes,B\n",
    )
    rows = read_sources(source)
    assert [row.video_id for row in rows] == ["007", "bikes"]
    assert statuses(rows) == [("pending", None), ("pending", None)]


def test_csv_without_id_column_derives_ids_from_urls(tmp_path: Path) -> None:
    rows = read_sources(write(tmp_path / "urls.csv", f"url\nhttps://example.com/a.mp4\n{RICK_URL}\n"))
    assert rows[0].video_id == video_id_for("https://example.com/a.mp4")
    assert rows[1].video_id == RICK


def test_csv_empty_id_cell_falls_back_to_the_url(tmp_path: Path) -> None:
    rows = read_sources(write(tmp_path / "urls.csv", f"url,id\n{RICK_URL},\n"))
    assert rows[0].video_id == RICK


def test_jsonl_with_and_without_id(tmp_path: Path) -> None:
    lines = [
        {"url": "https://example.com/a.mp4", "id": "clip-a"},
        {"url": RICK_URL},
        {"url": "https://example.com/c.mp4", "id": 42},
    ]
    source = write(tmp_path / "urls.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n\n")
    rows = read_sources(source)
    assert [row.video_id for row in rows] == ["clip-a", RICK, "42"]


def test_jsonl_non_string_url_fails_that_row_only(tmp_path: Path) -> None:
    source = write(tmp_path / "urls.jsonl", '{"url": 17}\n{"url": "https://example.com/a.mp4"}\n')
    rows = read_sources(source)
    assert statuses(rows) == [("failed", "invalid_url"), ("pending", None)]


def test_jsonl_broken_line_is_a_usage_error_naming_the_line(tmp_path: Path) -> None:
    source = write(tmp_path / "urls.jsonl", '{"url": "https://example.com/a.mp4"}\n{"url": \n')
    with pytest.raises(ValueError, match=r"urls\.jsonl:2"):
        read_sources(source)


def test_parquet_with_integer_ids(tmp_path: Path) -> None:
    source = tmp_path / "urls.parquet"
    pq.write_table(pa.table({"url": ["https://example.com/a.mp4", RICK_URL], "id": [1, 2]}), source)
    rows = read_sources(source)
    assert [row.video_id for row in rows] == ["1", "2"]


def test_parquet_without_id_column(tmp_path: Path) -> None:
    source = tmp_path / "urls.parquet"
    pq.write_table(pa.table({"url": [RICK_URL]}), source)
    assert read_sources(source)[0].video_id == RICK


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".txt"])
def test_a_list_behind_a_filesystem_uri_reads_like_a_local_one(tmp_path: Path, suffix: str) -> None:
    """Cluster runs keep their URL list in the bucket: `--sources s3://bucket/urls.parquet`."""
    urls = ["https://example.com/a.mp4", "https://example.com/b.mp4"]
    path = tmp_path / f"urls{suffix}"
    if suffix == ".parquet":
        pq.write_table(pa.table({"url": urls, "id": ["a", "007"]}), path)
    elif suffix == ".csv":
        path.write_text("url,id\n" + "".join(f"{u},{i}\n" for u, i in zip(urls, ["a", "007"], strict=True)))
    else:
        path.write_text("\n".join(urls) + "\n")
    uri = path.as_uri()  # file:///...: the same pyarrow filesystem code path as s3://
    assert source_list_exists(uri) and not source_list_exists(uri + ".missing")
    assert read_sources(uri) == read_sources(path)


def test_a_bad_list_behind_a_uri_is_a_usage_error_naming_the_uri(tmp_path: Path) -> None:
    path = tmp_path / "urls.csv"
    path.write_text("link\nhttps://example.com/a.mp4\n")
    with pytest.raises(ValueError, match=re.escape(path.as_uri()) + ".*no 'url' column"):
        read_sources(path.as_uri())


def test_unknown_extension_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown source list format '.xlsx'"):
        read_sources(write(tmp_path / "urls.xlsx", "https://example.com/a.mp4\n"))


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("urls.csv", "link\nhttps://example.com/a.mp4\n"),
        ("urls.jsonl", '{"link": "https://example.com/a.mp4"}\n'),
    ],
)
def test_missing_url_column_is_a_usage_error(tmp_path: Path, name: str, content: str) -> None:
    with pytest.raises(ValueError, match="url"):
        read_sources(write(tmp_path / name, content))


def test_parquet_missing_url_column_is_a_usage_error(tmp_path: Path) -> None:
    source = tmp_path / "urls.parquet"
    pq.write_table(pa.table({"link": ["https://example.com/a.mp4"]}), source)
    with pytest.raises(ValueError, match="no 'url' column"):
        read_sources(source)


# --------------------------------------------------------------------------- row rules


def test_every_input_row_gets_a_ledger_row(tmp_path: Path) -> None:
    source = write(tmp_path / "urls.txt", f"{RICK_URL}\nftp://example.com/x\nhttps://youtu.be/{RICK}\n")
    rows = read_sources(source, opt_out={"https://example.com/never"})
    assert [row.row for row in rows] == [0, 1, 2]
    assert statuses(rows) == [("pending", None), ("failed", "invalid_url"), ("skipped", "duplicate")]


def test_duplicate_url_in_another_spelling_names_the_first_row(tmp_path: Path) -> None:
    source = write(
        tmp_path / "urls.txt",
        f"https://example.com/a.mp4\n{RICK_URL}\nhttps://m.youtube.com/watch?v={RICK}&t=42s\nHTTPS://EXAMPLE.com:443/a.mp4\n",
    )
    rows = read_sources(source)
    assert statuses(rows) == [
        ("pending", None),
        ("pending", None),
        ("skipped", "duplicate"),
        ("skipped", "duplicate"),
    ]
    assert "duplicate of row 1" in (rows[2].error or "")
    assert "duplicate of row 0" in (rows[3].error or "")


def test_duplicate_video_id_from_the_id_column(tmp_path: Path) -> None:
    source = write(
        tmp_path / "urls.csv", "url,id\nhttps://example.com/a.mp4,talk\nhttps://example.com/b.mp4,talk\n"
    )
    rows = read_sources(source)
    assert statuses(rows) == [("pending", None), ("skipped", "duplicate")]
    assert "row 0" in (rows[1].error or "") and "'talk'" in (rows[1].error or "")


def test_opt_out_by_video_id(tmp_path: Path) -> None:
    rows = read_sources(write(tmp_path / "urls.txt", f"https://youtu.be/{RICK}\n"), opt_out={RICK})
    assert statuses(rows) == [("skipped", "opted_out")]


def test_opt_out_by_url_in_any_spelling(tmp_path: Path) -> None:
    source = write(tmp_path / "urls.txt", "https://example.com/a.mp4\nhttps://example.com/b.mp4\n")
    opt_out_file = write(
        tmp_path / "opt_out.txt", "# removal requests\nHTTPS://Example.COM/a.mp4#x  # asked 2026-01-02\n"
    )
    rows = read_sources(source, opt_out=load_opt_out(opt_out_file))
    assert statuses(rows) == [("skipped", "opted_out"), ("pending", None)]


def test_every_copy_of_an_opted_out_video_says_opted_out(tmp_path: Path) -> None:
    rows = read_sources(
        write(tmp_path / "urls.txt", f"{RICK_URL}\nhttps://youtu.be/{RICK}\n"), opt_out={RICK}
    )
    assert statuses(rows) == [("skipped", "opted_out"), ("skipped", "opted_out")]


def test_load_opt_out_normalises_urls_and_keeps_ids(tmp_path: Path) -> None:
    opt_out_file = write(
        tmp_path / "opt_out.txt", f"# ids and urls\nsome-id\n\nhttps://youtu.be/{RICK} # by url\n"
    )
    assert load_opt_out(opt_out_file) == {"some-id", RICK_URL}


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("javascript:alert(1)", "scheme 'javascript'"),
        ("ftp://example.com/video.mp4", "scheme 'ftp'"),
        ("www.youtube.com/watch?v=dQw4w9WgXcQ", "no scheme"),
        ("17", "not a URL"),
        ("https:///path-only.mp4", "no host"),
        ("https://example.com:99999/x.mp4", "cannot be parsed"),
        ("https://example.com/a\x07b.mp4", "control characters"),
        ("https://example.com/" + "a" * 2100, "more than 2048"),
    ],
)
def test_invalid_urls_fail_their_row_with_a_reason(tmp_path: Path, url: str, reason: str) -> None:
    rows = read_sources(write(tmp_path / "urls.jsonl", json.dumps({"url": url}) + "\n"))
    assert statuses(rows) == [("failed", "invalid_url")]
    assert reason in (rows[0].error or "")
    assert SAFE_ID.match(rows[0].video_id)


def test_whitespace_inside_a_url_is_invalid(tmp_path: Path) -> None:
    rows = read_sources(write(tmp_path / "urls.csv", "url\nhttps://example.com/my video.mp4\n"))
    assert statuses(rows) == [("failed", "invalid_url")]
    assert "whitespace" in (rows[0].error or "")


def test_empty_url_cell_is_invalid(tmp_path: Path) -> None:
    rows = read_sources(write(tmp_path / "urls.csv", "url,id\n,x\n"))
    assert statuses(rows) == [("failed", "invalid_url")]
    assert "empty URL" in (rows[0].error or "")


def test_file_urls_are_refused_by_default(tmp_path: Path) -> None:
    rows = read_sources(write(tmp_path / "urls.txt", "file:///etc/passwd\n"))
    assert statuses(rows) == [("failed", "invalid_url")]
    assert "allow_file_urls" in (rows[0].error or "")


def test_file_urls_are_accepted_when_allowed(tmp_path: Path) -> None:
    rows = read_sources(write(tmp_path / "urls.txt", "FILE:///data/videos/bikes.mp4\n"), allow_file_urls=True)
    assert statuses(rows) == [("pending", None)]
    assert rows[0].url == "file:///data/videos/bikes.mp4"
    assert rows[0].video_id.startswith("bikes-")


def test_reading_twice_gives_identical_rows(tmp_path: Path) -> None:
    source = write(tmp_path / "urls.txt", f"https://example.com/a.mp4\n{RICK_URL}\nnot a url\n")
    assert read_sources(source) == read_sources(source)


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("  HTTPS://Example.COM/Path/Video.MP4?Q=A  ", "https://example.com/Path/Video.MP4?Q=A"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("https://example.com/a#chapter-2", "https://example.com/a"),
        ("http://User:Pw@Example.com/a", "http://User:Pw@example.com/a"),
    ],
)
def test_normalize_url_generic(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


@pytest.mark.parametrize(
    "given",
    [
        f"https://www.youtube.com/watch?v={RICK}",
        f"http://youtube.com/watch?v={RICK}&list=PL123&t=42s",
        f"https://m.youtube.com/watch?feature=share&v={RICK}",
        f"https://youtu.be/{RICK}?si=abc",
        f"https://www.youtube.com/shorts/{RICK}",
        f"https://www.youtube.com/embed/{RICK}?autoplay=1",
        f"HTTPS://WWW.YOUTUBE.COM/watch?v={RICK}#t=1",
    ],
)
def test_youtube_urls_are_canonical_and_keyed_by_the_youtube_id(given: str) -> None:
    assert normalize_url(given) == RICK_URL
    assert video_id_for(given) == RICK


def test_youtube_url_without_a_valid_video_id_is_not_rewritten() -> None:
    assert normalize_url("https://www.youtube.com/watch?v=short") == "https://www.youtube.com/watch?v=short"
    assert video_id_for("https://www.youtube.com/@channel") != "@channel"


# --------------------------------------------------------------------------- video ids


def test_given_safe_id_is_kept() -> None:
    assert video_id_for("https://example.com/a.mp4", "Bikes_2024-01") == "Bikes_2024-01"


@pytest.mark.parametrize(
    "given", ["../../etc/passwd", "a; rm -rf /", "$(reboot)", "clip.v1", "x" * 65, "ünïcode id"]
)
def test_unsafe_given_ids_are_sanitised_and_hashed(given: str) -> None:
    video_id = video_id_for("https://example.com/a.mp4", given)
    assert SAFE_ID.match(video_id) and "." not in video_id
    assert len(video_id) <= 64
    assert re.search(r"-[0-9a-f]{8}$", video_id)


def test_different_given_ids_never_collide_after_sanitising() -> None:
    assert video_id_for("https://example.com/a.mp4", "a/b") != video_id_for(
        "https://example.com/a.mp4", "a:b"
    )


def test_url_ids_have_a_readable_stem_and_a_hash() -> None:
    video_id = video_id_for("https://cdn.example.com/media/Big.Buck Bunny%20(2008).mp4?dl=1")
    assert re.fullmatch(r"Big-Buck-Bunny-2008-[0-9a-f]{12}", video_id)


def test_url_ids_without_a_file_name_are_just_the_hash() -> None:
    assert re.fullmatch(r"[0-9a-f]{12}", video_id_for("https://example.com/"))


def test_url_ids_are_deterministic_and_spelling_independent() -> None:
    assert video_id_for("https://example.com/v/a.mp4") == video_id_for("HTTPS://EXAMPLE.COM:443/v/a.mp4#frag")
    assert video_id_for("https://example.com/v/a.mp4") != video_id_for("https://example.com/w/a.mp4")


def test_long_file_names_give_bounded_stems() -> None:
    video_id = video_id_for("https://example.com/" + "long-name-" * 20 + ".mp4")
    assert len(video_id) <= 24 + 1 + 12
