"""Specification of the Subtitles stage: subtitle files into timed sentences."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from curate.config import SubtitlesConfig
from curate.errors import CurateError
from curate.subtitles import (
    Cue,
    Sentence,
    collapse_rolling,
    load_sentences,
    parse_subtitles,
    segment_sentences,
)

FIXTURES = Path(__file__).parent / "fixtures" / "subtitles"
YOUTUBE_AUTO = FIXTURES / "youtube_auto.en.vtt"
MANUAL_VTT = FIXTURES / "manual.en.vtt"
MANUAL_SRT = FIXTURES / "manual.en.srt"
DEFAULTS = SubtitlesConfig()


def texts(items: list[Cue] | list[Sentence]) -> list[str]:
    return [item.text for item in items]


def spans(items: list[Cue] | list[Sentence]) -> list[tuple[float, float]]:
    return [(item.start, item.end) for item in items]


# --------------------------------------------------------------------------- parsing


def test_vtt_cues_have_times_in_seconds_and_plain_text() -> None:
    cues = parse_subtitles(MANUAL_VTT)
    assert spans(cues) == [(1.0, 3.5), (3.6, 6.0), (6.5, 9.0), (9.0, 12.0)]
    assert texts(cues) == [
        "Mr. Smith rode 3.5 km to work.",
        "- Did you fix it? - Yes, I did.",
        "Tom & Jerry watched the race…",
        '"It\'s over," she said. "Go home."',
    ]


def test_srt_markup_is_removed_and_cues_are_sorted() -> None:
    cues = parse_subtitles(MANUAL_SRT)
    assert texts(cues) == [
        "First line, second line.",
        "The cue written out of order.",
        "The third cue <is> here!",
        "Last one.",
    ]
    assert spans(cues) == [(1.0, 3.0), (3.0, 4.5), (5.0, 7.5), (10.0, 11.0)]


def test_youtube_inline_word_timestamps_and_c_tags_are_removed() -> None:
    cues = parse_subtitles(YOUTUBE_AUTO)
    assert cues[0] == Cue(0.16, 2.869, "welcome back to the channel")
    assert all("<" not in cue.text and "  " not in cue.text for cue in cues)


def test_cues_ending_before_they_start_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "backwards.srt"
    path.write_text(
        "1\n00:00:05,000 --> 00:00:04,000\nBackwards.\n\n2\n00:00:06,000 --> 00:00:07,000\nForwards.\n"
    )
    assert parse_subtitles(path) == [Cue(6.0, 7.0, "Forwards.")]


def test_format_is_sniffed_for_other_extensions(tmp_path: Path) -> None:
    vtt_as_txt = shutil.copy(MANUAL_VTT, tmp_path / "track.txt")
    srt_as_sub = shutil.copy(MANUAL_SRT, tmp_path / "track.sub")
    assert parse_subtitles(vtt_as_txt) == parse_subtitles(MANUAL_VTT)
    assert parse_subtitles(srt_as_sub) == parse_subtitles(MANUAL_SRT)


def test_byte_order_mark_and_crlf_line_endings_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "windows.vtt"
    path.write_bytes(b"\xef\xbb\xbfWEBVTT\r\n\r\n00:00:01.000 --> 00:00:02.000\r\nHello &lt;world&gt;\r\n")
    assert parse_subtitles(path) == [Cue(1.0, 2.0, "Hello <world>")]


MALFORMED = {
    "garbage.vtt": bytes(range(256)) * 8,
    "garbage.srt": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200),
    "empty.vtt": b"",
    "empty.srt": b"",
    "no_header.vtt": b"00:00:01.000 --> 00:00:02.000\nHello\n",
    "bad_times.vtt": b"WEBVTT\n\n00:00:01.000 --> 00:99:02.000\nHello\n\n1:2:3 --> later\nWorld\n",
    "bad_times.srt": b"1\n00:00:01,000 --> soon\nHello\n\n2\nyesterday --> 00:00:02,000\nWorld\n",
    "page.vtt": b"<!DOCTYPE html><html><body>429 Too Many Requests</body></html>\n",
    "header_only.vtt": b"WEBVTT\nKind: captions\nLanguage: en\n",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_files_raise_malformed_subtitles_only(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(MALFORMED[name])
    with pytest.raises(CurateError) as caught:
        parse_subtitles(path)
    assert caught.value.code == "malformed_subtitles"
    assert not caught.value.is_transient
    assert caught.value.message.startswith(f"{name}: ")


def test_missing_file_is_malformed_subtitles_too(tmp_path: Path) -> None:
    with pytest.raises(CurateError, match="malformed_subtitles: gone.vtt: cannot be read"):
        parse_subtitles(tmp_path / "gone.vtt")


# --------------------------------------------------------------------------- rolling captions


def test_rolling_youtube_captions_give_each_line_once_timed_when_first_shown() -> None:
    lines = collapse_rolling(parse_subtitles(YOUTUBE_AUTO))
    assert lines == [
        Cue(0.16, 2.869, "welcome back to the channel"),
        Cue(2.879, 5.03, "today we're going to fix a flat tire"),
        Cue(5.04, 7.12, "on my old road bike"),
        Cue(9.8, 12.31, "first take the wheel off the frame"),
        Cue(12.32, 14.5, "and let the rest of the air out"),
        Cue(14.51, 16.0, "then pop the tire with a lever"),
    ]


@pytest.mark.parametrize("fixture", [MANUAL_VTT, MANUAL_SRT])
def test_collapse_is_a_no_op_on_manual_subtitles(fixture: Path) -> None:
    cues = parse_subtitles(fixture)
    assert collapse_rolling(cues) == cues


def test_collapse_keeps_manual_cues_that_share_a_word_or_repeat() -> None:
    cues = [Cue(0, 1, "I said no"), Cue(1, 2, "no way"), Cue(2, 3, "Fine."), Cue(3, 4, "Fine.")]
    assert collapse_rolling(cues) == cues


def test_collapse_of_nothing_is_nothing() -> None:
    assert collapse_rolling([]) == []


# --------------------------------------------------------------------------- sentences


def test_sentences_end_at_punctuation_with_interpolated_word_times() -> None:
    # 28 characters over 10 s: "there." ends at character 12, "General" starts at 13.
    sentences = segment_sentences([Cue(0.0, 10.0, "Hello there. General Kenobi!")], DEFAULTS)
    assert sentences == [Sentence(0.0, 4.286, "Hello there."), Sentence(4.643, 10.0, "General Kenobi!")]


def test_sentences_span_cues() -> None:
    cues = [Cue(0.0, 2.0, "This sentence spans"), Cue(2.0, 4.0, "two cues. And"), Cue(4.0, 5.0, "ends here?")]
    sentences = segment_sentences(cues, DEFAULTS)
    assert texts(sentences) == ["This sentence spans two cues.", "And ends here?"]
    assert sentences[0].start == 0.0 and sentences[1].end == 5.0
    assert sentences[0].end < sentences[1].start


def test_abbreviations_and_decimals_do_not_end_sentences() -> None:
    text = "Mr. Smith and Dr. Jones rode 3.5 km, e.g. on the U.S. coast. Then they rested."
    sentences = segment_sentences([Cue(0.0, 8.0, text)], DEFAULTS)
    assert texts(sentences) == [
        "Mr. Smith and Dr. Jones rode 3.5 km, e.g. on the U.S. coast.",
        "Then they rested.",
    ]


def test_quotes_after_the_full_stop_and_ellipses_end_sentences() -> None:
    sentences = segment_sentences([Cue(0.0, 6.0, '"Go home." She left… Why? Because!')], DEFAULTS)
    assert texts(sentences) == ['"Go home."', "She left…", "Why?", "Because!"]


def test_manual_fixture_sentences() -> None:
    sentences = segment_sentences(collapse_rolling(parse_subtitles(MANUAL_VTT)), DEFAULTS)
    assert texts(sentences) == [
        "Mr. Smith rode 3.5 km to work.",
        "- Did you fix it?",
        "- Yes, I did.",
        "Tom & Jerry watched the race…",
        '"It\'s over," she said.',
        '"Go home."',
    ]
    assert sentences[0] == Sentence(1.0, 3.5, "Mr. Smith rode 3.5 km to work.")


def test_unpunctuated_captions_split_at_pauses_between_cues() -> None:
    sentences = segment_sentences(collapse_rolling(parse_subtitles(YOUTUBE_AUTO)), DEFAULTS)
    assert sentences == [
        Sentence(
            0.16, 7.12, "welcome back to the channel today we're going to fix a flat tire on my old road bike"
        ),
        Sentence(
            9.8,
            16.0,
            "first take the wheel off the frame and let the rest of the air out then pop the tire with a lever",
        ),
    ]


def test_a_shorter_pause_threshold_splits_more() -> None:
    cues = [Cue(0.0, 1.0, "one two"), Cue(1.6, 2.0, "three"), Cue(4.0, 5.0, "four")]
    assert texts(segment_sentences(cues, SubtitlesConfig(pause_split_s=0.5))) == ["one two", "three", "four"]
    assert texts(segment_sentences(cues, SubtitlesConfig(pause_split_s=1.5))) == ["one two three", "four"]


def test_punctuated_text_is_not_split_at_pauses_mid_sentence() -> None:
    cues = [Cue(0.0, 2.0, "I went to the"), Cue(5.0, 7.0, "store yesterday."), Cue(7.0, 8.0, "It was shut.")]
    assert texts(segment_sentences(cues, DEFAULTS)) == ["I went to the store yesterday.", "It was shut."]


def test_overlong_sentences_split_at_the_largest_gap() -> None:
    cues = [Cue(0.0, 2.0, "one two three"), Cue(2.2, 4.0, "four five"), Cue(5.0, 7.0, "six seven eight")]
    sentences = segment_sentences(cues, SubtitlesConfig(max_sentence_s=4.5))
    assert sentences == [Sentence(0.0, 4.0, "one two three four five"), Sentence(5.0, 7.0, "six seven eight")]


def test_overlong_sentences_without_pauses_split_evenly_by_words() -> None:
    words = " ".join(f"w{i:02d}" for i in range(20))
    sentences = segment_sentences([Cue(0.0, 10.0, words)], SubtitlesConfig(max_sentence_words=10))
    assert [len(sentence.text.split()) for sentence in sentences] == [10, 10]
    assert " ".join(texts(sentences)) == words
    assert sentences[0].end <= sentences[1].start


def test_every_piece_respects_both_limits_and_keeps_word_order() -> None:
    cues = [Cue(float(i), i + 0.9, f"word{i} and more words here") for i in range(30)]
    config = SubtitlesConfig(max_sentence_s=4.0, max_sentence_words=7)
    sentences = segment_sentences(cues, config)
    assert " ".join(texts(sentences)) == " ".join(cue.text for cue in cues)
    assert all(len(s.text.split()) <= 7 and s.end - s.start <= 4.0 for s in sentences)
    assert all(a.end <= b.start for a, b in zip(sentences, sentences[1:], strict=False))


def test_no_cues_no_sentences() -> None:
    assert segment_sentences([], DEFAULTS) == []


# --------------------------------------------------------------------------- load_sentences


def test_load_sentences_runs_the_whole_stage() -> None:
    sentences, warning = load_sentences(YOUTUBE_AUTO, DEFAULTS)
    assert warning is None
    assert len(sentences) == 2 and sentences[0].text.startswith("welcome back to the channel today")


def test_load_sentences_turns_a_malformed_file_into_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "broken.en.vtt"
    path.write_bytes(b"\x00\xff\xfe garbage")
    sentences, warning = load_sentences(path, DEFAULTS)
    assert sentences == []
    assert warning is not None and warning.startswith("malformed_subtitles: broken.en.vtt: ")


def test_a_cue_with_a_bad_timestamp_is_skipped_not_the_whole_track(tmp_path: Path) -> None:
    path = tmp_path / "one_typo.vtt"
    path.write_text(
        "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nKept.\n\n00:00:03.000 --> 00:61:04.000\nTypo.\n"
    )
    assert parse_subtitles(path) == [Cue(1.0, 2.0, "Kept.")]


def test_a_very_long_run_with_growing_gaps_is_split_without_recursion_limits() -> None:
    # Each gap is clearly larger than the one before, so every cut peels off the last word:
    # 1500 cuts, deeper than Python's recursion limit.
    cues, t = [], 0.0
    for i in range(2500):
        cues.append(Cue(t, t + 0.5, f"w{i}"))
        t += 0.5 + 0.06 * i
    config = SubtitlesConfig(max_sentence_s=1e9, max_sentence_words=1000, pause_split_s=1e9)
    sentences = segment_sentences(cues, config)
    assert " ".join(texts(sentences)) == " ".join(cue.text for cue in cues)
    assert len(sentences) == 1501 and len(sentences[0].text.split()) == 1000


def test_cues_with_blank_text_are_ignored_when_segmenting() -> None:
    assert segment_sentences([Cue(0.0, 1.0, " "), Cue(1.0, 2.0, "Hi.")], DEFAULTS) == [
        Sentence(1.0, 2.0, "Hi.")
    ]
