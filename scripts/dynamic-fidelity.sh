#!/usr/bin/env bash
# dynamic-fidelity.sh: dynamic quantization of linear layers (qat export --dynamic-linear) on
# a whole test set. Trains mlp (float, EPOCHS epochs on LIMIT training images) and lenet
# (float, EPOCHS epochs, then 1 W8A8 QAT epoch), exports the float mlp with every linear
# layer dynamic (float input) and the QAT lenet both static and with fc1, fc2 dynamic
# (convs static int8), evaluates each with the int8 runtime (`qat eval`), runs the ONNX
# exports in onnxruntime-node one sample a run (--batch 1) and in batches of 100, and compares
# onnxruntime's logits with `qat eval --dump`: argmax agreement, largest |logit difference|,
# fraction of samples whose every logit is the same float32. For contrast it also runs the
# usual onnxruntime dynamic-quantization graph of the mlp (DynamicQuantizeLinear per tensor,
# MatMulInteger, Cast, Mul, Add, built from the export's weights), whose range is the batch's.
#
# usage: scripts/dynamic-fidelity.sh [LIMIT] [EPOCHS]   (defaults 20000, 2; MNIST from
#        scripts/fetch-data.sh)
# env: OUT (default runs/dynamic-fidelity), PYTHON (default /usr/bin/python3 with Debian's
#      python3-onnx and numpy), ORT_NODE (default ~/.cache/qat/ort, as .ci/run installs it)
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT=${1:-20000}
EPOCHS=${2:-2}
OUT=${OUT:-runs/dynamic-fidelity}
PYTHON=${PYTHON:-/usr/bin/python3}
export ORT_NODE=${ORT_NODE:-$HOME/.cache/qat/ort}
QAT_DATA=${QAT_DATA:-$HOME/.cache/qat}
[ -d "$QAT_DATA/mnist" ] || { echo "dynamic-fidelity: $QAT_DATA/mnist missing: run scripts/fetch-data.sh" >&2; exit 1; }
"$PYTHON" -c 'import onnx, numpy' 2>/dev/null || { echo "dynamic-fidelity: $PYTHON lacks onnx or numpy: apt-get install python3-onnx" >&2; exit 1; }
mkdir -p "$OUT"
go build -o "$OUT/qat" ./cmd/qat
q=$OUT/qat
lscpu | grep -E 'Model name|^Model:|^CPU family|^CPU\(s\)'
$q train --model mlp --data mnist --limit "$LIMIT" --epochs "$EPOCHS" --out "$OUT/mlp-float.safetensors" --json --quiet > "$OUT/mlp-float.train.json"
$q train --model lenet --data mnist --limit "$LIMIT" --epochs "$EPOCHS" --out "$OUT/lenet-float.safetensors" --json --quiet > "$OUT/lenet-float.train.json"
$q finetune --from "$OUT/lenet-float.safetensors" --bits W8A8 --epochs 1 --limit "$LIMIT" --out "$OUT/lenet-w8a8.safetensors" --json --quiet > "$OUT/lenet-w8a8.train.json"
$q export --checkpoint "$OUT/mlp-float.safetensors" --out "$OUT/mlp-dyn.qmodel" --dynamic-linear --onnx "$OUT/mlp-dyn.onnx" --json > "$OUT/mlp-dyn.export.json"
$q export --checkpoint "$OUT/lenet-w8a8.safetensors" --out "$OUT/lenet-static.qmodel" --onnx "$OUT/lenet-static.onnx" --json > "$OUT/lenet-static.export.json"
$q export --checkpoint "$OUT/lenet-w8a8.safetensors" --out "$OUT/lenet-dyn.qmodel" --dynamic-linear --onnx "$OUT/lenet-dyn.onnx" --json > "$OUT/lenet-dyn.export.json"
for m in mlp-float.safetensors mlp-dyn.qmodel lenet-w8a8.safetensors lenet-static.qmodel lenet-dyn.qmodel; do
  dump=()
  case $m in *-dyn.qmodel) dump=(--dump "$OUT/${m%.qmodel}.qat.npy");; esac
  $q eval --model "$OUT/$m" --data mnist "${dump[@]}" --json > "$OUT/${m%.*}.eval.json"
done
# The test images as float32 pixels / 255, NCHW.
"$PYTHON" - "$QAT_DATA/mnist/t10k-images-idx3-ubyte" "$OUT/test.f32" <<'PY'
import sys, numpy as np
b = open(sys.argv[1], "rb").read()
(np.frombuffer(b, np.uint8, offset=16).astype(np.float32) / 255).tofile(sys.argv[2])
PY
# The usual per-tensor graph of the mlp, from the weights of qat's export.
"$PYTHON" - "$OUT/mlp-dyn.onnx" "$OUT/mlp-dql.onnx" <<'PY'
import sys, onnx
from onnx import helper, TensorProto
src = onnx.load(sys.argv[1])
init = {t.name: t for t in src.graph.initializer}
nodes, inits = [], []
def c(name):
    inits.append(init[name])
    return name
