#!/usr/bin/env bash
# bench-cnn.sh: resnet20 and mobilenet_v2 on Fashion-MNIST-3ch (Fashion-MNIST padded to 32x32 and
# replicated to 3 channels, in CIFAR-10's binary format: it is NOT CIFAR-10), qat next to PyTorch
# 1.13 eager-mode QAT (scripts/torch_qat_cnn.py) on the same data, models and schedule, in one run,
# one thread each (GOMAXPROCS=1 and --threads 1 for qat, OMP_NUM_THREADS=1 for PyTorch):
#   float training (Adam 1e-3), PTQ (moving-average min/max calibration, as PyTorch's default QAT
#   qconfig observes, 32 batches) and QAT (Adam 1e-4) at
#   W8A8 and W4A4, int8 export of the W8A8 QAT model with ONNX, its int8 accuracy and speed on
#   qat's runtime, its agreement with the fake-quant graph (qat compare), and PyTorch's int8
#   eval speed under each of its quantized engines.
#
# usage: scripts/bench-cnn.sh [FLOAT_EPOCHS] [QAT_EPOCHS] [MODELS]
#   MODELS: "resnet20 mobilenet_v2" by default
# env: OUT (default runs/bench-cnn), PYTHON (default /usr/bin/python3, Debian's python3-torch and
#      python3-torchvision), LIMIT (training images, default 10000; 0: all 60000), FASHION
#      (Fashion-MNIST idx dir, default /usr/share/datasets/fashion-mnist from Debian's
#      dataset-fashion-mnist), QAT_DATA (default ~/.cache/qat: fashion3/ is built there)
# Prints one JSON line per model and a markdown table with the qat/PyTorch ratios; writes both
# under $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
FE=${1:-1}
QE=${2:-1}
MODELS=${3:-resnet20 mobilenet_v2}
OUT=${OUT:-runs/bench-cnn}
PYTHON=${PYTHON:-/usr/bin/python3}
LIMIT=${LIMIT:-10000}
FASHION=${FASHION:-/usr/share/datasets/fashion-mnist}
QAT_DATA=${QAT_DATA:-$HOME/.cache/qat}
DATA="$QAT_DATA/fashion3"
mkdir -p "$OUT"
go build -o "$OUT/qat" ./cmd/qat
"$PYTHON" -c 'import torch, torchvision' 2>/dev/null || { echo "bench-cnn: $PYTHON lacks torch or torchvision: apt-get install python3-torch python3-torchvision" >&2; exit 1; }
[ -f "$DATA/test_batch.bin" ] || go run ./scripts/make-fashion3 -src "$FASHION" -out "$DATA"
lim=()
[ "$LIMIT" -gt 0 ] && lim=(--limit "$LIMIT")
q() { GOMAXPROCS=1 "$OUT/qat" "$@" --threads 1; }
results="$OUT/results.jsonl"
: > "$results"
for m in $MODELS; do
  d="$OUT/$m"
  mkdir -p "$d"
  q train --model "$m" --data "cifar10:$DATA" "${lim[@]}" --epochs "$FE" --out "$d/float.safetensors" --json --quiet > "$d/float.json"
  for b in W8A8 W4A4; do
    q calibrate --from "$d/float.safetensors" "${lim[@]}" --bits "$b" --observer moving-average-minmax --out "$d/ptq-$b.safetensors" --json > "$d/ptq-$b.json"
    q finetune --from "$d/float.safetensors" "${lim[@]}" --bits "$b" --epochs "$QE" --out "$d/qat-$b.safetensors" --json --quiet > "$d/qat-$b.json"
  done
  "$OUT/qat" export --checkpoint "$d/qat-W8A8.safetensors" --out "$d/qat-W8A8.qmodel" --onnx "$d/qat-W8A8.onnx" --json > "$d/export.json"
  q eval --model "$d/qat-W8A8.qmodel" --data "cifar10:$DATA" --json > "$d/int8.json"
  q compare --checkpoint "$d/qat-W8A8.safetensors" --model "$d/qat-W8A8.qmodel" --json > "$d/compare.json"
  OMP_NUM_THREADS=1 "$PYTHON" scripts/torch_qat_cnn.py --save-float "$d/torch-float.pt" "$DATA" "$m" "$FE" "$QE" "$LIMIT" W8A8 W4A4 > "$d/torch.json"
  # QAT from PyTorch's own float weights (qat import), so that the accuracies compare QAT alone.
  read -r MEAN STD < <("$PYTHON" -c "import json,sys; j=json.load(open(sys.argv[1])); print(','.join('%.9g'%v for v in j['mean']), ','.join('%.9g'%v for v in j['std']))" "$d/torch.json")
  "$OUT/qat" import --torch "$d/torch-float.pt" --model "$m" --mean "$MEAN" --std "$STD" --out "$d/tfloat.safetensors" > /dev/null
  for b in W8A8 W4A4; do
    q finetune --from "$d/tfloat.safetensors" --data "cifar10:$DATA" "${lim[@]}" --bits "$b" --epochs "$QE" --out "$d/tqat-$b.safetensors" --json --quiet > "$d/tqat-$b.json"
  done
  "$PYTHON" - "$m" "$d" >> "$results" <<'PY'
