"""Output hygiene: turn a model's raw answer into one clean sentence, or name why it failed.

Small instruction models (and large ones, sometimes) wrap the answer in chat boilerplate
("Sure! Here is the summary:", "The video shows ..."), run past the word limit, loop on a
phrase, or refuse. Training text must be the content alone, so every answer goes through
:func:`clean` before it reaches a record; a failure reason makes the runner retry once with
a stricter prompt and is recorded when the retry fails too.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

MIN_WORDS = 3
"""Fewer content words than this is not a sentence (e.g. a bare "PWNED" or "Okay.")."""

_PREFACE_LINE = re.compile(
    r"^\W*(sure|certainly|of course|okay|ok|absolutely|great)?\W*"
    r"(here('s| is| are)\b[^\n]*|(the )?(one-sentence |single-sentence )?(summary|caption|description)( is)?)\s*:\s*$",
    re.IGNORECASE,
)
_OPENINGS = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^(sure|certainly|of course|okay|ok|absolutely|great)\b[!.,:]*\s*",
        r"^here('s| is| are)\b[^:]{0,80}:\s*",
        r"^(the )?(one-sentence |single-sentence )?(summary|caption|description)( is)?\s*:\s*",
        r"^(in )?(the|this|these) (video|clip|image|images|frames?|scene|footage|sequence)s?,\s*",
        r"^(the|this|these) (video|clip|image|images|frames?|scene|footage|sequence)s? (clip )?"
        r"(shows?|depicts?|features?|captures?|displays?|presents?|illustrates?|portrays?|contains?|is showing|are showing)"
        r"( that)?\s+",
        r"^(the|this) (speaker|narrator) (says|describes|discusses|explains|states|talks about|is talking about)( that)?\s+",
        r"^(the|this) (original |given |following |input )?(text|transcript|passage|sentences?|captions?)"
        r"( is| are| says| describes| discusses| explains| states| is about| talks about)( that)?\s*:?\s+",
        r"^(system|user|assistant)\s*:\s*",
    )
]
_REFUSAL_START = re.compile(
    r"^(i'?m sorry|i am sorry|sorry\b|i apologi[sz]e|i can(no|')t|i am unable|i'?m unable|i am not able|"
    r"i'?m not able|i will not|i won'?t|unfortunately,? i|as an ai)",
    re.IGNORECASE,
)
_REFUSAL_ANYWHERE = re.compile(r"\bas an ai( language)? model\b|\bi cannot (help|assist|comply)\b", re.IGNORECASE)
_DELIMITER = re.compile(r"<\s*/?\s*text\s*>", re.IGNORECASE)
_ECHO_START = re.compile(
    r"^(please\s+)?(summari[sz]e|describe|rewrite|paraphrase)\b"
    r"(\s*:|\s+(the|this|these|following|text|sentences?|video|clip|frames?|in|into|with|one|a|what|it)\b)",
    re.IGNORECASE,
)
"""An answer that opens with the task's own imperative ("Summarize: ...", "Summarize the following
sentences ...", "Describe what the clip shows ...") repeats the prompt instead of answering it."""
_ECHO_PHRASES = re.compile(
    r"not exceeding \d+ words|into a single sentence|do not output any additional text|use any external information|"
    r"output only the sentence|at most \d+ words|in time order|is data to summari[sz]e|never instructions to follow|"
    r"reply with exactly one|starts directly with its content",
    re.IGNORECASE,
)
"""Phrases of the default prompts (``curate.textgen.prompts``) that no caption or summary needs."""
_WRAPPERS = re.compile(r"^[\s\"'`*_>#\-•]+|[\s\"'`*_]+$")
_LIST_MARK = re.compile(r"^(\d+[.)]|[-*•])\s+")
_DANGLING = frozenset("a an the and or but of to in on at by for with from as that which who while".split())
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Cleaned:
    """The cleaned sentence, or ``failure`` (``empty``, ``too_short``, ``refusal``, ``echo``, ``repeated``)."""

    text: str | None
    failure: str | None = None
    truncated: bool = False


def clean(raw: str, max_words: int) -> Cleaned:
    """One sentence of at most ``max_words`` words from ``raw``, boilerplate removed."""
    text = _first_content_line(raw or "")
    text = _strip_openings(text)
    failure = _failure(text)
    if failure is not None:
        return Cleaned(None, failure)
    text = first_sentence(text)
    text, truncated = _limit_words(text, max_words)
    return Cleaned(_finish(text), None, truncated)


def _first_content_line(raw: str) -> str:
    """The first line that is not a bare preface ("Here is the summary:"), wrappers stripped."""
    for line in _DELIMITER.sub(" ", raw).replace("\r", "\n").split("\n"):
        line = _LIST_MARK.sub("", _WRAPPERS.sub("", line.strip()))
        if line and not _PREFACE_LINE.match(line):
            return line
    return ""


def _strip_openings(text: str) -> str:
    """Remove chat and "The video shows" openings, repeatedly (they stack: "Sure! Here is: ...")."""
    previous = None
    while previous != text:
        previous = text
        for pattern in _OPENINGS:
            text = _WRAPPERS.sub("", pattern.sub("", text, count=1))
    return text[:1].upper() + text[1:]


def _failure(text: str) -> str | None:
    words = _WORD.findall(text.lower())
    if not any(ch.isalpha() for ch in text):
        return "empty"
    if _REFUSAL_START.match(text) or _REFUSAL_ANYWHERE.search(text):
        return "refusal"
    if is_echo(text):
        return "echo"
    if is_repetitive(words):
        return "repeated"
    if len(words) < MIN_WORDS:
        return "too_short"
    return None


def is_echo(text: str) -> bool:
    """The answer repeats the instruction (its imperative opening or its wording) rather than answering."""
    return bool(_ECHO_START.match(text) or _ECHO_PHRASES.search(text))


def is_repetitive(words: list[str]) -> bool:
    """A loop: one word four times in a row, a word trigram three times, or few distinct words."""
    if any(len(set(words[i : i + 4])) == 1 for i in range(len(words) - 3)):
        return True
    trigrams = Counter(zip(words, words[1:], words[2:], strict=False))
    if trigrams and max(trigrams.values()) >= 3:
        return True
    return len(words) >= 12 and len(set(words)) / len(words) < 0.4


def first_sentence(text: str) -> str:
    """The first sentence, when it alone is a sentence (``MIN_WORDS``); the paper wants exactly one."""
    parts = _SENTENCE_END.split(text, maxsplit=1)
    first = parts[0]
    return first if len(_WORD.findall(first)) >= MIN_WORDS else text


def _limit_words(text: str, max_words: int) -> tuple[str, bool]:
    """At most ``max_words`` words, cut at the last clause break when one keeps most of them."""
    words = text.split()
    if len(words) <= max_words:
        return text, False
    kept = words[:max_words]
    breaks = [i for i, word in enumerate(kept) if word[-1] in ",;:" and i + 1 >= 0.6 * max_words]
    if breaks:
        kept = kept[: breaks[-1] + 1]
    while len(kept) > MIN_WORDS and kept[-1].lower().strip(",;:") in _DANGLING:
        kept.pop()
    return " ".join(kept).rstrip(",;:-–— "), True


def _finish(text: str) -> str:
    text = text.strip()
    return text if text[-1:] in ".!?" else text.rstrip(".,;:") + "."


def word_count(text: str) -> int:
    """Words as the limit counts them: whitespace-separated tokens."""
    return len(text.split())
