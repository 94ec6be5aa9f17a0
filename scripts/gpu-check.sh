#!/usr/bin/env bash
# The device check of issue 17, run on the device machine in the repository root:
#   cargo xtask gpu-bundle                      # here: target/gpu-bundle/greater-wgpu (≤ 64 MiB)
#   device run, carry [.gl, target/gpu-bundle]: bash scripts/gpu-check.sh
# It unpacks the carried Vulkan loaders (.gl/*.deb, see the device README), then with the wgpu
# build: `bench models` and `bench step` on random shapes, `bench parity` on an exported random
# model against transformers on the same GPU (scripts/peer_check.py: logits, token gradient,
# greedy tokens), and the same step workload in transformers for the speed ratio. Everything
# measured goes to $OUT as JSON (and a log per command).
#
# The sizes are variables, so the script runs end to end on a CPU with a software Vulkan driver
# too (Mesa's lavapipe), e.g.:
#   VK_DRIVER_FILES=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json MODELS_SHAPES=tiny \
#   STEP_SHAPES="tiny:2:8" PARITY_SHAPE=tiny PEER_STEP="tiny:2:8" OUT=/tmp/gc bash scripts/gpu-check.sh
set -uo pipefail
OUT="${OUT:-/tmp/gpu-check}"
mkdir -p "$OUT"
BIN="${BIN:-target/gpu-bundle/greater-wgpu}"
PY="${PY:-python3}"
MODELS_SHAPES="${MODELS_SHAPES:-qwen2.5-0.5b llama3-8b}"        # bench models, batch 1/8/32
STEP_SHAPES="${STEP_SHAPES:-tiny:2:8 qwen2.5-0.5b:20:64 llama3-8b:20:256}"  # NAME:EXAMPLES:TOKENS
PARITY_SHAPE="${PARITY_SHAPE:-qwen2.5-0.5b}"                   # exported, compared with transformers
PEER_STEP="${PEER_STEP:-llama3-8b:20:256}"                     # the step workload in transformers
if ls .gl/*.deb >/dev/null 2>&1; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
export VK_DRIVER_FILES="${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpu.csv" 2>&1
chmod +x "$BIN"
failed=0
check() {  # LOG COMMAND...: run, keep the log, report a failure without stopping the script
    local log="$1"
    shift
    echo "== $*"
    if ! timeout 300 "$@" > "$OUT/$log" 2>&1; then
        echo "FAILED ($log): $(tail -3 "$OUT/$log")"
        failed=$((failed + 1))
    fi
}
for s in $MODELS_SHAPES; do
    check "models-$s.log" "$BIN" bench models --model "random:$s" --batch 1,8,32 --runs 1 --gemm-runs 1 \
        --no-breakdown --out "$OUT/models-$s"
    cp "$OUT/models-$s/models.json" "$OUT/models-$s.json" 2>/dev/null
    rm -rf "$OUT/models-$s"
done
for spec in $STEP_SHAPES; do
    IFS=: read -r name examples tokens <<< "$spec"
    check "step-$name.log" "$BIN" bench step --random "$name" --examples "$examples" --reasoning-tokens "$tokens" \
        --out "$OUT"
    rm -rf "$OUT/step-$name"
done
model="/tmp/random-$PARITY_SHAPE"
check export.log "$BIN" export-random "$PARITY_SHAPE" "$model" --seed 0
# The parity file holds every logit: it stays out of $OUT, only the comparison comes back.
check parity.log "$BIN" bench parity --model "$model" --out /tmp/parity
check peer-parity.log "$PY" scripts/peer_check.py "$model" "$OUT/peer-parity-$PARITY_SHAPE.json" \
    --greater-logits /tmp/parity/parity-wgpu.json
IFS=: read -r name examples tokens <<< "$PEER_STEP"
check export-config.log "$BIN" export-random "$name" "/tmp/config-$name" --config-only
check peer-step.log "$PY" scripts/peer_check.py "/tmp/config-$name" "$OUT/peer-step-$name.json" \
    --step-examples "$examples" --step-tokens "$tokens"
ls -l "$OUT"
echo "$failed failed"
exit $((failed > 0))
