#!/usr/bin/env bash
# The GPU measurements of docs/benchmarks.md in one go, on a machine with a CUDA device:
#   1. ResNet-20 RBNN images/s at batch 256 and 1024, eager and compiled (fp32 and bf16-mixed +
#      channels_last), with the rotation update's share of an epoch;
#   2. bf16-mixed vs fp32 accuracy after a short synthetic RBNN run;
#   3. ImageNet ResNet-18 images/s on a generated JPEG folder, decoded on the GPU vs in PIL workers.
# Usage: bash scripts/gpu_checks.sh [out dir]   (BINEXP_PY=python to use another interpreter;
#        EPOCHS=10 for the accuracy runs; SMOKE=1 runs every step tiny, on whatever device there is)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-gpu_results}}
PY=${BINEXP_PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
EPOCHS=${EPOCHS:-10}
mkdir -p "$OUT"
if [ "${SMOKE:-0}" = 1 ]; then
  R20="data.train_size=256 data.val_size=64"; BATCHES="data.batch_size=32 data.batch_size=64"; STEPS="--steps 1 --rounds 1 --warmup 1"
  EPOCHS=1; JPEG="--classes 2 --train-per-class 8 --val-per-class 2 --size 64"; R18="data.batch_size=8 data.image_size=64 data.num_workers=0"
  ACC="trainer.limit_train_batches=2 trainer.limit_val_batches=1"
else
  R20="data.train_size=20480 data.val_size=512"; BATCHES="data.batch_size=256 data.batch_size=1024"; STEPS="--steps 20 --rounds 3 --warmup 5"
  JPEG="--classes 20 --train-per-class 160 --val-per-class 10 --size 320"; R18="data.batch_size=256 data.num_workers=12"
  ACC=""
fi
$PY -c "import torch; print('device:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu', '| torch', torch.__version__)" | tee "$OUT/device.txt"

step() { echo; echo "=== $1"; shift; timeout "${STEP_TIMEOUT:-900}" "$@" 2>&1 | grep -vE "Warning|warnings.warn" | tee -a "$OUT/log.txt"; }

# 1. ResNet-20 RBNN throughput (eager, compiled; fp32, bf16-mixed + channels_last)
step "RBNN ResNet-20 eager fp32" $PY scripts/bench.py model=resnet20 data=synthetic quantizer=rbnn $R20 $STEPS --vs $BATCHES --json "$OUT/rbnn_eager_fp32.json"
step "RBNN ResNet-20 eager bf16" $PY scripts/bench.py model=resnet20 data=synthetic quantizer=rbnn $R20 $STEPS --precision bf16-mixed --channels-last --vs $BATCHES --json "$OUT/rbnn_eager_bf16.json"
step "RBNN ResNet-20 compiled fp32" $PY scripts/bench.py model=resnet20 data=synthetic quantizer=rbnn $R20 $STEPS --compile --vs $BATCHES --json "$OUT/rbnn_compiled_fp32.json"
step "RBNN ResNet-20 compiled bf16" $PY scripts/bench.py model=resnet20 data=synthetic quantizer=rbnn $R20 $STEPS --compile --precision bf16-mixed --channels-last --vs $BATCHES --json "$OUT/rbnn_compiled_bf16.json"
step "every quantizer, ResNet-20 batch 256" $PY scripts/bench.py model=resnet20 data=synthetic $R20 $STEPS --vs quantizer=fp quantizer=xnor quantizer=rbnn quantizer=flexor quantizer=bireal --json "$OUT/all_quantizers.json"

# 2. bf16-mixed vs fp32 accuracy, same seed, short synthetic run
for prec in 32-true bf16-mixed; do
  step "accuracy $prec" $PY -m binexp train quantizer=rbnn data=synthetic model=resnet20 trainer.max_epochs=$EPOCHS \
      trainer.precision=$prec trainer.enable_progress_bar=false $ACC hydra.run.dir="$OUT/acc_$prec"
done
$PY - "$OUT" <<'EOF' | tee -a "$OUT/log.txt"
import json, sys
from pathlib import Path
for prec in ("32-true", "bf16-mixed"):
    p = Path(sys.argv[1]) / f"acc_{prec}" / "metrics.json"
    m = json.loads(p.read_text()) if p.is_file() else {}
    print(f"accuracy {prec}: best_val_acc1 {m.get('best_val_acc1')} val_acc1 {m.get('val_acc1')} images/s {m.get('train_images_per_s')}")
EOF

# 3. ImageNet ResNet-18 on a generated JPEG folder: GPU decoding vs PIL workers
step "generate JPEG folder" $PY scripts/make_image_folder.py "$OUT/jpegs" $JPEG
for decode in tensor pil; do
  step "ResNet-18 imagefolder decode=$decode" $PY scripts/bench.py model=resnet18 quantizer=rbnn data=imagefolder \
      data.root="$OUT/jpegs" data.decode=$decode $R18 $STEPS --epoch-images 1281167 --channels-last --json "$OUT/resnet18_$decode.json"
done
rm -rf "$OUT/jpegs"
echo; echo "results in $OUT (log.txt, *.json)"
