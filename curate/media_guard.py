"""Which media bytes a local ffmpeg/ffprobe may open, and how to open them safely.

Downloaded files hold whatever a server sent. ffmpeg picks a demuxer by probing the bytes,
and some demuxers open further files: an HLS playlist served as ``video/mp4`` makes ffmpeg
read the local files it names (``-protocol_whitelist file`` still allows exactly that). So
every file is first recognised here by its magic bytes, only an allowlist of containers is
accepted, and every ffmpeg/ffprobe call then names the demuxer explicitly and allows only the
``file`` protocol: the tool reads that one file and nothing else.
"""

from __future__ import annotations

from pathlib import Path

from curate.errors import permanent

ALLOWED_DEMUXERS = ("mov", "matroska", "mpegts", "flv")
"""mp4/mov/m4a (ISO BMFF), matroska/webm, MPEG-TS (HLS segments) and FLV: what real sources serve."""

_ISO_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"styp"})
_EBML = b"\x1a\x45\xdf\xa3"
_TS_PACKET = 188
_SNIFF_BYTES = 3 * _TS_PACKET + 1
_TEXT_HINTS = ((b"#EXTM3U", "an HLS playlist"), (b"<?xml", "an XML document"), (b"<MPD", "a DASH manifest"),
               (b"ffconcat", "an ffmpeg concat script"), (b"<", "an HTML or XML page"))  # fmt: skip


def demuxer_of(head: bytes) -> str | None:
    """The ffmpeg demuxer for these first bytes of a file, or None when it is not an allowed container."""
    if len(head) >= 8 and head[4:8] in _ISO_BOXES:
        return "mov"
    if head.startswith(_EBML):
        return "matroska"
    if head.startswith(b"FLV\x01"):
        return "flv"
    if len(head) > 2 * _TS_PACKET and all(head[i] == 0x47 for i in range(0, len(head), _TS_PACKET)):
        return "mpegts"
    return None


def sniff_demuxer(path: Path) -> str:
    """The demuxer of a local file, read from its magic bytes; anything else fails permanently."""
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    demuxer = demuxer_of(head)
    if demuxer is None:
        raise permanent("invalid_media", f"not a media container we accept ({', '.join(ALLOWED_DEMUXERS)}): {describe_bytes(head)}")
    return demuxer


def media_input_args(path: Path, demuxer: str | None = None) -> list[str]:
    """ffmpeg/ffprobe input arguments that read exactly this one local file.

    Put them where ``-i path`` would go (after any other input options). ``demuxer`` is
    what :func:`sniff_demuxer` (or ``MediaInfo.demuxer``) said; None sniffs the file now.
    """
    chosen = demuxer or sniff_demuxer(Path(path))
    if chosen not in ALLOWED_DEMUXERS:
        raise permanent("invalid_media", f"demuxer {chosen!r} is not one of {', '.join(ALLOWED_DEMUXERS)}")
    return ["-protocol_whitelist", "file", "-f", chosen, "-i", f"file:{path}"]


def describe_bytes(head: bytes) -> str:
    """What the first bytes of a refused file look like, for the error message."""
    if not head:
        return "the file is empty"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    for prefix, name in _TEXT_HINTS:
        if stripped[: len(prefix)].lower() == prefix.lower():
            return f"it looks like {name}"
    return f"it starts with bytes {head[:8].hex()}"
