#!/usr/bin/env bash
# The device check of issue 17, run on the device machine in the repository root:
#   cargo xtask gpu-bundle                      # here: target/gpu-bundle/greater-wgpu (≤ 64 MiB)
#   device run, carry [.gl, target/gpu-bundle]: bash scripts/gpu-check.sh
# It unpacks the carried Vulkan loaders (.gl/*.deb, see the device README), then with the wgpu
# build: `bench step` on random tiny / 0.5B / 8B shapes, exports a small random model and
# compares it with transformers on the same GPU (scripts/peer_check.py), and times the same
# step workload in transformers. Everything measured goes to $OUT as JSON.
set -uo pipefail
OUT="${OUT:-/tmp/gpu-check}"
mkdir -p "$OUT"
BIN="${BIN:-target/gpu-bundle/greater-wgpu}"
if ls .gl/*.deb >/dev/null 2>&1; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
export VK_DRIVER_FILES="${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpu.csv" 2>&1
chmod +x "$BIN"
step() {  # NAME EXAMPLES TOKENS
    timeout 240 "$BIN" bench step --random "$1" --examples "$2" --reasoning-tokens "$3" --out "$OUT" \
        > "$OUT/step-$1.log" 2>&1 || echo "step $1 failed: $(tail -3 "$OUT/step-$1.log")"
}
step tiny 2 8
step qwen2.5-0.5b 20 64
step llama3-8b 20 256
"$BIN" export-random qwen2.5-0.5b /tmp/q05 --seed 0 > "$OUT/export.log" 2>&1
python3 scripts/peer_check.py /tmp/q05 "$OUT/peer-qwen2.5-0.5b.json" --step-examples 20 --step-tokens 64 \
    > "$OUT/peer.log" 2>&1 || echo "peer failed: $(tail -3 "$OUT/peer.log")"
ls -l "$OUT"
