"""The standard text-video retrieval benchmarks, read from local copies in their usual formats.

Each benchmark is read from the annotation files that CLIP4Clip, CLIP-ViP and most
open-source retrieval code use, so numbers are comparable with the literature. All
loaders return one :class:`RetrievalSplit`: the split's videos, its texts, and for each
text the index of its video (several texts may share a video: MSVD and VATEX have many
captions per video). ``docs/benchmarks.md`` says where to get each file and how to lay
the files out.

=============  ==========================================  ============================
benchmark      annotation files (under ``root``)           standard test (``"test"``)
=============  ==========================================  ============================
``msrvtt``     ``MSRVTT_JSFUSION_test.csv``,               1k-A: 1,000 videos, one
               ``MSRVTT_train.9k.csv`` (``.7k``),           sentence each
               ``MSRVTT_data.json``
``didemo``     ``{train,val,test}_data.json``              ``test_data.json``, paragraph
                                                           to video
``activitynet`` ``train.json``, ``val_1.json``, ``val_2.json`` ``val_1.json``, paragraph to
                                                           video
``msvd``       ``raw-captions.pkl``,                       ``test_list.txt``: 670 videos,
               ``{train,val,test}_list.txt``               ~40 captions each
``vatex``      ``vatex_training_v1.0.json``,               ``test_list.txt``: the common
               ``vatex_validation_v1.0.json``,             1,500 videos of the public
               ``{test,val}_list.txt``                     validation set, 10 captions each
=============  ==========================================  ============================

Videos are found by file stem in the usual places (:mod:`vidla_eval.benchmarks.video_files`). A
missing video is an error listing how many are missing and the first few: the test sets
are fixed-size, and silently dropping videos changes the numbers. ``missing="skip"`` drops them explicitly (logged, and kept
in :attr:`RetrievalSplit.skipped_videos`), for training sets with dead YouTube links.

:class:`BenchmarkVideos` decodes one split for evaluation (middle frame of T equal
segments, centre crop); :class:`BenchmarkTrainDataset` fine-tunes on a split through the
trainer with batches in exactly :class:`vidla.data.ClipDataset`'s format.

One module per benchmark (``msrvtt``, ``didemo``, ``activitynet``, ``msvd``, ``vatex``)
reads its annotations and declares its splits; :mod:`~vidla_eval.benchmarks.registry` lists
them by name; :mod:`~vidla_eval.benchmarks.video_files` finds the files,
:mod:`~vidla_eval.benchmarks.decoding` decodes them, :mod:`~vidla_eval.benchmarks.datasets` serves
them to evaluation and fine-tuning. A new benchmark is a module with a reader and a
``BENCHMARK``, one line in the registry, and its name in ``vidla.config.BenchmarkName``.
"""

from vidla_eval.benchmarks.datasets import BenchmarkTrainDataset, BenchmarkVideos
from vidla_eval.benchmarks.decoding import decode_video, video_duration
from vidla_eval.benchmarks.didemo import DIDEMO_ANNOTATED_S
from vidla_eval.benchmarks.msvd import load_msvd_captions
from vidla_eval.benchmarks.records import (
    VIDEO_EXTENSIONS,
    Benchmark,
    BenchmarkFormatError,
    BenchmarkVideo,
    RetrievalSplit,
)
from vidla_eval.benchmarks.registry import BENCHMARKS, load_benchmark
from vidla_eval.benchmarks.video_files import video_index

__all__ = [
    "BENCHMARKS",
    "DIDEMO_ANNOTATED_S",
    "VIDEO_EXTENSIONS",
    "Benchmark",
    "BenchmarkFormatError",
    "BenchmarkTrainDataset",
    "BenchmarkVideo",
    "BenchmarkVideos",
    "RetrievalSplit",
    "decode_video",
    "load_benchmark",
    "load_msvd_captions",
    "video_duration",
    "video_index",
]
