"""The schema of a shard's ``.parquet`` index (``docs/dataset-format.md``, "Shard index").

The writer fills it and readers select shards by its columns (``split``) without opening a
tar, so both must agree on names and types.
"""

from __future__ import annotations

import pyarrow as pa

INDEX_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("video_id", pa.string()),
        ("url", pa.string()),
        ("scale", pa.string()),
        ("index", pa.int32()),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("duration", pa.float64()),
        ("parent", pa.string()),
        ("children", pa.list_(pa.string())),
        ("split", pa.string()),
        ("subtitle", pa.string()),
        ("caption", pa.string()),
        ("summary", pa.string()),
        ("fps", pa.float64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("has_audio", pa.bool_()),
        ("cut_mode", pa.string()),
        ("has_subtitle", pa.bool_()),
        ("has_caption", pa.bool_()),
        ("mp4_bytes", pa.int64()),
        ("sample_bytes", pa.int64()),
        ("offset", pa.int64()),
    ]
)
"""One row per sample of the sibling tar, in tar order; ``offset`` is the sample's first member header."""