import json, sys
m, d = sys.argv[1:]
j = lambda n: json.load(open(f"{d}/{n}.json"))
f, t, i8, cmp = j("float"), j("torch"), j("int8"), j("compare")
r = dict(model=m, train_n=t["train_n"],
    qat_float=f["accuracy"], torch_float=t["acc_float"],
    qat_float_sps=round(f["samples_per_sec"]), torch_float_sps=t["float_train_sps"],
    qat_int8=i8["accuracy"], qat_int8_top5=i8["top5"], qat_int8_sps=round(i8["samples_per_sec"]),
    int8_argmax_agreement=cmp["argmax_agreement"], int8_max_lsb=cmp["max_abs_diff_lsb"],
    torch_int8={e: t["int8_" + e] for e in ("qnnpack", "onednn") if "int8_" + e in t},
    torch_int8_sps={e: round(t["int8_eval_sps_" + e]) for e in ("qnnpack", "onednn") if "int8_eval_sps_" + e in t},
    torch=t["peer"])
for b in ("W8A8", "W4A4"):
    p, q = j("ptq-" + b), j("qat-" + b)
    r["qat_ptq_" + b], r["torch_ptq_" + b] = p["accuracy"], t["ptq_" + b]
    r["qat_qat_" + b], r["torch_qat_" + b] = q["accuracy"], t["qat_" + b]
    r["qat_qat_sps_" + b], r["torch_qat_sps_" + b] = round(q["samples_per_sec"]), t["qat_train_sps_" + b]
    r["qat_qat_from_torch_" + b] = j("tqat-" + b)["accuracy"]
print(json.dumps(r))
PY
  tail -n 1 "$results"
done
"$PYTHON" - "$results" "$FE" "$QE" "$LIMIT" > "$OUT/results.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
fe, qe, lim = sys.argv[2:]
print(f"Fashion-MNIST-3ch (not CIFAR-10), {lim if lim != '0' else 60000} training images, full test set (10000). "
      f"Float {fe} epoch(s) Adam 1e-3, then PTQ (32 batches) or QAT {qe} epoch(s) Adam 1e-4, batch 128, one thread each.\n")
print("Test accuracy (%), qat / PyTorch, each from its own float training; then QAT from PyTorch's float weights (imported):\n")
print("| model | float | PTQ W8A8 | QAT W8A8 | PTQ W4A4 | QAT W4A4 | QAT W8A8 from PyTorch's float | QAT W4A4 from PyTorch's float | int8 (qat runtime) |")
print("|---|---|---|---|---|---|---|---|---|")
pct = lambda x: f"{100*x:.2f}"
for r in rows:
    cells = [f"{pct(r['qat_float'])} / {pct(r['torch_float'])}"]
    for k in ("ptq_W8A8", "qat_W8A8", "ptq_W4A4", "qat_W4A4"):
        cells.append(f"{pct(r['qat_' + k])} / {pct(r['torch_' + k])}")
    for b in ("W8A8", "W4A4"):
        cells.append(f"{pct(r['qat_qat_from_torch_' + b])} / {pct(r['torch_qat_' + b])}")
    cells.append(f"{pct(r['qat_int8'])} (top-5 {pct(r['qat_int8_top5'])}; {100*r['int8_argmax_agreement']:.2f}% argmax = fake quant, max {r['int8_max_lsb']} LSB)")
    print(f"| {r['model']} | " + " | ".join(cells) + " |")
print("\n| model | float train samples/s qat / torch | QAT W8A8 train | QAT W4A4 train | int8 eval samples/s qat / torch (best engine) |")
print("|---|---|---|---|---|")
for r in rows:
    best = max(r["torch_int8_sps"], key=r["torch_int8_sps"].get)
    tb = r["torch_int8_sps"][best]
    cells = [f"{r['qat_float_sps']} / {r['torch_float_sps']} ({r['qat_float_sps']/r['torch_float_sps']:.2f}x)"]
    for b in ("W8A8", "W4A4"):
        a, t = r["qat_qat_sps_" + b], r["torch_qat_sps_" + b]
        cells.append(f"{a} / {t} ({a/t:.2f}x)")
    cells.append(f"{r['qat_int8_sps']} / {tb} {best} ({r['qat_int8_sps']/tb:.2f}x)")
    print(f"| {r['model']} | " + " | ".join(cells) + " |")
PY
cat "$OUT/results.md"
