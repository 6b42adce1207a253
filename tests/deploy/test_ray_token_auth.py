"""A Ray 2.60 head with token authentication on, and `ray job submit` as the README and docs/deploy.md write it.

The head runs on loopback with its own temporary directory, ports and HOME (so its token file is
``HOME/.ray/auth_token`` of this test, never the user's), started with ``--block`` in a session of
its own and stopped by signalling that session: ``ray stop`` would stop every Ray on the machine.
The token reaches the client the documented way: ``RAY_AUTH_MODE=token`` plus the token file
(``RAY_AUTH_TOKEN_PATH``) or its value (``RAY_AUTH_TOKEN``); without them the submission is refused.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

RAY = str(Path(sys.executable).with_name("ray"))
JOB = "import ray; ray.init(); print('job saw', int(ray.cluster_resources()['CPU']), 'CPU')"
pytestmark = pytest.mark.timeout(400)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0", PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    return env


def wait_for_dashboard(url: str, timeout_s: float = 180) -> None:
    """Until the dashboard answers at all: with auth on, an anonymous request gets 401."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/api/version", timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"no dashboard at {url}")


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """``ray get-auth-token --generate`` then ``RAY_AUTH_MODE=token ray start --head``, as docs/deploy.md says."""
    home = tmp_path_factory.mktemp("head-home")
    env = base_env(home) | {"RAY_AUTH_MODE": "token"}
    subprocess.run([RAY, "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=60)
    token = home / ".ray" / "auth_token"
    gcs, dashboard = free_port(), free_port()
    cmd = [RAY, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={gcs}", "--num-cpus=1",
           "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
           f"--temp-dir={tmp_path_factory.mktemp('ray')}", "--disable-usage-stats"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{dashboard}"
        wait_for_dashboard(url)
        yield {"url": url, "token": token, "client_home": tmp_path_factory.mktemp("client-home")}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=120)


def submit(head: dict, extra_env: dict[str, str], attempts: int = 30) -> subprocess.CompletedProcess[str]:
    """``ray job submit`` from a shell whose HOME holds no token; retried while the job agent starts."""
    env = base_env(head["client_home"]) | extra_env
    cmd = [RAY, "job", "submit", f"--address={head['url']}", "--", sys.executable, "-c", JOB]
    for _ in range(attempts):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
        if "No available agent" not in done.stdout + done.stderr:
            return done
        time.sleep(2)
    return done


def test_submission_without_the_token_is_refused(head: dict) -> None:
    done = submit(head, {})
    assert done.returncode != 0
    assert "authentication" in (done.stdout + done.stderr).lower()


def test_submission_with_the_token_file_runs_the_job(head: dict) -> None:
    done = submit(head, {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(head["token"])})
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    assert "job saw 1 CPU" in done.stdout and "succeeded" in done.stdout.lower()


def test_submission_with_the_token_value_runs_the_job(head: dict) -> None:
    done = submit(head, {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": head["token"].read_text().strip()})
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    assert "job saw 1 CPU" in done.stdout


# --------------------------------------------------------------------------- the deploy files carry the token


def token_problems(docs: list[dict]) -> list[str]:
    """Every Ray container and job submitter sets RAY_AUTH_MODE=token and RAY_AUTH_TOKEN from one Secret."""
    from deploy_checks import pod_templates

    problems, secrets = [], set()
    for doc in docs:
        for pod in pod_templates(doc):
            for container in pod.template.get("spec", {}).get("containers", []):
                env = {e["name"]: e for e in container.get("env", [])}
                if env.get("RAY_AUTH_MODE", {}).get("value") != "token":
                    problems.append(f"{pod.where}: RAY_AUTH_MODE is not token")
                ref = env.get("RAY_AUTH_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef")
                if not ref or ref.get("key") != "auth_token":
                    problems.append(f"{pod.where}: RAY_AUTH_TOKEN does not come from a Secret's auth_token")
                else:
                    secrets.add(ref["name"])
    return problems + ([f"several token Secrets: {sorted(secrets)}"] if len(secrets) > 1 else [])


def kuberay_docs() -> list[dict]:
    import yaml
    from deploy_checks import DEPLOY, kustomize

    ray_docs = [d for d in kustomize(DEPLOY / "kuberay" / "cluster") if d["kind"] == "RayCluster"]
    return ray_docs + [yaml.safe_load((DEPLOY / "kuberay" / "rayjob-build-dataset.yaml").read_text())]


def test_kuberay_pods_and_the_job_submitter_carry_the_token() -> None:
    docs = kuberay_docs()
    assert token_problems(docs) == []
    docs[1]["spec"]["submitterPodTemplate"]["spec"]["containers"][0].pop("env")
    assert token_problems(docs) == ["RayJob/vidla-build-dataset submitter: RAY_AUTH_MODE is not token",
                                    "RayJob/vidla-build-dataset submitter: RAY_AUTH_TOKEN does not come from a Secret's auth_token"]  # fmt: skip


def test_cluster_launcher_nodes_get_the_token_and_token_mode() -> None:
    import yaml
    from deploy_checks import DEPLOY

    config = yaml.safe_load((DEPLOY / "ray-cluster" / "aws.yaml").read_text())
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    starts = [c for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"] if "ray start" in c]
    assert len(starts) == 2 and all("export RAY_AUTH_MODE=token;" in c for c in starts)
