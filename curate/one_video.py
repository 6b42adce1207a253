"""One video end to end: download, subtitles, one decode, plan, cut, records.

:func:`curate_video` is the unit of work the plain loop (:mod:`curate.run`) and the Ray
pipeline both schedule. It never raises for a bad video: every failure becomes a
classified :class:`~curate.ledger.VideoStatus`.
"""

from __future__ import annotations

import resource
import shutil
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from curate.config import CurateConfig
from curate.cut import MP4_VIDEO_CODECS, CutClip, cut_clips
from curate.decode import analyze
from curate.download import Downloaded, download
from curate.download_limits import attempts_cpu_seconds
from curate.errors import CurateError, permanent
from curate.ledger import VideoStatus
from curate.plan import ClipPlan, plan_clips
from curate.probe import MediaInfo, probe
from curate.records import Sample, VideoContext, build_samples, split_for
from curate.sources import SourceRow
from curate.subtitles import Sentence, load_sentences
from vidla_format.layout import SCALES, clip_key

CLIPS_DIR = "clips"


@dataclass
class VideoResult:
    status: VideoStatus
    samples: list[Sample] = field(default_factory=list)
    workdir: Path | None = None

    def cleanup(self) -> None:
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def choose_cut_mode(media: MediaInfo, config: CurateConfig) -> str:
    """``copy`` (exact clips by stream copy with edit lists, at any GOP) unless MP4 can't hold the codec.

    Sparse keyframes no longer force a re-encode: a clip that starts between keyframes
    stores its pre-roll and hides it with an edit list.
    """
    if config.cut.mode != "auto":
        return config.cut.mode
    return "copy" if media.video_codec in MP4_VIDEO_CODECS else "reencode"


def curate_video(source: SourceRow, config: CurateConfig, work_root: Path) -> VideoResult:
    """Turn one source URL into samples of every scale, or a classified failure."""
    status, got, workdir = fetch_video(source, config, work_root)
    if got is None:
        return VideoResult(status, [], None)
    return process_video(source, got, status, config, workdir)


def cpu_seconds() -> float:
    """CPU time of this process, its finished children (ffmpeg runs are waited for, so they count) and
    its download attempts (forked by a zygote, so reported by it)."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage) + attempts_cpu_seconds()


def fetch_video(source: SourceRow, config: CurateConfig, work_root: Path) -> tuple[VideoStatus, Downloaded | None, Path]:
    """The download half: a fresh work directory holding the video, or a failed status (and no directory).

    A row that is not pending (refused by the planner, or a playlist expanded into entries) is not
    downloaded: its ledger row travels to the sink like a failure's, so every input row gets one."""
    if source.status != "pending":
        return source.ledger_row(), None, work_root / source.video_id
    status = VideoStatus(url=source.url, video_id=source.video_id, input_row=source.row, expanded_from=source.expanded_from)
    workdir = work_root / source.video_id
    started, cpu_started = time.monotonic(), cpu_seconds()
    got = None
    with _recording_failures(status):
        if workdir.exists():
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True)
        got = download(source.url, source.video_id, workdir, config.download)
        status.attempts = got.attempts
    status.download_s = status.total_s = round(time.monotonic() - started, 3)
    status.cpu_s = status.download_cpu_s = round(cpu_seconds() - cpu_started, 3)
    if got is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return status, got, workdir


def process_video(
    source: SourceRow, got: Downloaded, status: VideoStatus, config: CurateConfig, workdir: Path
) -> VideoResult:
    """The processing half: subtitles, the one decode, plan, cut, records (never raises)."""
    started, cpu_started = time.monotonic(), cpu_seconds()
    samples: list[Sample] = []
    with _recording_failures(status):
        samples = _process_stages(source, got, config, workdir, status)
    status.total_s = round(status.download_s + time.monotonic() - started, 3)
    status.cpu_s = round(status.cpu_s + cpu_seconds() - cpu_started, 3)
    if status.status == "failed" and not config.keep_workdirs:
        shutil.rmtree(workdir, ignore_errors=True)
        return VideoResult(status, [], None)
    return VideoResult(status, samples, workdir)


@contextmanager
def _recording_failures(status: VideoStatus) -> Iterator[None]:
    """Turn any failure inside the block into a classified failed status."""
    try:
        yield
    except CurateError as exc:
        _fail(status, exc.error_class, exc.code, exc.message, getattr(exc, "attempts", None))
    except Exception as exc:  # a bug must cost one video, not the run; a rerun retries it
        _fail(status, "transient", "internal_error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")


