#!/usr/bin/env bash
# onnx-fidelity.sh: does onnxruntime compute what qat's int8 runtime computes, on this
# machine, on a whole test set? Trains lenet (1 float epoch, then 1 W8A8 QAT epoch and
# 1 W4A4 LSQ epoch, on LIMIT training images), exports each quantized model as an int8
# model and as ONNX, runs the ONNX model in onnxruntime-node on the full test set and
# compares its logits with `qat eval --model M.qmodel --dump`: argmax agreement, largest
# difference in output codes (LSB), fraction of samples with equal codes. Also times
# both ONNX weight encodings in onnxruntime, one thread: qat's default (8-bit layers as
# uint8 with zero point 128, exact everywhere) and the same model with int8 weights
# (exact only where onnxruntime's u8 x s8 kernels do not saturate, i.e. with VNNI).
#
# FORMAT qdq measures the QDQ form instead (`qat export --onnx-format qdq|qdq-int4`),
# which onnxruntime does not compute bit for bit: lenet W8A8 and W4A4 and the graph
# model/testdata/residual-mnist.json (add, concat; 5 float epochs on LIMIT images, as
# it learns slowly, then the same QAT epochs) W8A8 and W4A4, each exported as
# qdq (opset 13, int8 weights) and, for W4A4, qdq-int4 (opset 21, int4 weights), run
# with onnxruntime's graph optimizations on (all, its default: QDQ groups fused into
# integer kernels where it can) and off (disabled: the float graph as written); the
# table adds both accuracies and the operators onnxruntime runs after optimization.
#
# usage: scripts/onnx-fidelity.sh [DATA] [LIMIT] [FORMAT]
#   DATA: mnist (default) or fashion-mnist (scripts/fetch-data.sh); LIMIT default 20000;
#   FORMAT: qlinear (default) or qdq
# env: OUT (default runs/onnx-fidelity), PYTHON (default /usr/bin/python3 with Debian's
#      python3-onnx and numpy), ORT_NODE (default ~/.cache/qat/ort, as .ci/run installs it)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-mnist}
LIMIT=${2:-20000}
FORMAT=${3:-qlinear}
case $FORMAT in qlinear|qdq) ;; *) echo "onnx-fidelity: FORMAT $FORMAT: want qlinear or qdq" >&2; exit 2;; esac
OUT=${OUT:-runs/onnx-fidelity}
PYTHON=${PYTHON:-/usr/bin/python3}
export ORT_NODE=${ORT_NODE:-$HOME/.cache/qat/ort}
QAT_DATA=${QAT_DATA:-$HOME/.cache/qat}
[ -d "$QAT_DATA/$DATA" ] || { echo "onnx-fidelity: $QAT_DATA/$DATA missing: run scripts/fetch-data.sh" >&2; exit 1; }
"$PYTHON" -c 'import onnx, numpy' 2>/dev/null || { echo "onnx-fidelity: $PYTHON lacks onnx or numpy: apt-get install python3-onnx" >&2; exit 1; }
mkdir -p "$OUT"
go build -o "$OUT/qat" ./cmd/qat
q=$OUT/qat
$q version 2>/dev/null || true
grep -m1 'model name' /proc/cpuinfo
$q train --model lenet --data "$DATA" --limit "$LIMIT" --epochs 1 --out "$OUT/float.safetensors" --json --quiet > "$OUT/float.json"
$q finetune --from "$OUT/float.safetensors" --bits W8A8 --epochs 1 --out "$OUT/w8a8.safetensors" --json --quiet > "$OUT/w8a8.json"
$q finetune --from "$OUT/float.safetensors" --bits W4A4 --learnable lsq --epochs 1 --out "$OUT/w4a4.safetensors" --json --quiet > "$OUT/w4a4.json"
# The test images as float32 pixels / 255, NCHW.
"$PYTHON" - "$QAT_DATA/$DATA/t10k-images-idx3-ubyte" "$OUT/test.f32" <<'PY'
import sys, numpy as np
b = open(sys.argv[1], "rb").read()
n, h, w = (int.from_bytes(b[i:i+4], "big") for i in (4, 8, 12))
(np.frombuffer(b, np.uint8, offset=16).astype(np.float32) / 255).tofile(sys.argv[2])
print(n, h, w, file=open(sys.argv[2] + ".shape", "w"))
PY
read -r N H W < "$OUT/test.f32.shape"
if [ "$FORMAT" = qdq ]; then
  spec=model/testdata/residual-mnist.json
  $q train --model $spec --data "$DATA" --limit "$LIMIT" --epochs 5 --out "$OUT/dag-float.safetensors" --json --quiet > "$OUT/dag-float.json"
  $q finetune --from "$OUT/dag-float.safetensors" --bits W8A8 --epochs 1 --out "$OUT/dag-w8a8.safetensors" --json --quiet > "$OUT/dag-w8a8.json"
  $q finetune --from "$OUT/dag-float.safetensors" --bits W4A4 --learnable lsq --epochs 1 --out "$OUT/dag-w4a4.safetensors" --json --quiet > "$OUT/dag-w4a4.json"
  runs=()
  for m in w8a8 w4a4 dag-w8a8 dag-w4a4; do
    formats="qdq"
    case $m in *w4a4) formats="qdq qdq-int4";; esac
    for f in $formats; do
      $q export --checkpoint "$OUT/$m.safetensors" --out "$OUT/$m-$f.qmodel" --onnx "$OUT/$m-$f.onnx" --onnx-format $f --json > "$OUT/$m-$f.export.json"
      $q eval --model "$OUT/$m-$f.qmodel" --data "$DATA" --dump "$OUT/$m-$f.qat.npy" --json > "$OUT/$m-$f.eval.json"
      for o in all disabled; do
        node scripts/ort-run.js --opt $o --optimized "$OUT/$m-$f-$o.optimized.onnx" "$OUT/$m-$f.onnx" "$OUT/test.f32" "$N" 1 "$H" "$W" "$OUT/$m-$f-$o.ort.f32" > "$OUT/$m-$f-$o.ort.json" 2> "$OUT/$m-$f-$o.ort.log"
        runs+=("$m $f $o")
      done
    done
  done
  "$PYTHON" - "$OUT" "$DATA" "$N" "$QAT_DATA/$DATA/t10k-labels-idx1-ubyte" "${runs[@]}" <<'PY'
