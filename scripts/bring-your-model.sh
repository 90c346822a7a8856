#!/usr/bin/env bash
# bring-your-model.sh: the "bring your PyTorch model" path, end to end, for torchvision's
# resnet18 and mobilenet_v2 (Debian python3-torchvision 0.14):
#   1. PyTorch trains the model (FLOAT_EPOCHS epochs, Adam 1e-3, batch 128) on LIMIT images of
#      Fashion-MNIST-3ch (Fashion-MNIST padded to 32x32 and replicated to 3 channels, in
#      CIFAR-10's binary format: NOT CIFAR-10; scripts/make-fashion3 builds it), with the
#      per-channel normalisation qat computes for it, and saves model.state_dict();
#   2. qat import reads that .pt; qat eval --dump of the imported float checkpoint is compared
#      with PyTorch's eval-mode logits on the whole test set (max difference relative to the
#      max |logit|, argmax agreement);
#   3. qat finetune runs W8A8 QAT (QAT_EPOCHS on LIMIT images), qat export writes the int8 model
#      and ONNX, qat compare checks the int8 runtime against the fake-quant evaluation, and
#      onnxruntime-node runs the ONNX model on the test set against the int8 runtime's logits.
#
# usage: scripts/bring-your-model.sh [FLOAT_EPOCHS] [QAT_EPOCHS] [MODELS]
# env: OUT (default runs/bring-your-model), LIMIT (default 5000), PYTHON (/usr/bin/python3),
#      FASHION (/usr/share/datasets/fashion-mnist), QAT_DATA (~/.cache/qat), ORT_NODE
#      (default ~/.cache/qat/ort, as .ci/run installs it), THREADS (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
FE=${1:-1}
QE=${2:-1}
MODELS=${3:-resnet18 mobilenet_v2}
OUT=${OUT:-runs/bring-your-model}
LIMIT=${LIMIT:-5000}
PYTHON=${PYTHON:-/usr/bin/python3}
FASHION=${FASHION:-/usr/share/datasets/fashion-mnist}
QAT_DATA=${QAT_DATA:-$HOME/.cache/qat}
THREADS=${THREADS:-2}
export ORT_NODE=${ORT_NODE:-$HOME/.cache/qat/ort}
DATA="$QAT_DATA/fashion3"
mkdir -p "$OUT"
go build -o "$OUT/qat" ./cmd/qat
q="$OUT/qat"
[ -f "$DATA/test_batch.bin" ] || go run ./scripts/make-fashion3 -src "$FASHION" -out "$DATA"
grep -m1 'model name' /proc/cpuinfo
for m in $MODELS; do
  d="$OUT/$m"
  mkdir -p "$d"
  # 1. PyTorch: train, save the state_dict, the test logits and the normalisation used.
  OMP_NUM_THREADS=$THREADS "$PYTHON" - "$DATA" "$m" "$FE" "$LIMIT" "$d" <<'PY'
import json, os, sys, time
import numpy as np, torch, torch.nn.functional as F, torchvision
data, name, fe, limit, d = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def read(names):
    a = np.frombuffer(b''.join(open(os.path.join(data, n), 'rb').read() for n in names), np.uint8).reshape(-1, 3073)
    return torch.from_numpy(a[:, 1:].reshape(-1, 3, 32, 32).copy()), torch.from_numpy(a[:, 0].astype(np.int64))
