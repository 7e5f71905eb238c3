#!/usr/bin/env bash
# The GPU check: on a machine with a GPU and no Rust toolchain, run the bench
# and a one-epoch training run from a release binary built elsewhere.
#
# On the build machine:
#     cargo build --release -p xtask --locked      # (or --workspace)
#     mkdir -p dist && cp target/release/xtask dist/ && strip dist/xtask
# then carry `dist/` (and, where the GPU machine has no Vulkan loader, the
# loader packages: see README, "GPUs") and run, from the repository root:
#     scripts/gpu-check.sh [OUT_DIR]
#
# Settings (environment): BIN (dist/xtask), BACKEND (wgpu), DEVICE (0),
# DEPTH (110), STEPS (5), EPOCH_DEPTH (110), DATA (datasets/cifar10-sample).
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-${OUT:-gpu-check}}
mkdir -p "$out"
bin=${BIN:-dist/xtask}
backend=${BACKEND:-wgpu}
device=${DEVICE:-0}
depth=${DEPTH:-110}
steps=${STEPS:-5}
epoch_depth=${EPOCH_DEPTH:-110}
data=${DATA:-datasets/cifar10-sample}

if [ ! -x "$bin" ]; then
    echo "gpu-check: no executable at $bin; build it with 'cargo build --release -p xtask' and copy target/release/xtask there" >&2
    exit 2
fi
# Unpack carried Vulkan loader packages, if any and if the machine lacks one.
if ! ldconfig -p 2>/dev/null | grep -q libvulkan.so.1 && ls .gl/*.deb >/dev/null 2>&1; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi

{
    echo "== machine"; uname -a; nproc
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
    echo "== devices"; "$bin" devices
} 2>&1 | tee "$out/machine.txt"

echo "== bench: ResNet-$depth, batch 128, $backend device $device" | tee "$out/bench.txt"
"$bin" bench --backend "$backend" --device "$device" --depth "$depth" --steps "$steps" --warmup 2 2>&1 \
    | tee -a "$out/bench.txt"

echo "== one epoch: ResNet-$epoch_depth on $data, $backend" | tee "$out/epoch.txt"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
run=$scratch/run
start=$(date +%s)
"$bin" train --backend "$backend" --device "$device" --dataset folder --data "$data" \
    --depth "$epoch_depth" --epochs 1 --batch-size 128 --val-size 100 --out "$run" --plain 2>&1 \
    | tee -a "$out/epoch.txt"
"$bin" eval --run "$run" --backend "$backend" --device "$device" 2>&1 | tee -a "$out/epoch.txt"
echo "wall time of the epoch's train+eval: $(( $(date +%s) - start )) s" | tee -a "$out/epoch.txt"
cp "$run/metrics.csv" "$run/summary.json" "$run/eval.json" "$out/" 2>/dev/null || true
