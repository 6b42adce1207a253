"""Ray Data wiring of the curation stages in ``curate/`` (which know nothing of Ray)."""