xs, ys = read(['data_batch_%d.bin' % i for i in range(1, 6)])
xt, yt = read(['test_batch.bin'])
xs, ys = xs[:limit], ys[:limit]
xs, xt = xs.float() / 255, xt.float() / 255
# qat's cifar10 loader normalises with the per-channel mean and std of the whole training split.
full = read(['data_batch_%d.bin' % i for i in range(1, 6)])[0].double() / 255
mean = full.mean(dim=(0, 2, 3)).float(); std = full.std(dim=(0, 2, 3), unbiased=False).float()
norm = lambda x: (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
torch.manual_seed(0)
m = getattr(torchvision.models, name)(num_classes=10)
if name == 'mobilenet_v2':
    m.classifier[0].p = 0.0  # qat's mobilenet_v2 has no dropout
opt = torch.optim.Adam(m.parameters(), 1e-3)
t = time.perf_counter()
for _ in range(fe):
    m.train()
    perm = torch.randperm(len(xs))
    for i in range(0, len(xs), 128):
        j = perm[i:i + 128]
        opt.zero_grad(); F.cross_entropy(m(norm(xs[j])), ys[j]).backward(); opt.step()
m.eval()
with torch.no_grad():
    logits = torch.cat([m(norm(xt[i:i + 500])) for i in range(0, len(xt), 500)])
torch.save(m.state_dict(), os.path.join(d, 'torch.pt'))
np.save(os.path.join(d, 'torch-logits.npy'), logits.numpy())
json.dump(dict(accuracy=(logits.argmax(1) == yt).float().mean().item(), seconds=time.perf_counter() - t,
               mean=mean.tolist(), std=std.tolist(), torch=torch.__version__), open(os.path.join(d, 'torch.json'), 'w'))
PY
  read -r MEAN STD < <("$PYTHON" -c "import json,sys; j=json.load(open(sys.argv[1])); print(','.join('%.9g'%v for v in j['mean']), ','.join('%.9g'%v for v in j['std']))" "$d/torch.json")
  # 2. Import and check the float logits.
  $q import --torch "$d/torch.pt" --model "$m" --mean "$MEAN" --std "$STD" --out "$d/float.safetensors"
  $q eval --model "$d/float.safetensors" --data "cifar10:$DATA" --threads "$THREADS" --dump "$d/float-qat.npy" --json > "$d/float-eval.json"
  # 3. QAT, export, int8 against fake quant, onnxruntime against the int8 runtime.
  $q finetune --from "$d/float.safetensors" --data "cifar10:$DATA" --limit "$LIMIT" --bits W8A8 --epochs "$QE" --threads "$THREADS" --out "$d/w8a8.safetensors" --json --quiet > "$d/w8a8.json"
  $q export --checkpoint "$d/w8a8.safetensors" --out "$d/w8a8.qmodel" --onnx "$d/w8a8.onnx" --json > "$d/export.json"
  $q compare --checkpoint "$d/w8a8.safetensors" --model "$d/w8a8.qmodel" --threads "$THREADS" --json > "$d/compare.json"
  $q eval --model "$d/w8a8.qmodel" --data "cifar10:$DATA" --threads "$THREADS" --dump "$d/int8-qat.npy" --json > "$d/int8-eval.json"
  # The test images as float32 pixels / 255, NCHW (the ONNX graph's input).
  "$PYTHON" -c "import numpy as np, sys; a = np.fromfile(sys.argv[1], np.uint8).reshape(-1, 3073); (a[:, 1:].astype(np.float32) / 255).tofile(sys.argv[2])" "$DATA/test_batch.bin" "$d/test.f32"
  node scripts/ort-run.js "$d/w8a8.onnx" "$d/test.f32" 10000 3 32 32 "$d/ort.f32" > "$d/ort.json"
done
"$PYTHON" - "$OUT" $MODELS <<'PY'
import json, sys, numpy as np
out, models = sys.argv[1], sys.argv[2:]
print("\n| model | PyTorch acc | qat import acc | logits max diff / max |logit| | argmax = PyTorch | QAT W8A8 fake quant | int8 runtime | int8 = fake quant (argmax, max LSB) | onnxruntime = int8 (argmax, max LSB, exact) |")
print("|---|---|---|---|---|---|---|---|---|")
for m in models:
    d = f"{out}/{m}"
    j = lambda n: json.load(open(f"{d}/{n}.json"))
    t, fe, q, c, ie = j("torch"), j("float-eval"), j("w8a8"), j("compare"), j("int8-eval")
    want, got = np.load(f"{d}/torch-logits.npy"), np.load(f"{d}/float-qat.npy")
    rel = np.abs(got - want).max() / np.abs(want).max()
    agree = np.mean(got.argmax(1) == want.argmax(1))
    a = np.load(f"{d}/int8-qat.npy"); b = np.fromfile(f"{d}/ort.f32", np.float32).reshape(a.shape)
    lsb = np.min(np.diff(np.unique(a)))
    diff = np.abs(a.astype(np.float64) - b) / lsb
    print(f"| {m} | {100*t['accuracy']:.2f} | {100*fe['accuracy']:.2f} | {rel:.2g} | {100*agree:.2f}% | {100*q['accuracy']:.2f} | {100*ie['accuracy']:.2f} "
          f"| {100*c['argmax_agreement']:.2f}%, {c['max_abs_diff_lsb']} | {100*np.mean(a.argmax(1) == b.argmax(1)):.2f}%, {np.round(diff.max()):.0f}, {100*np.mean(np.all(np.round(diff) == 0, axis=1)):.1f}% |")
PY
