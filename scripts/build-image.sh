#!/usr/bin/env bash
# Builds the model server image from model/Dockerfile on the local engine.
#
#   scripts/build-image.sh [--target python|tensorflow-serving] [--variant cpu|gpu]
#                          [--tag IMAGE[:TAG]] [--push] [--python-base IMAGE]
#                          [--model DIR] [--build-arg NAME=VALUE]...
#
# --model: the SavedModel version directory to serve, <repository>/<name>/<version> (default:
# the bundled digits model's highest version); MODEL_NAME and MODEL_VERSION follow from its path.
# Docker 20.10's builder has no named build contexts, so the build runs on a context assembled
# in a temporary directory: what model/.dockerignore admits, and the version at model-version/
# (the Dockerfile's `model` stage).
# Defaults: python target, cpu variant, tag 127.0.0.1:5000/model-server:<target>-<variant>,
# python base = the local stand-in from scripts/base-image.sh (PYTHON_BASE overrides; pass
# --python-base python:3.11-slim-bookworm where Docker Hub is reachable).
# --push pushes the tag (to the local registry 127.0.0.1:5000 by default) and prints the
# pushed reference with its digest on stdout as the last line: IMAGE@sha256:...
# When SSL_CERT_FILE names a CA bundle (a TLS-intercepting proxy), it is handed to the build
# as the BuildKit secret "ca_bundle", which never lands in a layer.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REGISTRY="${REGISTRY:-127.0.0.1:5000}"
target=python
variant=cpu
tag=""
push=0
python_base="${PYTHON_BASE:-localhost/debian-python:bookworm}"
model_dir=""
extra_args=()

# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

while (($#)); do
    case "$1" in
    --target) target="${2:?}"; shift 2 ;;
    --variant) variant="${2:?}"; shift 2 ;;
    --tag) tag="${2:?}"; shift 2 ;;
    --push) push=1; shift ;;
    --python-base) python_base="${2:?}"; shift 2 ;;
    --model) model_dir="${2:?}"; shift 2 ;;
    --build-arg) extra_args+=(--build-arg "${2:?}"); shift 2 ;;
    -h | --help) usage ;;
    *) log "unknown argument: $1"; usage ;;
    esac
done
case "$target" in python | tensorflow-serving) ;; *) die "--target must be python or tensorflow-serving, not '$target'" ;; esac
case "$variant" in cpu | gpu) ;; *) die "--variant must be cpu or gpu, not '$variant'" ;; esac
tag="${tag:-$REGISTRY/model-server:$target-$variant}"
if [[ -z "$model_dir" ]]; then
    model_dir="$ROOT/model/export/digits/$(find "$ROOT/model/export/digits" -mindepth 1 -maxdepth 1 \
        -name '[0-9]*' -printf '%f\n' | sort -n | tail -n 1)"
fi
[[ -f "$model_dir/saved_model.pb" ]] || die "--model $model_dir: no saved_model.pb there"
model_dir="$(cd "$model_dir" && pwd)"
model_version="$(basename "$model_dir")"
model_name="$(basename "$(dirname "$model_dir")")"
[[ "$model_version" =~ ^[0-9]+$ ]] || die "--model $model_dir: not a numeric version directory"

# Docker Engine 20.10's BuildKit is needed (RUN --mount). A `docker` with the buildx plugin
# drives it directly; without buildx, newer CLIs (23+) refuse DOCKER_BUILDKIT=1, while the
# Debian 20.10 CLI (/usr/bin/docker from docker.io) still has the built-in BuildKit client.
build_cli() {
    if docker buildx version >/dev/null 2>&1; then
        echo "docker buildx build --load"
    elif [[ -x /usr/bin/docker ]] && /usr/bin/docker --version 2>/dev/null | grep -q 'version 20\.10\.'; then
        echo "/usr/bin/docker build"
    else
        die "no BuildKit-capable docker CLI: install the buildx plugin or Debian's docker.io"
    fi
}

docker info >/dev/null 2>&1 || die "the Docker engine does not answer; run scripts/docker.sh start"
if [[ "$target" == python ]] && [[ "$python_base" == localhost/* ]] &&
    ! docker image inspect "$python_base" >/dev/null 2>&1; then
    die "base image $python_base is missing; run scripts/base-image.sh"
fi

args=(
    --network host
    --file "$ROOT/model/Dockerfile"
    --target "$target"
    --build-arg "VARIANT=$variant"
    --build-arg "PYTHON_BASE=$python_base"
    --build-arg "MODEL_NAME=$model_name"
    --build-arg "MODEL_VERSION=$model_version"
    --tag "$tag"
)
if [[ -n "${SSL_CERT_FILE:-}" && -s "${SSL_CERT_FILE}" ]]; then
    args+=(--secret "id=ca_bundle,src=$SSL_CERT_FILE")
fi

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
sed -n 's/^!//p' "$ROOT/model/.dockerignore" | while read -r admitted; do
    cp -r "$ROOT/model/${admitted%/}" "$context/"
done
cp -r "$model_dir" "$context/model-version"
{ cat "$ROOT/model/.dockerignore"; echo '!model-version/'; } >"$context/.dockerignore"

read -r -a cli <<<"$(build_cli)"
log "building $tag (target $target, variant $variant, base $python_base," \
    "model $model_name version $model_version) with ${cli[*]}"
start=$SECONDS
DOCKER_BUILDKIT=1 BUILDKIT_PROGRESS="${BUILDKIT_PROGRESS:-plain}" \
    "${cli[@]}" "${args[@]}" "${extra_args[@]}" "$context" >&2
log "built $tag in $((SECONDS - start))s, $(docker image inspect --format '{{.Size}}' "$tag" |
    awk '{printf "%.0f MB", $1 / 1e6}')"

if ((push)); then
    start=$SECONDS
    docker push "$tag" >&2
    digest="$(docker image inspect --format '{{join .RepoDigests "\n"}}' "$tag" |
        grep -F "${tag%:*}@" | head -n 1)"
    [[ -n "$digest" ]] || die "pushed $tag but found no repo digest"
    log "pushed in $((SECONDS - start))s"
    echo "$digest"
fi
