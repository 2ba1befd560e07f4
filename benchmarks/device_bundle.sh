#!/usr/bin/env bash
# Ray Tune and Optuna for a GPU machine that has PyTorch but no internet and no Ray, small
# enough to carry there (about 40 MB): benchmarks/packing.py needs them.
#
#     bash benchmarks/device_bundle.sh                 # writes .whl/ for the machine's Python 3.12
#     PYVER=3.11 DEST=/tmp/bundle bash benchmarks/device_bundle.sh
#
# Run it where pip can reach the package index, with this project installed (the Ray and Optuna
# versions are the installed ones). Ray's wheel (about 80 MB) is larger than what travels, so its
# binaries are stripped of symbols, the parts Tune never imports (RLlib, Serve, LLM, the Java jars,
# the dashboard's web page) are left out, and the rest is packed with xz. The other wheels are
# the requirements of ray[tune] and optuna that the GPU image lacks. On the GPU machine:
#
#     mkdir -p /tmp/site && tar -xJf .whl/ray-stripped.tar.xz -C /tmp/site \
#       && python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
#       && export PYTHONPATH=/tmp/site:$PWD
#     python3 benchmarks/packing.py --device cuda
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${DEST:-.whl}
pyver=${PYVER:-3.12}
python=${PYTHON:-python}
ray_version=$("$python" -c 'import importlib.metadata as m; print(m.version("ray"))')
optuna_version=$("$python" -c 'import importlib.metadata as m; print(m.version("optuna"))')
# what ray[tune] and optuna need beyond the GPU image's packages (numpy, pandas, pyarrow,
# aiohttp, requests, protobuf, msgpack, pyyaml, click, filelock, fsspec, tqdm ... are there)
extra=(
    jsonschema jsonschema-specifications referencing rpds-py
    tensorboardX pydantic pydantic-core annotated-types typing-inspection
    alembic mako sqlalchemy greenlet colorlog
)
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 \
    manylinux2014_x86_64 manylinux_2_5_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$tag")
done
download() {
    "$python" -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" \
        --implementation cp "${platforms[@]}" -d "$dest" "$@"
}
mkdir -p "$dest"
download "ray==$ray_version" "optuna==$optuna_version"
for name in "${extra[@]}"; do
    # the versions pip resolved here, where installed: pydantic needs its exact pydantic-core
    version=$("$python" -c "import importlib.metadata as m; print(m.version('$name'))" \
        2>/dev/null || true)
    download "$name${version:+==$version}"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wheel=$(realpath "$dest"/ray-"$ray_version"-*.whl)
(cd "$work" && unzip -q "$wheel")
strip --strip-unneeded "$work/ray/_raylet.so" "$work/ray/core/src/ray/gcs/gcs_server" \
    "$work/ray/core/src/ray/raylet/raylet"
rm -rf "$work/ray/rllib" "$work/ray/serve" "$work/ray/llm" "$work/ray/jars" \
    "$work/ray/dashboard/client"
tar -C "$work" -cJf "$dest/ray-stripped.tar.xz" ray "ray-$ray_version.dist-info"
rm "$wheel"
du -ch "$dest"/* | tail -1
echo "bundle in $dest: ray $ray_version (stripped), optuna $optuna_version and ${#extra[@]} more"
