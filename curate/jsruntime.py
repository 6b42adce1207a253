"""The JavaScript runtime yt-dlp needs for YouTube: the ``deno`` binary from the ``deno`` PyPI package.

Since yt-dlp 2025.11, YouTube's signature and ``n`` challenges are solved by running the
player's JavaScript (the solver ships in ``yt-dlp-ejs``, part of ``yt-dlp[default]``) in an
external runtime; without one, YouTube answers with storyboard images only or "Requested format
is not available". The project depends on the ``deno`` package, which installs the binary into
the environment's scripts directory, where yt-dlp looks first; :func:`js_runtimes` names it
explicitly anyway, so a ``pip install --user`` or ``--target`` install is found too.

Two details of running it inside a download attempt (:mod:`curate.download_limits`):

- The attempt's process has an address-space limit. V8 reserves its heap cages up front
  (about 32 GiB of *virtual* memory; measured: deno aborts with "Oilpan: CagedHeap
  reservation" under any limit up to 24 GiB), so deno is started through a small launcher that
  lifts the soft limit for deno alone and bounds its JavaScript heap with V8's own flag instead
  (``DENO_HEAP_MB``).
- yt-dlp runs deno without network, file or environment permissions (``deno run`` grants none
  unless asked), so the egress policy, which guards the Python process's connections, is not
  bypassed by it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

DENO_HEAP_MB = 512
"""V8 old-space cap of the challenge solver (it needs tens of MB for a player script)."""


def deno_binary() -> str | None:
    """The deno executable: the ``deno`` package's, else one on ``PATH``, else None."""
    try:
        from deno import find_deno_bin
    except ImportError:
        return shutil.which("deno")
    try:
        return find_deno_bin()
    except FileNotFoundError:
        return shutil.which("deno")


def js_runtimes() -> dict[str, dict[str, Any]]:
    """yt-dlp's ``js_runtimes`` option: deno through its launcher; yt-dlp's own default without deno."""
    binary = deno_binary()
    if binary is None:
        return {"deno": {}}
    return {"deno": {"path": str(launcher_for(binary))}}


def launcher_for(binary: str) -> Path:
    """The launcher of ``binary`` (see the module doc), written once per binary and reused.

    It lives in ``$VIDLA_CACHE/bin`` (default ``~/.cache/vidla-curate/bin``; the system temp
    directory when that is not writable), never in a download's work directory, and is
    published by renaming a complete file, so concurrent attempts never run half a script.
    """
    script = (
        "#!/bin/sh\n"
        "# Written by curate.jsruntime: V8 reserves ~32 GiB of address space, a download attempt allows less.\n"
        "ulimit -S -v unlimited 2>/dev/null || ulimit -S -v \"$(ulimit -H -v)\"\n"
        f"DENO_V8_FLAGS=--max-old-space-size={DENO_HEAP_MB} exec {_quoted(binary)} \"$@\"\n"
    )
    name = f"deno-{hashlib.sha256(script.encode()).hexdigest()[:12]}"
    for root in (_cache_bin(), Path(tempfile.gettempdir()) / "vidla-curate-bin"):
        launcher = root / name
        if launcher.is_file():
            return launcher
        try:
            root.mkdir(parents=True, exist_ok=True)
            staging = root / f".{name}.{os.getpid()}"
            staging.write_text(script)
            staging.chmod(0o755)
            os.replace(staging, launcher)
            return launcher
        except OSError:
            continue
    raise OSError("no writable directory for the deno launcher ($VIDLA_CACHE, the temp directory)")


def _cache_bin() -> Path:
    return Path(os.environ.get("VIDLA_CACHE") or Path.home() / ".cache" / "vidla-curate") / "bin"


def _quoted(path: str) -> str:
    """``path`` as one single-quoted shell word."""
    return "'" + os.fspath(path).replace("'", "'\"'\"'") + "'"
