"""What the evaluation and fine-tuning command lines share: logging, and one line plus exit code 2
for a missing file or a bad value (a wrong path or split is the usual mistake, not a bug)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any


def run_cli(prog: str, parse_args: Callable[[list[str] | None], argparse.Namespace],
            run: Callable[[argparse.Namespace], Any], argv: list[str] | None = None) -> None:  # fmt: skip
    """``run(parse_args(argv))`` with INFO logging to stderr; FileNotFoundError/ValueError end as
    ``prog: message`` and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    args = parse_args(argv)
    try:
        run(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
