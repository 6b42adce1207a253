"""Evaluating VidLA: ``python -m vidla_eval.eval_retrieval`` (``make eval-retrieval``).

* :mod:`vidla_eval.eval_retrieval`: the CLI; :mod:`vidla_eval.eval_model`: a checkpoint or a CLIP
  baseline as an encoder.
* :mod:`vidla_eval.metrics`: exact retrieval metrics (ties against the query, multi-caption, DSL beside plain).
* :mod:`vidla_eval.benchmarks`: MSR-VTT, DiDeMo, ActivityNet Captions, MSVD and VATEX (one reader each, a registry).
* :mod:`vidla_eval.retrieval_plot`, :mod:`vidla_eval.result_files`: the plot and results, to a directory or URI.

It builds on :mod:`vidla` and never imports the trainer (:mod:`vidla_train`).
"""
