"""The *Subtitles* stage: a subtitle file in, timed sentences out.

Clips are planned on sentence boundaries and carry the sentences spoken in them,
so this stage turns a WebVTT or SRT track (as yt-dlp writes it) into a list of
:class:`Sentence` with times in source seconds. It cleans the text, undoes the
"rolling" layout of YouTube's automatic captions, and segments the text stream into
sentences.

Subtitle files come from the internet and are read the way a browser reads WebVTT:
cue by cue, so a malformed cue (a comma decimal or a short ``0:7.5`` timestamp is
repaired; a wrong arrow, a missing end or an end before the start drops that cue) never
costs its neighbours. A file without a single usable cue is the permanent error
``malformed_subtitles`` (through :func:`load_sentences`, a warning: the video is clipped
by its shots). Text is data: markup and entities are removed, and chat-template tokens
(``<|im_end|>``...) an entity could spell are neutralised before any model sees them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from curate.config import SubtitlesConfig
from curate.errors import CurateError, permanent
from curate.textgen.prompts import neutralize_special_tokens

MALFORMED = "malformed_subtitles"
MAX_FILE_BYTES = 64 * 1024**2
"""A last guard for files that did not come through the download's own cap (download.max_subtitle_bytes)."""

_ASS_TAG = re.compile(r"\{\\[^}]*\}")
_CUE_TAG = re.compile(r"<[^>]*>")
_TIMESTAMP = re.compile(r"^(?:(\d{1,4}):)?(\d{1,2}):(\d{1,2})(?:[.,](\d{1,3}))?$")
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


def _format_of(path: Path, text: str) -> str:
    """``vtt`` for a .vtt file or one starting with the WebVTT signature, ``srt`` otherwise."""
    suffix = path.suffix.lower()
    if suffix in (".vtt", ".srt"):
        return suffix[1:]
    return "vtt" if text.startswith("WEBVTT") else "srt"


def _read_text(path: Path) -> str:
    """The file as text (UTF-8, invalid bytes replaced, as browsers decode WebVTT), BOM and NULs removed."""
    try:
        size = path.stat().st_size
        if size == 0:
            raise permanent(MALFORMED, f"{path.name}: empty file")
        if size > MAX_FILE_BYTES:
            raise permanent(MALFORMED, f"{path.name}: larger than {MAX_FILE_BYTES} bytes")
        data = path.read_bytes()
    except OSError as error:
        raise permanent(MALFORMED, f"{path.name}: cannot be read ({error.strerror or error})") from error
    return data.decode("utf-8", errors="replace").lstrip("\ufeff").replace("\x00", "\ufffd")


def parse_timestamp(text: str) -> float | None:
    """Seconds of a cue timestamp, or None. Lenient where the intent is clear: ``00:01:02.500``,
    ``01:02.5``, ``0:7.5`` and SRT's ``00:01:02,500`` all parse; minutes or seconds past 59 do not."""
    match = _TIMESTAMP.match(text.strip())
    if match is None:
        return None
    hours, minutes, seconds, fraction = match.groups()
    if int(minutes) > 59 or int(seconds) > 59:
        return None
    millis = round(int(fraction) * 10 ** (3 - len(fraction))) if fraction else 0
    return round(int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + millis / 1000, 3)


def _timing(line: str) -> tuple[float, float] | None:
    """(start, end) of a cue timing line ``START --> END [settings]``; None drops the cue."""
    left, arrow, right = line.partition("-->")
    if not arrow or not right.split():
        return None
    start, end = parse_timestamp(left), parse_timestamp(right.split()[0])
    if start is None or end is None or end <= start:
        return None
    return start, end


def _blocks(lines: list[str]) -> Iterator[list[str]]:
    """Groups of lines separated by empty lines; a timing line also starts a new group, so a cue
    missing its blank line does not swallow the next one."""
    block: list[str] = []
    for line in lines:
        starts_cue = "-->" in line and any("-->" not in previous for previous in block[-1:]) and len(block) > 1
        if line == "" or starts_cue:
            if block:
                yield block
            block = [] if line == "" else [line]
            continue
        block.append(line)
    if block:
        yield block


def _cue_of(block: list[str]) -> Cue | None:
    """The cue of one block (optional identifier line, timing line, text), or None."""
    timing_at = next((i for i, line in enumerate(block[:2]) if "-->" in line), None)
    if timing_at is None:
        return None
    times = _timing(block[timing_at])
    text = _clean_text("\n".join(block[timing_at + 1 :]))
    return Cue(times[0], times[1], text) if times and text else None


def _clean_text(text: str) -> str:
    """Cue text without tags (``<c>``, ``<i>``, ``<v Name>``, inline ``<00:00:01.000>`` word timings),
    ASS tags and HTML entities, with model special tokens neutralised and whitespace collapsed."""
    plain = html.unescape(_CUE_TAG.sub("", _ASS_TAG.sub("", text)))
    return _WHITESPACE.sub(" ", neutralize_special_tokens(plain)).strip()


def parse_subtitles(path: str | Path) -> list[Cue]:
    """The cues of a .vtt or .srt file (the format sniffed for other extensions).

    Markup is removed, malformed, empty and zero-length cues are dropped one by one, cues
    are sorted by start. Raises ``CurateError("malformed_subtitles")`` and nothing else
    when the file holds no usable cue.
    """
    path = Path(path)
    text = _read_text(path)
    fmt = _format_of(path, text)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if fmt == "vtt" and not re.match(r"WEBVTT(?:[ \t].*)?$", lines[0]):
        raise permanent(MALFORMED, f"{path.name}: not a WebVTT file (no WEBVTT signature)")
    cues = [cue for cue in map(_cue_of, _blocks(lines[1:] if fmt == "vtt" else lines)) if cue is not None]
    if not cues:
        raise permanent(MALFORMED, f"{path.name}: no cue with valid timestamps")
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
    except Exception as error:  # noqa: BLE001 - a subtitle file must never cost its video
        return [], f"{MALFORMED}: {Path(path).name}: cannot be parsed ({type(error).__name__})"
    return segment_sentences(collapse_rolling(cues), config), None
