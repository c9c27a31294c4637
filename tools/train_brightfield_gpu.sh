#!/usr/bin/env bash
# Fine-tune the bundled brightfield_nuclei model on one GPU (how the shipped weights were made; see its
# MODEL_CARD.md). Expects the training data packed at 0.5 µm/px by tools/pack_training_data.py in DATA:
#   python tools/pack_training_data.py .gpudata ../shared/data/{monuseg,cpm15,consep_patches,dsb2018_brightfield} \
#       --pixel-size 0.5 --data-pixel-size dsb2018_brightfield=0.3 --channels 3
# Usage: tools/train_brightfield_gpu.sh DATA OUT_RUN MINUTES [RESULTS_DIR]
# Environment: INIT (model to start from, default brightfield_nuclei), LR (default 1e-3), DEVICE (default cuda),
# EXTRA (more `phenoseg train` options, e.g. EXTRA="--grow --widths 16,32,64,128,256" for a deeper network).
set -euo pipefail
DATA=${1:?data folder}
RUN=${2:?run folder}
MINUTES=${3:?minutes}
RESULTS=${4:-$RUN}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$RESULTS"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$RESULTS/gpu.txt" || true
[ "${DEVICE:-cuda}" = cpu ] || python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA'; print('torch', torch.__version__, torch.cuda.get_device_name())"
WORKERS=$(( $(nproc) > 4 ? $(nproc) - 3 : 1 ))
set +e
python3 -m phenoseg train --data "$DATA/monuseg" "$DATA/cpm15" "$DATA/consep_patches" "$DATA/dsb2018_brightfield" \
    --init "${INIT:-brightfield_nuclei}" --out "$RUN" --minutes "$MINUTES" --crop 128 --batch 64 --lr "${LR:-1e-3}" \
    --workers "$WORKERS" --threads 3 --device "${DEVICE:-cuda}" --val-minutes 1.25 --val-max-images 64 --no-tune \
    --name brightfield_nuclei --modality brightfield --quiet ${EXTRA:-} >"$RESULTS/summary.json" 2>"$RESULTS/train.log"
code=$?
set -e
for f in config.json weights.safetensors history.json; do
    [ -f "$RUN/$f" ] && [ "$RUN" != "$RESULTS" ] && cp "$RUN/$f" "$RESULTS/$f"
done
tail -c 3000 "$RESULTS/train.log"
python3 - "$RUN/history.json" <<'EOF' || true
import json, sys
for h in json.load(open(sys.argv[1])):
    print(h["step"], h["elapsed_s"], {k: round(v["f1_mean"], 3) for k, v in h["val"].items()})
EOF
exit $code
