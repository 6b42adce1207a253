#!/usr/bin/env bash
# Installs the pinned project on a cluster-launcher node (deploy/ray-cluster/aws.yaml runs it).
#   setup-node.sh cpu   head and CPU workers: torch CPU build, Ray, the project
#   setup-node.sh gpu   GPU workers: torch (CUDA 13), vLLM, Ray, the project with its gpu extra
# Idempotent: `ray up` runs it again on every update. The checkout is the one `ray up` synced
# (file_mounts), so the code on the nodes is the commit you launched from, and the versions are
# the pins in deploy/docker/requirements-{cpu,gpu}.txt, the same as the container images.
set -euo pipefail

kind="${1:?usage: setup-node.sh cpu|gpu}"
repo="$HOME/vidla"
venv="$HOME/venv"
pins="$repo/deploy/docker/requirements-$kind.txt"

sudo apt-get update -qq
sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg python3-venv
sudo mkdir -p /mnt/local-nvme                  # ray.work_root in configs/cluster-gpu.yaml
sudo chown "$(id -u):$(id -g)" /mnt/local-nvme

test -x "$venv/bin/python" || python3 -m venv "$venv"
case "$kind" in
  cpu)
    index=(--extra-index-url https://download.pytorch.org/whl/cpu)
    target="$repo"
    ;;
  gpu)
    index=()
    target="$repo[gpu]"
    ;;
  *)
    echo "unknown node kind: $kind (cpu or gpu)" >&2
    exit 2
    ;;
esac
"$venv/bin/pip" install -q --no-cache-dir "${index[@]}" -r "$pins"
"$venv/bin/pip" install -q --no-cache-dir "${index[@]}" -c "$pins" "$target"
