"""deploy/ray-cluster: the AWS cluster-launcher config passes the checks ``ray up`` runs.

``ray up`` calls ``prepare_config`` (merges Ray's AWS defaults) and ``validate_config`` (the
JSON schema Ray ships, ray/autoscaler/ray-schema.json); both run here, offline.
"""

from __future__ import annotations

import copy
import subprocess
from typing import Any

import jsonschema
import pytest
import yaml
from deploy_checks import DEPLOY, REPO, capacity_problems, launcher_shapes
from ray.autoscaler._private.util import prepare_config, validate_config

from pipelines.config import load_pipeline_config

CLUSTER_YAML = DEPLOY / "ray-cluster" / "aws.yaml"
SETUP_SCRIPT = DEPLOY / "ray-cluster" / "setup-node.sh"


def load() -> dict[str, Any]:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def prepared(config: dict[str, Any]) -> dict[str, Any]:
    """What ``ray up`` would launch: Ray's defaults merged in, then its schema validation."""
    config = prepare_config(copy.deepcopy(config))
    validate_config(config)
    return config


def test_config_passes_rays_validation() -> None:
    config = prepared(load())
    assert config["head_node_type"] == "head"
    assert {"cpu", "gpu"} <= set(config["available_node_types"])


BROKEN = {
    "misspelt top-level key": lambda c: c.update(max_worker=c.pop("max_workers")),
    "node type without resources": lambda c: c["available_node_types"]["gpu"].pop("resources"),
    "fractional GPU count": lambda c: c["available_node_types"]["gpu"]["resources"].update(GPU=0.5),
    "min_workers as text": lambda c: c["available_node_types"]["cpu"].update(min_workers="1"),
    "unknown docker option": lambda c: c.update(
        docker={"image": "vidla-curate:0.1.0-cpu", "container_name": "ray", "imagee": "x"}
    ),
    "head type not among the node types": lambda c: c.update(head_node_type="ray.head.default"),
}


@pytest.mark.parametrize("breakage", BROKEN)
def test_broken_config_fails_rays_validation(breakage: str) -> None:
    config = load()
    BROKEN[breakage](config)
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        prepared(config)


def _node_config_problems(config: dict[str, Any]) -> list[str]:
    """node_config goes verbatim to EC2 RunInstances: every key must be one of its parameters."""
    import botocore.session

    operation = botocore.session.get_session().get_service_model("ec2").operation_model("RunInstances")
    allowed = set(operation.input_shape.members)
    return [
        f"{name}.node_config.{key}"
        for name, node in config["available_node_types"].items()
        for key in node["node_config"]
        if key not in allowed
    ]


def test_node_configs_are_ec2_parameters() -> None:
    assert _node_config_problems(load()) == []


def test_misspelt_ec2_parameter_is_caught() -> None:
    config = load()
    node = config["available_node_types"]["gpu"]["node_config"]
    node["InstanceTyp"] = node.pop("InstanceType")
    assert _node_config_problems(config) == ["gpu.node_config.InstanceTyp"]


PIPELINE_CONFIG = load_pipeline_config(REPO / "configs" / "cluster-gpu.yaml")


def test_node_types_fit_the_cluster_config() -> None:
    assert capacity_problems(launcher_shapes(prepared(load())), PIPELINE_CONFIG.ray) == []


def test_undersized_gpu_pool_is_caught() -> None:
    config = load()
    config["available_node_types"]["gpu"]["max_workers"] = 1
    assert capacity_problems(launcher_shapes(prepared(config)), PIPELINE_CONFIG.ray) != []


def test_setup_installs_only_the_pinned_project() -> None:
    """Ray's defaults install a nightly Ray wheel unless the config empties them; ours must win."""
    config = prepared(load())
    commands = config["setup_commands"] + config["head_setup_commands"] + config["worker_setup_commands"]
    for node in config["available_node_types"].values():
        commands += node.get("worker_setup_commands", [])
    assert commands, "nothing installs the project"
    for command in commands:
        assert "setup-node.sh" in command or "boto3==" in command, command
    kinds = {c.split()[-1] for c in commands if "setup-node.sh" in c}
    for kind in kinds:
        assert (DEPLOY / "docker" / f"requirements-{kind}.txt").exists()
    assert config["available_node_types"]["gpu"]["worker_setup_commands"] == [
        "bash ~/vidla/deploy/ray-cluster/setup-node.sh gpu"
    ]


def test_setup_script_is_valid_bash_and_rejects_unknown_kinds() -> None:
    assert subprocess.run(["bash", "-n", str(SETUP_SCRIPT)], capture_output=True).returncode == 0
    text = SETUP_SCRIPT.read_text()
    assert "requirements-$kind.txt" in text and "exit 2" in text


def test_every_node_type_runs_one_ami() -> None:
    """One AMI, one system Python: Ray rejects nodes whose Python patch version differs."""
    images = {node["node_config"]["ImageId"] for node in load()["available_node_types"].values()}
    assert len(images) == 1


def test_work_root_is_created_on_every_node() -> None:
    assert f"mkdir -p {PIPELINE_CONFIG.ray.work_root}" in SETUP_SCRIPT.read_text()
