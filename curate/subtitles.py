"""The *Subtitles* stage: a subtitle file in, timed sentences out.

Clips are planned on sentence boundaries and carry the sentences spoken in them,
so this stage turns a WebVTT or SRT track (as yt-dlp writes it) into a list of
:class:`Sentence` with times in source seconds.  Parsing is done by webvtt-py;
this module cleans the text, undoes the "rolling" layout of YouTube's automatic
captions, and segments the text stream into sentences.

Subtitle files come from the internet: a broken one is reported as the
permanent error ``malformed_subtitles`` (or, through :func:`load_sentences`, as
a warning), never as a crash, and never fails the video it belongs to.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import webvtt
from webvtt.errors import MalformedFileError

from curate.config import SubtitlesConfig
from curate.errors import CurateError, permanent

MALFORMED = "malformed_subtitles"

_ASS_TAG = re.compile(r"\{\\[^}]*\}")
_WHITESPACE = re.compile(r"\s+")
_WORD = re.compile(r"\S+")
_TERMINALS = ".!?…"
_CLOSERS = "\"'”’)]»"
_OPENERS = "\"'“‘([«"
_ABBREVIATIONS = frozenset("mr. mrs. ms. dr. prof. sr. jr. st. vs. no. fig. approx. inc. ltd.".split())
_DOTTED_ABBREVIATION = re.compile(r"(?:[a-z]\.){2,}")  # e.g. i.e. u.s. a.k.a.
_GAP_TIE_S = 0.05  # gaps this close to the largest count as equally good cut points
_MIN_REPEAT_WORDS = 2  # a shared single word is coincidence, a repeated line is layout
_MAX_OVERLAP_WORDS = 64  # a repeated caption line is far shorter; bounds the work on hostile files


@dataclass(frozen=True)
class Cue:
    """One subtitle cue: plain text shown from ``start`` to ``end`` (seconds)."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Sentence:
    """One sentence (or pause-delimited phrase) with the times it is spoken (seconds)."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class _Word:
    text: str
    start: float
    end: float
    cue: int


# --------------------------------------------------------------------------- parsing


def _sniff_format(path: Path) -> str:
    """``vtt`` when the file starts with the WebVTT signature, else ``srt``."""
    head = path.read_bytes()[:64].lstrip(b"\xef\xbb\xbf").lstrip()
    return "vtt" if head.startswith(b"WEBVTT") else "srt"


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    return suffix[1:] if suffix in (".vtt", ".srt") else _sniff_format(path)


_FORMAT_NAMES = {"vtt": "WebVTT", "srt": "SRT"}


def _reason(error: Exception, fmt: str) -> str:
    if isinstance(error, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(error, MalformedFileError):
        return f"not a {_FORMAT_NAMES[fmt]} file"
    if isinstance(error, OSError):
        return f"cannot be read ({error.strerror or error})"
    return f"cannot be parsed ({type(error).__name__}: {error})"


def _read_captions(path: Path) -> list[webvtt.Caption]:
    """webvtt-py's captions, any failure of it turned into ``malformed_subtitles``.

    The file is untrusted and webvtt-py may raise several exception types on
    garbage, so everything it raises is the file's fault here.  Cues with
    unreadable timestamps are skipped by webvtt-py; only a file without a
    single readable cue is malformed, so one typo does not lose a whole track.
    """
    fmt = "vtt"
    try:
        if path.stat().st_size == 0:
            raise permanent(MALFORMED, f"{path.name}: empty file")
        fmt = _format_of(path)
        reader = webvtt.read if fmt == "vtt" else webvtt.from_srt
        captions = list(reader(str(path)).captions)
    except CurateError:
        raise
    except Exception as error:
        raise permanent(MALFORMED, f"{path.name}: {_reason(error, fmt)}") from error
    if not captions:
        raise permanent(MALFORMED, f"{path.name}: no cue with valid timestamps")
    return captions


def _clean_text(text: str) -> str:
    """Cue text without ASS tags and HTML entities, whitespace collapsed.

    Cue tags (``<c>``, ``<i>``, ``<font>``, inline ``<00:00:01.000>`` word
    timings) are already gone: webvtt-py's ``Caption.text`` strips them.
    """
    return _WHITESPACE.sub(" ", html.unescape(_ASS_TAG.sub("", text))).strip()


def parse_subtitles(path: str | Path) -> list[Cue]:
    """The cues of a .vtt or .srt file (the format sniffed for other extensions).

    Markup is removed, empty and zero-length cues are dropped, cues are sorted
    by start.  Raises ``CurateError("malformed_subtitles")`` and nothing else
    when the file cannot be read as subtitles.
    """
    path = Path(path)
    cues = []
    for caption in _read_captions(path):
        start = caption.start_time.in_milliseconds() / 1000
        end = caption.end_time.in_milliseconds() / 1000
        text = _clean_text(caption.text)
        if text and end > start:
            cues.append(Cue(start, end, text))
    return sorted(cues, key=lambda cue: (cue.start, cue.end))


# --------------------------------------------------------------------------- rolling captions


def _overlap(previous: Sequence[str], current: Sequence[str]) -> int:
    """The number of words at the end of ``previous`` that ``current`` starts with."""
    for size in range(min(len(previous), len(current), _MAX_OVERLAP_WORDS), 0, -1):
        if previous[len(previous) - size :] == current[:size]:
            return size
    return 0


def _looks_rolling(cues: Sequence[Cue]) -> bool:
    """Whether at least half the cues start by repeating words that end the cue before.

    That is YouTube's automatic-caption layout (a repeated line, several words).
    Manual subtitles almost never do it, so gating on it keeps
    :func:`collapse_rolling` a no-op for them even when neighbouring cues
    happen to share a word ("No." / "No.").
    """
    pairs = list(zip(cues, cues[1:], strict=False))
    repeats = sum(_overlap(a.text.split(), b.text.split()) >= _MIN_REPEAT_WORDS for a, b in pairs)
    return bool(pairs) and repeats * 2 >= len(pairs)


def collapse_rolling(cues: Sequence[Cue]) -> list[Cue]:
    """Each spoken line once, timed by the cue that first showed it.

    YouTube automatic captions show two lines: cue *n* repeats cue *n-1*'s new
    line above its own, and 10 ms "transition" cues repeat a line alone.  The
    words a cue repeats from the previous cue are dropped, and a cue with
    nothing new disappears.  Tracks without that layout are returned unchanged.
    """
    if not _looks_rolling(cues):
        return list(cues)
    collapsed: list[Cue] = []
    previous: list[str] = []
    for cue in cues:
        words = cue.text.split()
        new = words[_overlap(previous, words) :]
        previous = words
        if new:
            collapsed.append(Cue(cue.start, cue.end, " ".join(new)))
    return collapsed


# --------------------------------------------------------------------------- sentences


def _timed_words(cues: Sequence[Cue]) -> list[_Word]:
    """Every word, timed by linear interpolation of its character offsets in its cue."""
    words = []
    for index, cue in enumerate(cues):
        if not cue.text.strip():
            continue
        seconds_per_char = (cue.end - cue.start) / len(cue.text)
        for match in _WORD.finditer(cue.text):
            start = cue.start + match.start() * seconds_per_char
            end = cue.start + match.end() * seconds_per_char
            words.append(_Word(match.group(), start, end, index))
    return words


def _ends_sentence(word: str) -> bool:
    """Whether ``word`` (followed by a space or the end) closes a sentence.

    Terminal punctuation may be followed by closing quotes or brackets;
    abbreviations like "Mr." or "e.g." do not end a sentence, and decimals like
    "3.5" never end in a dot.
    """
    core = word.rstrip(_CLOSERS)
    if not core or core[-1] not in _TERMINALS:
        return False
    if core[-1] != ".":
        return True
    token = core.lstrip(_OPENERS).lower()
    return token not in _ABBREVIATIONS and not _DOTTED_ABBREVIATION.fullmatch(token)


def _is_punctuated(words: Sequence[_Word], config: SubtitlesConfig) -> bool:
    """Whether sentence ends are frequent enough to trust (one per max_sentence_words)."""
    ends = sum(_ends_sentence(word.text) for word in words)
    return ends * config.max_sentence_words >= len(words)


def _is_pause(previous: _Word, word: _Word, config: SubtitlesConfig) -> bool:
    return word.cue != previous.cue and word.start - previous.end >= config.pause_split_s


def _split_at_boundaries(words: Sequence[_Word], config: SubtitlesConfig) -> list[list[_Word]]:
    """Groups of words ending at sentence punctuation, and at pauses if unpunctuated."""
    split_at_pauses = not _is_punctuated(words, config)
    groups: list[list[_Word]] = []
    current: list[_Word] = []
    for word in words:
        if current and split_at_pauses and _is_pause(current[-1], word, config):
            groups.append(current)
            current = []
        current.append(word)
        if _ends_sentence(word.text):
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def _best_cut(words: Sequence[_Word]) -> int:
    """The index to cut before: the largest gap, ties broken towards the middle.

    When all gaps are alike (one long cue) that is the middle, so overlong text
    without pauses is split evenly.
    """
    gaps = [words[i].start - words[i - 1].end for i in range(1, len(words))]
    largest = max(gaps)
    candidates = [i for i in range(1, len(words)) if gaps[i - 1] >= largest - _GAP_TIE_S]
    return min(candidates, key=lambda i: abs(2 * i - len(words)))


def _fits(words: Sequence[_Word], config: SubtitlesConfig) -> bool:
    too_long = words[-1].end - words[0].start > config.max_sentence_s
    return len(words) < 2 or not (too_long or len(words) > config.max_sentence_words)


def _split_long(words: Sequence[_Word], config: SubtitlesConfig) -> list[Sequence[_Word]]:
    """Cut a group until every piece fits max_sentence_s and max_sentence_words.

    A stack rather than recursion: on odd input (gaps growing towards one end)
    every cut may peel off a single word, and a long group must not hit the
    recursion limit.
    """
    pieces: list[Sequence[_Word]] = []
    pending: list[Sequence[_Word]] = [words]
    while pending:
        piece = pending.pop()
        if _fits(piece, config):
            pieces.append(piece)
            continue
        cut = _best_cut(piece)
        pending += [piece[cut:], piece[:cut]]  # the first half is popped, hence emitted, first
    return pieces


def segment_sentences(cues: Sequence[Cue], config: SubtitlesConfig) -> list[Sentence]:
    """Split the cues' text stream into timed sentences.

    Sentences end at ``.``/``!``/``?``/``…``; text that is (nearly) without
    punctuation, as automatic captions are, also ends at pauses of at least
    ``pause_split_s`` between cues.  A sentence longer than ``max_sentence_s``
    or ``max_sentence_words`` is split further.  A sentence runs from its first
    word's start to its last word's end, rounded to milliseconds as cue times are.
    """
    words = _timed_words(cues)
    if not words:
        return []
    return [
        Sentence(round(piece[0].start, 3), round(piece[-1].end, 3), " ".join(word.text for word in piece))
        for group in _split_at_boundaries(words, config)
        for piece in _split_long(group, config)
    ]


def load_sentences(path: str | Path, config: SubtitlesConfig) -> tuple[list[Sentence], str | None]:
    """Parse, collapse and segment a subtitle file; ``(sentences, warning)``.

    A malformed file gives no sentences and a ``malformed_subtitles: ...``
    warning for the ledger instead of an error: the video is still worth
    clipping without its subtitles.
    """
    try:
        cues = parse_subtitles(path)
    except CurateError as error:
        return [], str(error)
    return segment_sentences(collapse_rolling(cues), config), None
