"""Zero-shot classification on Kinetics-400 and Something-Something v2 copies in their release formats.

The fixtures are written here: K400's CSV with the trimmed-clip names of the downloaders
(``{youtube_id}_{start:06d}_{end:06d}.mp4``), SSv2's ``labels.json`` and ``validation.json`` with
``{id}.webm``; the videos are one-second ffmpeg test patterns (lavfi), one encoding per
container copied under every name.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vidla_eval.benchmarks.records import BenchmarkFormatError
from vidla_eval.classification import load_classification, main, prompts, top_k_accuracy

K400_ROWS = [
    ("playing guitar", "abc123DEF45", 10, 20, "val"),
    ("abseiling", "x_y-z000001", 0, 10, "val"),
    ("playing guitar", "qqqqqqqqqqq", 125, 135, "val"),
    ("zumba", "-leadingdash", 3, 13, "val"),
]
SSV2_LABELS = {
    "Pushing something from left to right": "1",
    "Holding something": "0",
    "Tearing something": "2",
}
SSV2_VALIDATION = [
    {"id": "74225", "label": "pushing a cup from left to right", "template": "Pushing [something] from left to right",
     "placeholders": ["a cup"]},
    {"id": "116154", "label": "holding a pen", "template": "Holding [something]", "placeholders": ["a pen"]},
    {"id": "198186", "label": "tearing paper", "template": "Tearing [something]", "placeholders": ["paper"]},
]  # fmt: skip
TINY_CONFIG = "model:\n  preset: vidla-tiny\n"


def _lavfi(path: Path, codec: list[str]) -> None:
    cmd = [
        "ffmpeg",
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=96x64:r=8:d=1",
        *codec,
        str(path),
    ]
    subprocess.run(cmd, check=True)


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("classification")
    mp4, webm = base / "clip.mp4", base / "clip.webm"
    _lavfi(mp4, ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"])
    _lavfi(webm, ["-c:v", "libvpx", "-b:v", "200k"])
    k400 = base / "k400"
    (k400 / "annotations").mkdir(parents=True)
    lines = ["label,youtube_id,time_start,time_end,split"] + [",".join(map(str, r)) for r in K400_ROWS]
    (k400 / "annotations" / "validate.csv").write_text("\n".join(lines) + "\n")
    (k400 / "val").mkdir()
    for _, yid, start, end, _ in K400_ROWS:
        (k400 / "val" / f"{yid}_{start:06d}_{end:06d}.mp4").write_bytes(mp4.read_bytes())
    ssv2 = base / "ssv2"
    (ssv2 / "20bn-something-something-v2").mkdir(parents=True)
    (ssv2 / "labels.json").write_text(json.dumps(SSV2_LABELS))
    (ssv2 / "validation.json").write_text(json.dumps(SSV2_VALIDATION))
    for item in SSV2_VALIDATION:
        (ssv2 / "20bn-something-something-v2" / f"{item['id']}.webm").write_bytes(webm.read_bytes())
    return {"kinetics400": k400, "ssv2": ssv2}


def test_kinetics_reads_the_release_csv_and_the_trimmed_clip_names(roots: dict[str, Path]) -> None:
    split = load_classification("kinetics400", roots["kinetics400"])
    assert split.name == "kinetics400/val"
    assert split.classes == ["abseiling", "playing guitar", "zumba"]  # sorted names of the split
    assert split.labels == [1, 0, 1, 2]
    assert [v.path.name for v in split.videos][:2] == [
        "abc123DEF45_000010_000020.mp4",
        "x_y-z000001_000000_000010.mp4",
    ]


def test_ssv2_classes_follow_label_ids_and_videos_their_templates(roots: dict[str, Path]) -> None:
    split = load_classification("ssv2", roots["ssv2"])
    assert split.name == "ssv2/validation"
    assert split.classes == ["Holding something", "Pushing something from left to right", "Tearing something"]
    assert split.labels == [1, 0, 2]
    assert [v.path.name for v in split.videos] == ["74225.webm", "116154.webm", "198186.webm"]
    assert prompts(split.classes)[1] == "a video of pushing something from left to right."


def test_a_class_missing_from_labels_json_or_a_missing_video_is_an_error(
    roots: dict[str, Path], tmp_path: Path
) -> None:
    broken = tmp_path / "ssv2"
    broken.mkdir()
    (broken / "labels.json").write_text(json.dumps({"Holding something": "0"}))
    (broken / "validation.json").write_text(json.dumps(SSV2_VALIDATION[:2]))
    with pytest.raises(BenchmarkFormatError, match="not listed"):
        load_classification("ssv2", broken, missing="skip")
    (broken / "labels.json").write_text(json.dumps(SSV2_LABELS))
    with pytest.raises(FileNotFoundError, match="2 of 2 videos not found"):
        load_classification("ssv2", broken)


def test_top_k_counts_strictly_better_classes_and_breaks_ties_by_index() -> None:
    scores = np.array([[0.1, 0.9, 0.3], [0.5, 0.5, 0.5], [0.2, 0.1, 0.0]])
    labels = np.array([1, 2, 2])
    # row 0 right; row 1 ties everywhere, its label is last by index (rank 2); row 2 ranks last.
    assert top_k_accuracy(scores, labels, (1, 2, 3)) == pytest.approx(
        {"top1": 100 / 3, "top2": 100 / 3, "top3": 100.0}
    )


@pytest.mark.parametrize("dataset", ["kinetics400", "ssv2"])
def test_the_cli_evaluates_a_tiny_random_model_end_to_end(
    dataset: str, roots: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CONFIG)
    out = tmp_path / "eval"
    args = [
        "--config",
        str(config),
        "--dataset",
        dataset,
        "--root",
        str(roots[dataset]),
        "--output",
        str(out),
    ]
    main([*args, "--frames", "2", "--workers", "0", "--batch-size", "2", "--device", "cpu"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["format"] == "vidla-eval-classification/1"
    assert metrics["dataset"]["classes"] == 3 and metrics["results"]["videos"] == len(
        K400_ROWS if dataset == "kinetics400" else SSV2_VALIDATION
    )
    top1 = metrics["results"]["top1"]
    assert metrics["results"]["top5"] == 100.0  # three classes: always in the top five
    n = metrics["results"]["videos"]
    assert any(top1 == pytest.approx(100.0 * k / n) for k in range(n + 1))  # a share of the videos
    assert "top-1" in capsys.readouterr().out
