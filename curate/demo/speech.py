"""The demo corpus's speech: its sentences, their timing, and the subtitle files that carry them.

Manual tracks (VTT, SRT) hold one cue per sentence; automatic ones imitate YouTube's rolling
captions, word by word. :mod:`curate.demo.corpus` records every sentence's time in
``corpus.json``, so tests can compare what the pipeline reads with the truth.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

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
