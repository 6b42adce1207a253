"""``file://`` sources: a local video (and its subtitle file) copied from under ``download.file_root``.

yt-dlp is not involved: its file:// support would also let any hostile page pull local files
in. A local source is trusted only as far as the operator said: its real path (symlinks
resolved) must lie under ``download.file_root``, it must be a regular file no bigger than
``max_filesize_bytes``, and it must be an allowed container. Anything else fails
permanently, since the same row will always fail the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from curate.config import DownloadConfig
from curate.download_attempt import AttemptResult
from curate.errors import permanent
from curate.media_guard import sniff_demuxer
from curate.subtitle_tracks import SAFE_LANGUAGE, SUBTITLE_FORMATS

EXTENSIONS = {"mov": "mp4", "matroska": "mkv", "mpegts": "ts", "flv": "flv"}
_COPY_CHUNK = 1024**2


def is_file_url(url: str) -> bool:
    return url[:7].lower() == "file://"


def fetch_local(url: str, workdir: Path, config: DownloadConfig) -> AttemptResult:
    """Copy the file ``url`` names (and a sibling subtitle file) into ``workdir`` under fixed names."""
    source = _resolve_under_root(url, config)
    staged = workdir / "video.source"
    _copy_capped(source, staged, config.max_filesize_bytes, "too_large")
    video = staged.rename(workdir / f"video.{EXTENSIONS[sniff_demuxer(staged)]}")
    subtitle, language, warnings = _sibling_subtitle(source, workdir, config)
    info = {"id": source.stem, "title": source.stem, "extractor": "file", "webpage_url": None}
    choice = (language, "manual") if subtitle is not None else None
    return AttemptResult(str(video), subtitle and str(subtitle), choice, warnings, info, False)  # type: ignore[arg-type]


def _resolve_under_root(url: str, config: DownloadConfig) -> Path:
    if config.file_root is None:
        raise permanent("file_url_refused", "file:// sources are read only from under download.file_root, which is not set")
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise permanent("file_url_refused", f"file:// URL names host {parts.netloc!r}: only local files are read")
    root = Path(config.file_root).resolve()
    try:
        path = Path(unquote(parts.path)).resolve(strict=True)
    except (OSError, RuntimeError) as error:
        raise permanent("file_not_found", f"{unquote(parts.path)}: {error.__class__.__name__}") from None
    if not path.is_relative_to(root):
        raise permanent("file_url_refused", f"{path} is not under download.file_root ({root})")
    if not path.is_file():
        raise permanent("file_not_found", f"{path} is not a regular file")
    return path


def _copy_capped(source: Path, dest: Path, cap: int, code: str) -> None:
    """Copy at most ``cap`` bytes; a bigger file fails with ``code``. The source is opened without
    following a symlink put in place after the path was checked."""
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as src, open(dest, "wb") as out:
        copied = 0
        while chunk := src.read(_COPY_CHUNK):
            copied += len(chunk)
            if copied > cap:
                out.close()
                dest.unlink(missing_ok=True)
                raise permanent(code, f"{source.name} is larger than {cap} bytes")
            out.write(chunk)


def _sibling_subtitle(source: Path, workdir: Path, config: DownloadConfig) -> tuple[Path | None, str | None, tuple[str, ...]]:
    """``NAME.<lang>.vtt|srt`` (preferred languages that are plain names, in order), else ``NAME.vtt|srt``."""
    languages = [lang for lang in config.subtitle_languages if SAFE_LANGUAGE.fullmatch(lang)]
    candidates = [(lang, f"{lang}.{ext}") for lang in languages for ext in SUBTITLE_FORMATS]
    candidates += [("und", ext) for ext in SUBTITLE_FORMATS]
    for language, suffix in candidates:
        path = source.with_name(f"{source.stem}.{suffix}")
        if path.is_file() and path.resolve().parent == source.parent:
            dest = workdir / f"video.{language}.{suffix.rsplit('.', 1)[-1]}"
            try:
                _copy_capped(path, dest, config.max_subtitle_bytes, "subtitle_too_large")
            except Exception as error:  # noqa: BLE001 - an unusable subtitle file only costs the subtitles
                return None, None, (f"subtitle file could not be used: {error}",)
            return dest, language, ()
    return None, None, ()

