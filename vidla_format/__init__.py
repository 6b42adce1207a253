"""The dataset format both halves share: curation writes it, the model reads it.

``layout`` (scales, names, file names, ``FORMAT_VERSION``), ``index`` (the shard index schema),
``commits`` (the commit rule: which shards exist), ``storage`` (local or object storage, every write
all-or-nothing) and ``config_files`` (YAML plus ``key.sub=value`` overrides). The package imports
neither ``curate``, ``pipelines`` nor any ``vidla*`` package (``tests/test_import_rules.py``), so
a reader needs none of the curation dependencies and the two halves cannot drift apart.
The contract itself is ``docs/dataset-format.md``.
"""
