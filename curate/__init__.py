"""Curation stages: plain Python, one module per stage, no Ray."""