import collections, json, sys, numpy as np, onnx
out, data, n, labels_file, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:]
labels = np.frombuffer(open(labels_file, "rb").read(), np.uint8, offset=8).astype(np.int64)
print(f"\n## QDQ ONNX in onnxruntime against qat's int8 runtime: {data} test set ({n} images)\n")
print("| model | --onnx-format (opset) | onnxruntime optimizations | argmax agreement | max diff (LSB) | exact samples | qat int8 acc | onnxruntime acc | what onnxruntime runs |")
print("|---|---|---|---|---|---|---|---|---|")
for run in runs:
    m, f, o = run.split()
    a = np.load(f"{out}/{m}-{f}.qat.npy")
    b = np.fromfile(f"{out}/{m}-{f}-{o}.ort.f32", np.float32).reshape(a.shape)
    lsb = np.min(np.diff(np.unique(a)))  # the output scale: logits are (code - zp) * scale
    d = np.round(np.abs(a.astype(np.float64) - b) / lsb)
    e = json.load(open(f"{out}/{m}-{f}.export.json"))
    g = onnx.load(f"{out}/{m}-{f}-{o}.optimized.onnx")
    ops = collections.Counter((x.domain + "." if x.domain else "") + x.op_type for x in g.graph.node)
    kernels = ", ".join(f"{k} {ops[k]}" for k in sorted(ops) if k.startswith("com.microsoft.") or k in ("Conv", "Gemm", "Add", "Concat", "GlobalAveragePool"))
    name = ("lenet " if not m.startswith("dag") else "residual-mnist ") + m.removeprefix("dag-").upper()
    print(f"| {name} | {f} ({e['onnx_opset']}) | {o} | {np.mean(a.argmax(1) == b.argmax(1)):.4f} | {d.max():.0f} "
          f"| {100*np.mean(np.all(d == 0, axis=1)):.2f}% | {100*np.mean(a.argmax(1) == labels):.2f}% "
          f"| {100*np.mean(b.argmax(1) == labels):.2f}% | {kernels} |")
