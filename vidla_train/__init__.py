"""Training VidLA on the curated shards: ``python -m vidla_train.train --config configs/train/...``.

* :mod:`vidla_train.train`: the CLI and the loop (data, model, checkpoints, periodic zero-shot evaluation).
* :mod:`vidla_train.train_step`: one optimisation step (loss, scaler, clipping, schedule), shared with
  ``bench/temporal_benchmark.py``.
* :mod:`vidla_train.train_metrics`, :mod:`vidla_train.schedule`: logged metrics and the LR schedule.

It builds on :mod:`vidla` (the model library) and runs :mod:`vidla_eval`'s benchmarks during training.
"""
