"""yt-dlp held to the egress policy, to byte caps, to native downloaders, and to allowed containers.

:class:`GuardedYoutubeDL` is yt-dlp's own ``YoutubeDL`` with four seams used:

* ``urlopen`` (every request of every extractor and downloader goes through it) checks the
  URL against the :class:`~curate.egress.EgressPolicy` and caps the response body: a read of
  everything (how extractors read pages, manifests, API answers) stops at ``max_page_bytes``,
  streamed reads (how downloaders write media) at the file cap;
* its request director holds one handler, requests' with a response hook that checks every
  redirect target before requests follows it;
* ``dl`` (every media and subtitle download) allows only yt-dlp's native downloaders, whose
  requests go through ``urlopen`` (an ffmpeg or aria2c downloader would connect on its own),
  checks each downloaded file's container before any postprocessor lets ffmpeg open it, and
  makes a subtitle that cannot be fetched a warning instead of the video's failure.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import yt_dlp
from yt_dlp.downloader import get_suitable_downloader
from yt_dlp.downloader.dash import DashSegmentsFD
from yt_dlp.downloader.hls import HlsFD
from yt_dlp.downloader.http import HttpFD
from yt_dlp.networking import Request, Response
from yt_dlp.networking._requests import RequestsRH
from yt_dlp.networking.exceptions import HTTPError, NoSupportingHandlers
from yt_dlp.utils import sanitize_url

from curate.download_errors import classify_error
from curate.egress import EgressPolicy
from curate.errors import CurateError, permanent
from curate.media_guard import sniff_demuxer

NATIVE_DOWNLOADERS = (HttpFD, HlsFD, DashSegmentsFD)
_CHOSEN_EXTRACTORS: dict[tuple[str, ...], list[tuple[type, bool]]] = {}
"""``allowed_extractors`` -> the extractor classes yt-dlp chose for it, in order, and whether it added an instance."""
_READ_CHUNK = 256 * 1024


@dataclass
class BodyCaps:
    """How many bytes one response body may carry; ``stream`` changes while a subtitle downloads."""

    page: int
    stream: int
    stream_code: str = "too_large"


class CappedResponse(Response):
    """A response that refuses to deliver more than its caps, whatever the server sends."""

    def __init__(self, inner: Response, caps: BodyCaps) -> None:
        super().__init__(inner, inner.url, inner.headers, inner.status, inner.reason, inner.extensions)
        self._page, self._stream, self._code = caps.page, caps.stream, caps.stream_code
        self._seen = 0

    def read(self, amt: int | None = None) -> bytes:
        if amt is None or amt < 0:
            return self._read_all()
        data = self.fp.read(amt)
        self._count(len(data), self._stream, self._code)
        return data

    def _read_all(self) -> bytes:
        chunks = []
        while chunk := self.fp.read(_READ_CHUNK):
            self._count(len(chunk), self._page, "page_too_large")
            chunks.append(chunk)
        return b"".join(chunks)

    def _count(self, size: int, cap: int, code: str) -> None:
        self._seen += size
        if self._seen > cap:
            self.close()
            raise permanent(code, f"{self.url[:200]} sent more than {cap} bytes")


class GuardedRequestsRH(RequestsRH):
    """yt-dlp's requests handler, checking every redirect target before it is followed."""

    policy: EgressPolicy = EgressPolicy()

    def _create_instance(self, cookiejar: Any, legacy_ssl_support: Any = None) -> Any:
        session = super()._create_instance(cookiejar, legacy_ssl_support)
        session.hooks["response"].append(self._check_redirect)
        return session

    def _check_redirect(self, response: Any, **_: Any) -> None:
        if response.is_redirect:
            self.policy.check_url(urljoin(response.url, response.headers["location"]))