PY
  exit 0
fi
for m in w8a8 w4a4; do
  for r in float fixed; do
    [ $m = w4a4 ] && [ $r = fixed ] && continue
    $q export --checkpoint "$OUT/$m.safetensors" --out "$OUT/$m-$r.qmodel" --requant $r --onnx "$OUT/$m-$r.onnx" --json > "$OUT/$m-$r.export.json"
    $q eval --model "$OUT/$m-$r.qmodel" --data "$DATA" --dump "$OUT/$m-$r.qat.npy" --json > "$OUT/$m-$r.eval.json"
    node scripts/ort-run.js --repeat 3 "$OUT/$m-$r.onnx" "$OUT/test.f32" "$N" 1 "$H" "$W" "$OUT/$m-$r.ort.f32" > "$OUT/$m-$r.ort.json"
  done
done
# The int8-weight form of the W8A8 model, for timing (and its fidelity here).
"$PYTHON" - "$OUT/w8a8-float.onnx" "$OUT/w8a8-s8.onnx" <<'PY'
import sys, numpy as np, onnx
from onnx import numpy_helper
m = onnx.load(sys.argv[1])
inits = {t.name: t for t in m.graph.initializer}
for node in m.graph.node:
    if node.op_type != "QLinearConv":
        continue
    w, wz = inits[node.input[3]], inits[node.input[5]]
    if w.data_type != onnx.TensorProto.UINT8:
        continue
    wv = numpy_helper.to_array(w).astype(np.int16) - numpy_helper.to_array(wz).astype(np.int16).reshape(-1, 1, 1, 1)
    w.CopyFrom(numpy_helper.from_array(wv.astype(np.int8), w.name))
    wz.CopyFrom(numpy_helper.from_array(np.zeros(wv.shape[0], np.int8), wz.name))
onnx.save(m, sys.argv[2])
PY
node scripts/ort-run.js --repeat 3 "$OUT/w8a8-s8.onnx" "$OUT/test.f32" "$N" 1 "$H" "$W" "$OUT/w8a8-s8.ort.f32" > "$OUT/w8a8-s8.ort.json"
cp "$OUT/w8a8-float.qat.npy" "$OUT/w8a8-s8.qat.npy"; cp "$OUT/w8a8-float.export.json" "$OUT/w8a8-s8.export.json"
"$PYTHON" - "$OUT" "$DATA" "$N" <<'PY'
import json, sys, numpy as np
out, data, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
print(f"\n## onnxruntime against qat's int8 runtime: lenet, {data} test set ({n} images)\n")
print("| model | ONNX weights | argmax agreement | max diff (LSB) | exact samples | onnxruntime s (1 thread, best of 3) |")
print("|---|---|---|---|---|---|")
for name in ["w8a8-float", "w8a8-fixed", "w4a4-float", "w8a8-s8"]:
    a = np.load(f"{out}/{name}.qat.npy")
    b = np.fromfile(f"{out}/{name}.ort.f32", np.float32).reshape(a.shape)
    u = np.unique(a)
    lsb = np.min(np.diff(u))  # the output scale: logits are (code - zp) * scale
    d = np.abs(a.astype(np.float64) - b) / lsb
    e = json.load(open(f"{out}/{name}.export.json"))
    enc = "int8 (forced)" if name.endswith("s8") else ("uint8 in " + ",".join(e["onnx_uint8_weights"]) if e["onnx_uint8_weights"] else "int8")
    t = json.load(open(f"{out}/{name}.ort.json"))
    print(f"| {name} | {enc} | {np.mean(a.argmax(1) == b.argmax(1)):.4f} | {np.round(d.max()):.0f} "
          f"| {100*np.mean(np.all(np.round(d) == 0, axis=1)):.1f}% | {t['seconds']:.3f} |")
PY
