"""Which subtitle track to fetch: a manual track in a preferred language beats any automatic one.

Only tracks in a format :mod:`curate.subtitles` reads (vtt, then srt) and with a language
name that is safe inside a file name count: the name ends up in ``video.<lang>.<ext>``.
"""

from __future__ import annotations

import re
from typing import Literal

from yt_dlp.utils import determine_ext

SubtitleKind = Literal["manual", "automatic"]
SUBTITLE_FORMATS = ("vtt", "srt")  # what curate.subtitles parses, best first
SAFE_LANGUAGE = re.compile(r"[A-Za-z0-9_-]{1,35}")


def choose_subtitle_track(
    subtitles: dict, automatic_captions: dict, languages: list[str]
) -> tuple[str, SubtitleKind] | None:
    """The subtitle language to fetch, and whether it is manual or automatic.

    A manual track in any preferred language beats every automatic one, because manual
    subtitles are punctuated and well timed.  ``languages`` are tried in order and may be
    regexes (``en.*``).
    """
    for kind, tracks in (("manual", subtitles or {}), ("automatic", automatic_captions or {})):
        language = _preferred_language(tracks, languages)
        if language is not None:
            return language, kind  # type: ignore[return-value]
    return None


def subtitle_format(formats: list[dict]) -> str | None:
    """The best format of one language's track that curate.subtitles can parse (vtt, then srt)."""
    available = {_subtitle_ext(entry) for entry in formats or [] if isinstance(entry, dict)}
    return next((ext for ext in SUBTITLE_FORMATS if ext in available), None)


def _subtitle_ext(entry: dict) -> str:
    ext = entry.get("ext") or (determine_ext(entry["url"]) if isinstance(entry.get("url"), str) else "")
    return str(ext).lower()


def _preferred_language(tracks: dict, languages: list[str]) -> str | None:
    usable = [lang for lang, formats in tracks.items()
              if isinstance(lang, str) and SAFE_LANGUAGE.fullmatch(lang) and subtitle_format(formats)]  # fmt: skip
    for wanted in languages:
        pattern = _language_pattern(wanted)
        match = next((lang for lang in usable if pattern.fullmatch(lang)), None)
        if match is not None:
            return match
    return None


def _language_pattern(wanted: str) -> re.Pattern[str]:
    try:
        return re.compile(wanted, re.IGNORECASE)
    except re.error:
        return re.compile(re.escape(wanted), re.IGNORECASE)
