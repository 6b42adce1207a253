"""The typed configuration of the curation stages.

One pydantic model per stage, gathered in :class:`CurateConfig`.  A YAML file
provides values, ``key.sub=value`` overrides patch it (``download.target_short_side=360``),
and unknown keys are rejected so a typo never silently falls back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from curate.textgen.backend_configs import LLM_DEFAULT, VLM_DEFAULT, BackendConfig
from curate.textgen.prompts import CAPTION_PROMPT, SUMMARY_PROMPT, SYSTEM_PROMPT
from vidla_format.config_files import config_data, with_defaults


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SourcesConfig(_Section):
    """How the input list is read (see :mod:`curate.sources`)."""

    allow_file_urls: bool = Field(
        False,
        description="Accept file:// URLs in the source list; they are read, without yt-dlp, only from under download.file_root "
        "(a row outside it, or with no root set, fails permanently). Off by default because URLs are untrusted.",
    )
    opt_out: Path | None = Field(None, description="A file of video ids or URLs (one per line) that are never downloaded.")
    max_entries_per_source: int = Field(
        1000, ge=1, description="A playlist, channel or multi-video page expands into at most this many videos (curate.expand)."
    )


# yt-dlp options download.extra_options may not set: where files go, what runs besides the download
# (commands, postprocessors, external downloaders), which URLs may be read (file://, netrc), and what
# the download stage itself decides. Any of them would let a config or a hostile page escape the limits.
RESERVED_YTDLP_OPTIONS = frozenset({
    "outtmpl", "paths", "logger", "progress_hooks", "postprocessor_hooks", "post_hooks", "postprocessors",
    "postprocessor_args", "writesubtitles", "writeautomaticsub", "subtitleslangs", "subtitlesformat", "allsubtitles",
    "noplaylist", "simulate", "skip_download", "enable_file_urls", "exec", "exec_cmd", "exec_before_dl",
    "exec_before_download", "netrc_cmd", "usenetrc", "netrc_location", "external_downloader", "external_downloader_args",
    "ffmpeg_location", "hls_prefer_native", "allow_unplayable_formats", "compat_opts", "cachedir", "load_info_filename",
    "download_archive", "cookiesfrombrowser", "write_pages", "writeinfojson", "writethumbnail", "writedescription",
    "writelink", "writeurllink", "writewebloclink", "writedesktoplink", "match_filter", "impersonate", "max_filesize",
    "socket_timeout", "fixup", "proxy", "geo_verification_proxy",
})  # fmt: skip


class DownloadConfig(_Section):
    """yt-dlp options and the limits every download runs under (see :mod:`curate.download`)."""

    target_short_side: int = Field(256, ge=64, description="Pick the smallest format whose short side is at least this (else the largest below).")
    format: str | None = Field(None, description="A yt-dlp format spec that replaces the resolution-based choice.")
    subtitle_languages: list[str] = Field(["en", "en-US", "en-GB", "en.*"], description="Subtitle language preference, best first (regexes allowed).")
    allow_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts, IP addresses or CIDRs downloads may reach besides public internet addresses (loopback, private, "
        "link-local and other non-public addresses are refused otherwise, after DNS resolution, on every redirect and every "
        "media or subtitle URL). A YAML list, or one comma-separated string: download.allow_hosts=127.0.0.1,localhost.",
    )
    file_root: Path | None = Field(None, description="file:// sources (sources.allow_file_urls) are copied, without yt-dlp, only from under this directory.")
    max_duration_s: float = Field(3 * 3600, gt=0, description="Longer videos fail permanently (too_long), before the download when the metadata or the media header says so, else on the packets.")
    max_filesize_bytes: int = Field(2 * 1024**3, gt=0, description="Larger downloads fail permanently (too_large); also the most bytes one attempt may write to disk.")
    max_page_bytes: int = Field(32 * 1024**2, gt=0, description="A web page, manifest or API answer read whole may be at most this big (page_too_large, permanent).")
    max_subtitle_bytes: int = Field(8 * 1024**2, gt=0, description="A larger subtitle track is dropped (subtitle_too_large warning); the video is kept.")
    memory_limit_bytes: int = Field(3 * 1024**3, ge=768 * 1024**2, description="Address-space limit of the process that runs one attempt (memory_limit, permanent). "
                                    "At least 768 MiB: the attempt maps ~0.5 GiB of libraries (yt-dlp, numpy, PyAV's FFmpeg) before it reads a byte.")
    max_fps: float = Field(240, gt=0, description="More video packets per second than this fail permanently (fps_too_high), whatever the header says.")
    max_frame_side: int = Field(4096, ge=64, description="A wider or taller video fails permanently (resolution_too_high).")
    max_packets: int = Field(2_000_000, ge=1, description="More video packets than this fail permanently (too_many_packets).")
    time_limit_s: float = Field(1800, gt=0, description="Wall-clock limit of one attempt: its process is killed then, whatever the server does (time_limit, permanent).")
    total_time_limit_s: float = Field(3600, gt=0, description="Wall-clock limit of one video's download over all attempts and backoffs.")
    socket_timeout_s: float = Field(30, gt=0, description="A server that stops answering for this long fails the attempt transiently.")
    attempts: int = Field(3, ge=1, description="Attempts for transient failures, with jittered exponential backoff between them.")
    backoff_base_s: float = Field(2.0, ge=0, description="First backoff; doubles each attempt, jittered to 50-100%.")
    backoff_max_s: float = Field(120.0, ge=0)
    cookies: Path | None = Field(None, description="Netscape cookies file, passed to yt-dlp (needed for many real YouTube runs).")
    proxy: str | None = Field(None, description="Proxy URL, passed to yt-dlp; the proxy itself is always reachable.")
    rate_limit_bytes: int | None = Field(None, gt=0, description="Download rate limit in bytes/s, passed to yt-dlp.")
    extra_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Further yt-dlp YoutubeDL options, passed through; RESERVED_YTDLP_OPTIONS (files, commands, "
        "postprocessors, file:// and netrc access, limits) are refused.",
    )

    @field_validator("allow_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        """``a,b`` (how a key=value override spells a list) is the list [a, b]; one entry is a list of one."""
        if isinstance(value, str | int | float):
            return [part for part in (p.strip() for p in str(value).split(",")) if part]
        return value

    @field_validator("allow_hosts")
    @classmethod
    def _hosts_valid(cls, value: list[str]) -> list[str]:
        from curate.egress import parse_allow_entry

        for entry in value:
            parse_allow_entry(entry)  # raises ValueError naming the entry
        return value

    @field_validator("extra_options")
    @classmethod
    def _no_reserved_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        clash = RESERVED_YTDLP_OPTIONS & value.keys()
        if clash:
            raise ValueError(f"download.extra_options may not set {sorted(clash)}: the download stage owns them")
        return value


class SubtitlesConfig(_Section):
    """Sentence segmentation of subtitle tracks (see :mod:`curate.subtitles`)."""

    max_sentence_s: float = Field(12.0, gt=0, description="Unpunctuated speech is split into sentences no longer than this.")
    max_sentence_words: int = Field(40, ge=1)
    pause_split_s: float = Field(1.5, gt=0, description="A pause this long ends a sentence in unpunctuated (automatic) captions.")


class AnalysisConfig(_Section):
    """The single decode pass: shot detection and kept frames (see :mod:`curate.decode`)."""

    detector: Literal["fast", "content", "adaptive", "histogram", "hash", "scdet"] = Field(
        "fast",
        description="Shot detector (curate/shots.py). fast: PySceneDetect's adaptive rule over its content score, "
        "vectorised over batches of frames; content/adaptive/histogram/hash: PySceneDetect's own, frame by frame; scdet: ffmpeg's scene detector "
        "inside the decode. Accuracy and cost of each: bench/detector_accuracy.py.",
    )
    threshold: float | None = Field(None, description="Detector threshold; None keeps the detector's own default (fast: a 3.0 adaptive ratio, scdet: 10).")
    min_shot_s: float = Field(0.4, ge=0)
    detect_width: int = Field(96, ge=32, description="Frames are downscaled to this width (16:9 box) for detection; 96 finds every known cut (bench/detector_accuracy.py).")
    frame_rate: float = Field(2.0, gt=0, description="Frames kept per second of video (JPEG), the pool for caption, training and thumbnail frames.")
    frame_short_side: int = Field(256, ge=32)
    jpeg_quality: int = Field(3, ge=2, le=31, description="ffmpeg -q:v for kept frames (2 best, 31 worst).")
    threads: int = Field(
        0, ge=0,
        description="ffmpeg decoder threads; 0 lets the driver choose: one per CPU a clip worker reserves when "
        "workers run in parallel (every core already decodes, and frame threads only add ~20% CPU), else ffmpeg's own.",
    )  # fmt: skip
    time_limit_s: float = Field(3600, gt=0)


class ScaleConfig(_Section):
    min_s: float = Field(gt=0)
    max_s: float = Field(gt=0)
    target_s: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> ScaleConfig:
        if not self.min_s <= self.target_s <= self.max_s:
            raise ValueError(f"need min_s <= target_s <= max_s, got {self.min_s}, {self.target_s}, {self.max_s}")
        return self


class PlanConfig(_Section):
    """Nested multi-scale clip planning (see :mod:`curate.plan`)."""

    short: ScaleConfig = ScaleConfig(min_s=5, max_s=20, target_s=12)
    medium: ScaleConfig = ScaleConfig(min_s=20, max_s=45, target_s=30)
    long: ScaleConfig = ScaleConfig(min_s=45, max_s=120, target_s=60)
    max_silence_s: float = Field(10.0, ge=0, description="A pause in speech longer than this ends clips at every scale.")
    cut_snap_s: float = Field(
        1.0, ge=0, description="A boundary this close to a shot cut moves onto the cut: no clip opens or closes on a sliver of another shot."
    )
    keyframe_snap_frames: int = Field(
        2, ge=0, description="A boundary this many frames or fewer from a keyframe moves onto it (the clip then stores no pre-roll)."
    )


class CutConfig(_Section):
    """Writing clips (see :mod:`curate.cut`)."""

    mode: Literal["auto", "copy", "reencode"] = Field(
        "auto",
        description="copy: every clip a stream copy of the source with an MP4 edit list, exact to the frame at any GOP "
        "(readers must honour edit lists: docs/dataset-format.md). reencode: the decode pass also writes one "
        "low-resolution short-GOP H.264 intermediate and clips are stream copies of it (small self-contained clips). "
        "auto: copy unless the source's codec can't be stored in MP4.",
    )
    short_side: int = Field(360, ge=64, description="reencode: short side of the intermediate.")
    fps: float | None = Field(None, gt=0, description="reencode: output frame rate; None keeps the source's.")
    gop_s: float = Field(0.5, gt=0, description="reencode: keyframe interval, hence the boundary precision.")
    crf: int = Field(26, ge=0, le=51)
    preset: str = "veryfast"
    time_limit_s: float = Field(1800, gt=0)


class SamplesConfig(_Section):
    """What each WebDataset sample carries (see :mod:`curate.records`)."""

    frames_per_clip: int = Field(16, ge=1, description="K training frames per clip, at the middles of K equal segments.")
    caption_frame_rate: float = Field(0.1, gt=0, description="Caption frames per second of clip (at least one per short clip).")
    splits: dict[str, float] = Field(default_factory=lambda: {"train": 0.9, "val": 0.05, "test": 0.05})

    @field_validator("splits")
    @classmethod
    def _splits_valid(cls, value: dict[str, float]) -> dict[str, float]:
        if set(value) - {"train", "val", "test"} or "train" not in value:
            raise ValueError("splits must be a subset of train/val/test and include train")
        if any(v < 0 for v in value.values()) or abs(sum(value.values()) - 1.0) > 1e-6:
            raise ValueError("split fractions must be non-negative and sum to 1")
        return value


class ShardsConfig(_Section):
    max_samples: int = Field(1000, ge=1, description="A shard is closed after this many samples...")
    max_bytes: int = Field(512 * 1024**2, ge=1024, description="...or once it holds this many bytes, whichever comes first.")


class TextGenConfig(_Section):
    """Captions and summaries (see :mod:`curate.caption`): a VLM for short clips, an LLM for the rest."""

    vlm: BackendConfig = Field(VLM_DEFAULT, description="The short-clip captioner (curate.textgen.backend_configs: one class per backend).")
    llm: BackendConfig = Field(LLM_DEFAULT, description="The summariser of subtitles and of medium/long clips' child captions.")
    system_prompt: str = Field(SYSTEM_PROMPT, description="Tells the summariser that the delimited text is data, never instructions.")
    summary_prompt: str = Field(SUMMARY_PROMPT, description="The paper's summariser prompt; {max_words} is filled in.")
    caption_prompt: str = Field(CAPTION_PROMPT, description="The captioner's task; {max_words} is filled in.")
    summary_max_words: int = Field(25, ge=3, description="Word limit of summaries and of medium/long captions.")
    caption_max_words: int = Field(20, ge=3, description="Word limit of short-clip captions.")
    max_input_tokens: int = Field(1024, ge=16, description="Subtitle (or child-caption) text is cut to this many tokens before summarising.")
    max_caption_frames: int = Field(4, ge=1, description="At most this many caption frames per short clip (evenly chosen).")
    retry: bool = Field(True, description="Retry an empty, repeated or refusing answer once with a stricter prompt.")
    summary_fallback: Literal["none", "extractive"] = Field(
        "extractive",
        description="A subtitle summary that failed twice becomes the subtitle's first sentence (cut to the word limit), "
        "marked fallback=extractive in text_meta; none leaves it null.",
    )


class CurateConfig(_Section):
    """Everything the curation stages need; one per run."""

    sources: SourcesConfig = SourcesConfig()
    download: DownloadConfig = DownloadConfig()
    subtitles: SubtitlesConfig = SubtitlesConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    plan: PlanConfig = PlanConfig()
    cut: CutConfig = CutConfig()
    samples: SamplesConfig = SamplesConfig()
    shards: ShardsConfig = ShardsConfig()
    text: TextGenConfig = TextGenConfig()
    keep_workdirs: bool = Field(False, description="Keep each video's work directory after its clips are written (debugging).")


PIPELINE_ONLY_SECTIONS = ("ray",)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> CurateConfig:
    """Read a YAML config (or the defaults) and apply ``key.sub=value`` overrides.

    One file serves both drivers: the ``ray:`` section is the Ray pipeline's
    (``pipelines/config.py``) and the plain loop, which has no Ray, leaves it out.
    """
    data = config_data(path, overrides)
    for section in PIPELINE_ONLY_SECTIONS:
        data.pop(section, None)
    return CurateConfig.model_validate(with_defaults(CurateConfig(), data))
