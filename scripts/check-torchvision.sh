#!/bin/sh
# check-torchvision.sh [WORK_DIR]: check qat import against torchvision 0.14.
#
# With Debian's /usr/bin/python3 (torch 1.13, torchvision 0.14) it makes
# resnet18(num_classes=10) and mobilenet_v2(num_classes=10) from a fixed
# seed (random weights, BatchNorm affine parameters and running statistics
# randomised so that BN matters), saves their state_dicts and their
# eval-mode logits on 16 fixed 3x32x32 images, which it also writes as a
# CIFAR-10 binary directory. It then runs qat import (normalisation mean 0,
# std 1: x = p/255, as the Python side computes) and qat eval --dump on
# that directory, and compares: the largest difference must be at most
# 1e-4 of the largest |logit|, and every argmax the same. Files go to
# WORK_DIR (default: a new temporary directory); it prints one line per
# model and exits 1 if one fails.
set -eu
PY=/usr/bin/python3
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-$(mktemp -d)}
mkdir -p "$WORK"
(cd "$ROOT" && go build -o "$WORK/qat" ./cmd/qat)

"$PY" - "$WORK" <<'EOF'
import os, sys
import numpy as np
import torch, torchvision

work = sys.argv[1]
g = torch.Generator().manual_seed(1)
pixels = torch.randint(0, 256, (16, 3, 32, 32), generator=g, dtype=torch.uint8)
labels = (torch.arange(16) % 10).to(torch.uint8)
# CIFAR-10 binary records: the label, then the red, green and blue planes.
records = torch.cat([labels.view(16, 1), pixels.view(16, -1)], 1).numpy().tobytes()
cifar = os.path.join(work, "cifar")
os.makedirs(cifar, exist_ok=True)
for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
    with open(os.path.join(cifar, name), "wb") as f:
        f.write(records)
x = pixels.to(torch.float32) / 255
for name in ("resnet18", "mobilenet_v2"):
    torch.manual_seed(0)
    m = getattr(torchvision.models, name)(num_classes=10)
    with torch.no_grad():
        for bn in m.modules():
            if isinstance(bn, torch.nn.BatchNorm2d):
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.normal_(0, 0.1)
                bn.running_mean.normal_(0, 0.2)
                bn.running_var.uniform_(0.5, 1.5)
                bn.num_batches_tracked.fill_(100)
    m.eval()
    torch.save(m.state_dict(), os.path.join(work, name + ".pt"))
    with torch.no_grad():
        np.save(os.path.join(work, name + "-torch.npy"), m(x).numpy())
EOF

for name in resnet18 mobilenet_v2; do
	"$WORK/qat" import --torch "$WORK/$name.pt" --model "$name" --out "$WORK/$name.safetensors"
	"$WORK/qat" eval --model "$WORK/$name.safetensors" --data "cifar10:$WORK/cifar" --dump "$WORK/$name-qat.npy"
done

"$PY" - "$WORK" <<'EOF'
import os, sys
import numpy as np

work, failed = sys.argv[1], False
for name in ("resnet18", "mobilenet_v2"):
    want = np.load(os.path.join(work, name + "-torch.npy"))
    got = np.load(os.path.join(work, name + "-qat.npy"))
    peak = float(np.abs(want).max())
    rel = float(np.abs(got - want).max()) / peak
    same = bool((got.argmax(1) == want.argmax(1)).all())
    ok = got.shape == want.shape and rel <= 1e-4 and same
    failed |= not ok
    print(f"{name}: max |logit| {peak:.4g}, max difference {rel:.3g} of it, argmax {'identical' if same else 'DIFFERENT'}: {'ok' if ok else 'FAIL'}")
sys.exit(1 if failed else 0)
EOF
