"""What YouTube needs from this environment: a JS runtime yt-dlp finds, usable inside a download attempt.

YouTube itself is not reachable here; these check the parts that decide whether it would work:
yt-dlp's own report of its JS runtimes, the download options that point at the deno binary of
the ``deno`` package, deno actually running JavaScript under the address-space limit of a
download attempt, and the PO-token provider plugin that ``download.extra_options`` configures.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import yt_dlp

from curate.config import load_config
from curate.download_attempt import ydl_params
from curate.jsruntime import deno_binary, js_runtimes

ATTEMPT_MEMORY = load_config().download.memory_limit_bytes
SOLVER_ARGS = ["run", "--no-prompt", "--no-remote", "--no-config", "-"]  # how yt-dlp's deno provider runs scripts


def ytdlp_debug_header(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "yt_dlp", "-v", "--ignore-config", *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    return done.stdout + done.stderr


def test_ytdlp_reports_deno_and_its_solver_scripts_in_this_environment() -> None:
    header = ytdlp_debug_header()
    runtime = re.search(r"\[debug\] JS runtimes: (.*)", header)
    assert runtime is not None, header
    assert re.fullmatch(r"deno-(\d+)\.\d+\.\d+", runtime[1]) and int(re.match(r"deno-(\d+)", runtime[1])[1]) >= 2
    assert "yt_dlp_ejs-" in header, "yt-dlp[default]'s challenge solver scripts"


def test_download_options_name_the_deno_launcher(tmp_path: Path) -> None:
    params = ydl_params(load_config().download, tmp_path)
    launcher = Path(params["js_runtimes"]["deno"]["path"])
    assert launcher.stat().st_mode & 0o100 and list(tmp_path.iterdir()) == [], "nothing in the work dir"
    lines: list[str] = []

    class Log:
        def debug(self, message: str) -> None:
            lines.append(message)

        info = warning = error = debug

    with yt_dlp.YoutubeDL({**params, "verbose": True, "logger": Log()}):
        pass
    assert any(re.search(r"JS runtimes: deno-2\.", line) for line in lines), lines
    chosen = ydl_params(load_config(None, ["download.extra_options={js_runtimes: {node: {}}}"]).download, tmp_path)
    assert chosen["js_runtimes"] == {"node": {}}, "a configured runtime wins"


def run_under_attempt_limit(cmd: list[str], script: str) -> subprocess.CompletedProcess[str]:
    """``cmd`` with the download attempt's address-space limit (soft; curate.download_limits)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ATTEMPT_MEMORY, resource.RLIM_INFINITY))

    return subprocess.run(cmd, input=script, capture_output=True, text=True, timeout=120, preexec_fn=limit)  # the limit must hold in the child only


def test_deno_solves_javascript_inside_a_download_attempts_memory_limit() -> None:
    binary = deno_binary()
    assert binary is not None and Path(binary).is_file()
    launcher = js_runtimes()["deno"]["path"]
    script = "const n = [...'challenge'].reverse().join(''); console.log(n, 6 * 7);"
    done = run_under_attempt_limit([launcher, *SOLVER_ARGS], script)
    assert (done.returncode, done.stdout.strip()) == (0, "egnellahc 42"), done.stderr[-500:]
    # Why the launcher exists: V8 reserves more address space than an attempt may have.
    bare = run_under_attempt_limit([binary, *SOLVER_ARGS], script)
    assert bare.returncode != 0 and "out of memory" in bare.stderr.lower()


def test_solver_scripts_get_no_network() -> None:
    launcher = js_runtimes()["deno"]["path"]
    script = "try { await fetch('http://127.0.0.1:8080/'); console.log('fetched'); } catch (e) { console.log(e.name); }"
    done = run_under_attempt_limit([launcher, *SOLVER_ARGS], script)
    assert done.stdout.strip() == "NotCapable", done.stdout + done.stderr[-300:]


def test_the_po_token_provider_plugin_is_loaded_and_configured_through_extra_options() -> None:
    from yt_dlp.extractor.youtube.pot._registry import _pot_providers
    from yt_dlp.plugins import load_all_plugins

    load_all_plugins()
    assert "bgutil:http" in {p.PROVIDER_NAME for p in _pot_providers.value.values()}
    config = load_config(None, ["download.extra_options={extractor_args: {youtubepot-bgutilhttp: {base_url: [http://pot:4416]}}}"])
    params = ydl_params(config.download, Path("/nonexistent"))
    assert params["extractor_args"] == {"youtubepot-bgutilhttp": {"base_url": ["http://pot:4416"]}}


@pytest.mark.parametrize("name", ["yt-dlp-ejs", "deno", "bgutil-ytdlp-pot-provider"])
def test_youtube_dependencies_are_declared(name: str) -> None:
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    declared = " ".join(project["dependencies"] + sum(project["optional-dependencies"].values(), []))
    assert name in declared or (name == "yt-dlp-ejs" and "yt-dlp[default]" in declared)
