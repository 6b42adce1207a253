"""GuardedYoutubeDL's own parts that the untrusted-download tests do not reach: the extractor choice it remembers.

(The egress policy, body caps, native downloaders and container checks are specified end to end
against a hostile site in ``test_untrusted_download.py``.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yt_dlp

from curate.egress import EgressPolicy
from curate.ytdlp_guard import _CHOSEN_EXTRACTORS, BodyCaps, GuardedYoutubeDL


def _guarded(params: dict) -> GuardedYoutubeDL:
    return GuardedYoutubeDL(params, policy=EgressPolicy.from_entries([]), caps=BodyCaps(page=1, stream=1), subtitle_bytes=1)


@pytest.mark.parametrize("allowed", [None, ["generic"], ["default", "-youtube.*"], ["all"]])
def test_every_build_has_yt_dlps_own_extractors_in_its_order(allowed: list[str] | None, tmp_path: Path) -> None:
    params = {"quiet": True, "paths": {"home": str(tmp_path)}} | ({"allowed_extractors": allowed} if allowed else {})
    plain = yt_dlp.YoutubeDL(dict(params))
    first, second = _guarded(dict(params)), _guarded(dict(params))
    assert tuple(allowed or ["default"]) in _CHOSEN_EXTRACTORS  # the choice is remembered for the next build
    for ydl in (first, second):  # the first made the choice, the second replayed it
        assert list(ydl._ies) == list(plain._ies)
        assert [type(ie) if not isinstance(ie, type) else ie for ie in ydl._ies.values()] == [
            type(ie) if not isinstance(ie, type) else ie for ie in plain._ies.values()]
        # yt-dlp adds the catch-all ("all" chooses it) as an instance bound to its YoutubeDL: each build gets its own.
        assert set(ydl._ies_instances) == set(plain._ies_instances)
        assert all(ie._downloader is ydl for ie in ydl._ies_instances.values())
    if allowed == ["all"]:
        assert first._ies_instances["UnsupportedURL"] is not second._ies_instances["UnsupportedURL"]


def test_a_replayed_choice_still_extracts(tmp_path: Path) -> None:
    """The generic extractor of a replayed build finds a URL's extractor as a fresh one does."""
    params = {"quiet": True, "paths": {"home": str(tmp_path)}}
    _guarded(dict(params))
    ydl = _guarded(dict(params))
    url = "https://www.youtube.com/watch?v=BaW_jenozKc"
    assert next(ie.ie_key() for ie in ydl._ies.values() if ie.suitable(url)) == "Youtube"
    assert ydl.get_info_extractor("Generic").suitable("https://example.com/page.html")