def _fail(status: VideoStatus, error_class: str, code: str, message: str, attempts: int | None = None) -> None:
    status.status, status.error_class, status.error_code, status.error = "failed", error_class, code, message
    if attempts is not None:
        status.attempts = attempts


def _process_stages(
    source: SourceRow, got: Downloaded, config: CurateConfig, workdir: Path, status: VideoStatus
) -> list[Sample]:
    sentences = _sentences(got, config, status)
    media = got.media
    status.duration = round(media.duration, 3)
    status.cut_mode = choose_cut_mode(media, config)
    t1, c1 = time.monotonic(), cpu_seconds()
    reencode = config.cut if status.cut_mode == "reencode" else None
    analysis = analyze(got.video_path, media, workdir, config.analysis, reencode)
    cut_file = analysis.intermediate or got.video_path
    cut_media = probe(cut_file) if analysis.intermediate else media
    status.analyze_s, status.analyze_cpu_s = round(time.monotonic() - t1, 3), round(cpu_seconds() - c1, 3)
    plan = plan_clips(cut_media.duration, sentences, analysis.cuts, cut_media.keyframes, cut_media.fps, config.plan)
    if plan.total == 0:
        raise _no_clips(media, config, bool(sentences))
    t2, c2 = time.monotonic(), cpu_seconds()
    files = _cut_all(source.video_id, plan, cut_file, cut_media, workdir, config)
    status.cut_s, status.cut_cpu_s = round(time.monotonic() - t2, 3), round(cpu_seconds() - c2, 3)
    status.preroll_s = round(sum(c.preroll_s for c in files.values()), 3)
    for scale in SCALES:
        setattr(status, f"clips_{scale}", plan.count(scale))
    ctx = VideoContext(
        video_id=source.video_id,
        url=source.url,
        split=split_for(source.video_id, config.samples.splits),
        source=_source_meta(got, media),
        subtitle_language=got.subtitle_language if sentences else None,
        subtitle_kind=got.subtitle_kind if sentences else None,
        has_subtitles=bool(sentences),
        cut_mode=status.cut_mode,
    )
    return build_samples(ctx, plan, files, cut_media, analysis, config.samples.frames_per_clip, config.samples.caption_frame_rate)


def _sentences(got: Downloaded, config: CurateConfig, status: VideoStatus) -> list[Sentence]:
    if got.subtitle_path is None:
        status.subtitle_warning = got.subtitle_warning
        return []
    sentences, warning = load_sentences(got.subtitle_path, config.subtitles)
    status.subtitle_warning = warning
    status.has_subtitles = bool(sentences)
    if sentences:
        status.subtitle_language, status.subtitle_kind = got.subtitle_language, got.subtitle_kind
    return sentences


def _no_clips(media: MediaInfo, config: CurateConfig, had_sentences: bool) -> CurateError:
    if media.duration < config.plan.short.min_s:
        return permanent(
            "too_short", f"the video lasts {media.duration:.1f} s, less than the shortest clip ({config.plan.short.min_s:g} s)"
        )
    basis = "its speech (subtitle sentences)" if had_sentences else "its shots"
    return permanent("no_clips", f"no clip of {config.plan.short.min_s:g}-{config.plan.short.max_s:g} s fits {basis}")


def _cut_all(
    video_id: str, plan: ClipPlan, cut_file: Path, cut_media: MediaInfo, workdir: Path, config: CurateConfig
) -> dict[tuple[str, int], CutClip]:
    """Every clip of every scale, by stream copy, in as few ffmpeg runs as the cutter allows."""
    out_dir = workdir / CLIPS_DIR
    out_dir.mkdir(exist_ok=True)
    clips = [c for scale in SCALES for c in plan.clips[scale]]
    paths = [out_dir / f"{clip_key(video_id, c.scale, c.index)}.mp4" for c in clips]
    cut = cut_clips(cut_file, [(c.start, c.end) for c in clips], paths, cut_media, config.cut.time_limit_s)
    return {(c.scale, c.index): piece for c, piece in zip(clips, cut, strict=True)}


def _source_meta(got: Downloaded, media: MediaInfo) -> dict:
    info = got.info
    return {
        "title": info.get("title"),
        "duration": round(media.duration, 3),
        "width": media.width,
        "height": media.height,
        "fps": round(media.fps, 6),
        "extractor": info.get("extractor"),
        "uploader": info.get("uploader"),
        "upload_date": info.get("upload_date"),
        "license": info.get("license"),
    }