nodes += [helper.make_node("Sub", ["input", c("input/mean")], ["centered"]),
          helper.make_node("Div", ["centered", c("input/std")], ["normalized"]),
          helper.make_node("Flatten", ["normalized"], ["flat"], axis=1)]
x = "flat"
for i, n in enumerate(["fc1", "fc2", "fc3"]):
    nodes += [helper.make_node("DynamicQuantizeLinear", [x], [n + "/q", n + "/s", n + "/zp"]),
              helper.make_node("MatMulInteger", [n + "/q", c(n + "/weight"), n + "/zp", c(n + "/weight_zero_point")], [n + "/acc"]),
              helper.make_node("Cast", [n + "/acc"], [n + "/accf"], to=TensorProto.FLOAT),
              helper.make_node("Mul", [n + "/s", c(n + "/weight_scale")], [n + "/scale"]),
              helper.make_node("Mul", [n + "/accf", n + "/scale"], [n + "/prod"]),
              helper.make_node("Add", [n + "/prod", c(n + "/bias")], [n + "/y"])]
    x = n + "/y"
    if i < 2:
        nodes.append(helper.make_node("Relu", [x], [n + "/relu"]))
        x = n + "/relu"
nodes.append(helper.make_node("Identity", [x], ["logits"]))
g = helper.make_graph(nodes, "mlp-dql", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])],
                      [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
onnx.checker.check_model(m, full_check=True)
onnx.save(m, sys.argv[2])
PY
runs=()
for m in mlp-dyn lenet-dyn mlp-dql; do
  for b in 1 100; do
    node scripts/ort-run.js --batch $b "$OUT/$m.onnx" "$OUT/test.f32" 10000 1 28 28 "$OUT/$m.ort$b.f32" > "$OUT/$m.ort$b.json"
    runs+=("$m $b")
  done
done
"$PYTHON" - "$OUT" "$QAT_DATA/mnist/t10k-labels-idx1-ubyte" "${runs[@]}" <<'PY'
import json, os, sys, numpy as np
out, labels_file, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
labels = np.frombuffer(open(labels_file, "rb").read(), np.uint8, offset=8)
acc = lambda m: 100 * json.load(open(f"{out}/{m}.eval.json"))["accuracy"]
size = lambda f: os.path.getsize(f"{out}/{f}")
print("\n## Accuracy on the 10000 MNIST test images (qat eval) and file sizes\n")
print("| model | qat eval accuracy | file | bytes |\n|---|---|---|---|")
print(f"| mlp float | {acc('mlp-float'):.2f}% | mlp-float.safetensors (with Adam state) | {size('mlp-float.safetensors')} |")
print(f"| mlp, every linear dynamic (float input) | {acc('mlp-dyn'):.2f}% | mlp-dyn.qmodel / .onnx | {size('mlp-dyn.qmodel')} / {size('mlp-dyn.onnx')} |")
print(f"| lenet W8A8 QAT (fake-quant eval) | {acc('lenet-w8a8'):.2f}% | lenet-w8a8.safetensors | {size('lenet-w8a8.safetensors')} |")
print(f"| lenet static int8 | {acc('lenet-static'):.2f}% | lenet-static.qmodel / .onnx | {size('lenet-static.qmodel')} / {size('lenet-static.onnx')} |")
print(f"| lenet convs static, fc1 fc2 dynamic | {acc('lenet-dyn'):.2f}% | lenet-dyn.qmodel / .onnx | {size('lenet-dyn.qmodel')} / {size('lenet-dyn.onnx')} |")
print("\n## onnxruntime against qat's int8 runtime (logits of qat eval --dump)\n")
print("| ONNX graph | onnxruntime batch | argmax agreement | max abs logit diff | exact samples | onnxruntime accuracy |\n|---|---|---|---|---|---|")
for run in runs:
    m, b = run.split()
    ref = np.load(f"{out}/{m.replace('-dql', '-dyn')}.qat.npy").astype(np.float32)
    got = np.fromfile(f"{out}/{m}.ort{b}.f32", np.float32).reshape(ref.shape)
    agree = (got.argmax(1) == ref.argmax(1)).mean()
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64)).max()
    exact = (got.view(np.uint32) == ref.view(np.uint32)).all(1).mean()
    name = {"mlp-dyn": "mlp, qat's (per-sample range)", "lenet-dyn": "lenet, qat's (per-sample range)",
            "mlp-dql": "mlp, DynamicQuantizeLinear (per-tensor range)"}[m]
    print(f"| {name} | {b} | {agree:.4f} | {diff:g} | {100 * exact:.2f}% | {100 * (got.argmax(1) == labels).mean():.2f}% |")
PY