class GuardedYoutubeDL(yt_dlp.YoutubeDL):
    """``YoutubeDL`` under the egress policy, the body caps and the container allowlist (see module doc)."""

    def __init__(self, params: dict[str, Any], *, policy: EgressPolicy, caps: BodyCaps, subtitle_bytes: int) -> None:
        self.policy, self.caps, self.subtitle_bytes = policy, caps, subtitle_bytes
        self.subtitle_warnings: list[str] = []
        super().__init__(params)

    def add_default_info_extractors(self) -> None:
        """yt-dlp's own choice of extractors, made once per process for each ``allowed_extractors``.

        yt-dlp filters its ~1,900 extractor names through ``allowed_extractors`` (regular
        expressions) every time a ``YoutubeDL`` is built: ~0.06 CPU-s, paid by every download
        attempt and every page listing in its forked child. The zygote makes the choice once
        (:func:`curate.download_attempt.warm_up`); a fork then replays it in the same order,
        with a fresh instance where yt-dlp adds an instance (the final ``UnsupportedURLIE``).
        """
        allowed = self.params.get("allowed_extractors") or ["default"]
        key = tuple(allowed) if isinstance(allowed, list | tuple) else (allowed,)
        chosen = _CHOSEN_EXTRACTORS.get(key)
        if chosen is None:
            super().add_default_info_extractors()
            _CHOSEN_EXTRACTORS[key] = [(ie, False) if isinstance(ie, type) else (type(ie), True) for ie in self._ies.values()]
            return
        for ie, instance in chosen:
            self.add_info_extractor(ie() if instance else ie)

    @functools.cached_property
    def _request_director(self) -> Any:
        director = self.build_request_director([GuardedRequestsRH])
        for handler in director.handlers.values():
            handler.policy = self.policy
        return director

    def urlopen(self, req: Any) -> Response:
        url = req if isinstance(req, str) else getattr(req, "url", None) or req.get_full_url()
        self.policy.check_url(sanitize_url(url))
        try:
            response = super().urlopen(req)
        except HTTPError as error:  # error pages are read too (expected_status)
            error.response = CappedResponse(error.response, self.caps)
            raise
        except NoSupportingHandlers as error:  # how the director reports a refusal raised inside the handler
            refusal = next((e for e in error.unexpected_errors if isinstance(e, CurateError)), None)
            if refusal is not None:
                raise refusal from error
            raise
        return CappedResponse(response, self.caps)

    def dl(self, name: str, info: dict, subtitle: bool = False, test: bool = False) -> Any:
        if subtitle:
            return self._subtitle_dl(name, info)
        downloader = get_suitable_downloader(info, self.params, to_stdout=(name == "-"))
        if test or name == "-" or downloader not in NATIVE_DOWNLOADERS:
            name_of = getattr(downloader, "__name__", downloader)
            raise permanent("unsupported_protocol", f"{info.get('protocol')} needs the {name_of} downloader, which is not allowed")
        if downloader is HlsFD:
            self._pin_hls_manifest(info)
        result = super().dl(name, info, subtitle, test)
        _check_container(Path(name))
        return result

    def _pin_hls_manifest(self, info: dict) -> None:
        """Fetch the HLS playlist ourselves and hand it to the native downloader, refusing one that
        yt-dlp would pass to ffmpeg (which would fetch the segments outside the policy)."""
        if not info.get("hls_media_playlist_data"):
            response = self.urlopen(Request(info["url"], headers=info.get("http_headers") or {}))
            info["hls_media_playlist_data"] = response.read().decode("utf-8", "ignore")
            info["url"] = response.url
        if not HlsFD.can_download(info["hls_media_playlist_data"], info):
            raise permanent("unsupported_protocol", "the HLS stream needs features only ffmpeg's downloader has")

    def _subtitle_dl(self, name: str, info: dict) -> Any:
        """A subtitle track is optional: any failure (empty, too large, refused, broken) is a warning."""
        saved = (self.caps.stream, self.caps.stream_code)
        self.caps.stream, self.caps.stream_code = self.subtitle_bytes, "subtitle_too_large"
        try:
            return super().dl(name, info, subtitle=True)
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, the video is still wanted
            for leftover in (name, f"{name}.part"):
                Path(leftover).unlink(missing_ok=True)
            self.subtitle_warnings.append(f"subtitle track could not be fetched: {classify_error(exc)}"[:400])
            return False, False
        finally:
            self.caps.stream, self.caps.stream_code = saved


def _check_container(path: Path) -> None:
    """A downloaded media file must be an allowed container before yt-dlp's ffmpeg merge or fixup opens it."""
    if not os.path.isfile(path):
        return
    try:
        sniff_demuxer(path)
    except CurateError:
        path.unlink(missing_ok=True)
        raise
