#!/usr/bin/python3
"""Write the PyTorch fixtures of package torchio into torchio/testdata.

Run with Debian's /usr/bin/python3 (torch 1.13): scripts/torch-fixtures.py [OUT_DIR].
The Go tests read only the files this writes; nothing runs Python at test time.

tiny.pt            torch.save(model.state_dict()) of the model tiny.json describes: conv 3->4 k3
                   pad 1 + BN + ReLU, maxpool 2, conv 4->6 k3 no bias + BN + ReLU6, flatten,
                   linear 24->5, with random weights, BN affine parameters and running
                   statistics (torch.manual_seed(0)) and num_batches_tracked 7
tiny-inputs.f32    4 inputs [4, 3, 8, 8], float32 little-endian, uniform in [-1, 1)
tiny-logits.f32    the model's eval-mode logits on them, [4, 5], float32 little-endian
resnet.pt          the same for the DAG of resnet.json: a stem conv + BN + ReLU, torchvision's
resnet-inputs.f32  BasicBlock (4 channels, then 8 at stride 2 with a 1x1 conv + BN downsample),
resnet-logits.f32  a depthwise conv 3x3 + BN + ReLU6, global average pooling, linear 8->3;
                   inputs [4, 3, 8, 8], logits [4, 3] (torch.manual_seed(2), inputs seed 3)
views.pt           views of one storage (torch.arange(10.)): sliced = [2:5] (offset 2), head =
                   [0:2], matrix = [:6].view(2, 3); and scalar = tensor(2.5), empty = zeros(0, 3)
noncontig.pt       transposed = arange(6.).view(2, 3).t(), strides (1, 3)
dtypes.pt          f16, bf16, f64 and i64 tensors of the values the test lists
int32.pt           idx = tensor([1, 2, 3], dtype=int32), a dtype torchio does not read
whole-model.pt     torch.save(model): the pickled modules, not a state_dict
legacy.pt          torch.save({"w": zeros(2)}, _use_new_zipfile_serialization=False)
evil.pt            a torch.save-style archive whose data.pkl, written by hand below (nothing is
                   pickled, so nothing can run), is {"weight": os.system("echo pwned")}
"""
import collections
import io
import os
import pickletools
import struct
import sys
import zipfile

import torch
import torch.nn as nn
from torchvision.models.resnet import BasicBlock, conv1x1

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torchio", "testdata")


def path(name):
    return os.path.join(OUT, name)


def tiny():
    torch.manual_seed(0)
    m = nn.Sequential(collections.OrderedDict(
        features=nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 6, 3, bias=False), nn.BatchNorm2d(6), nn.ReLU6()),
        flatten=nn.Flatten(),
        classifier=nn.Linear(24, 5)))
    randomize_bn(m)
    return m.eval()


def randomize_bn(m):
    """Random BN affine parameters and running statistics, so that BN matters."""
    with torch.no_grad():
        for bn in m.modules():
            if isinstance(bn, nn.BatchNorm2d):
                c = bn.num_features
                bn.weight.copy_(torch.rand(c) + 0.5)
                bn.bias.copy_(torch.randn(c) * 0.1)
                bn.running_mean.copy_(torch.randn(c) * 0.5)
                bn.running_var.copy_(torch.rand(c) + 0.5)
                bn.num_batches_tracked.fill_(7)


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.layer1 = nn.Sequential(BasicBlock(4, 4))
        self.layer2 = nn.Sequential(BasicBlock(4, 8, stride=2, downsample=nn.Sequential(conv1x1(4, 8, 2), nn.BatchNorm2d(8))))
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.dw_bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = self.layer2(self.layer1(torch.relu(self.bn1(self.conv1(x)))))
        x = nn.functional.relu6(self.dw_bn(self.dw(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def save_f32(name, t):
    with open(path(name), "wb") as f:
        f.write(t.detach().contiguous().to(torch.float32).numpy().astype("<f4").tobytes())


def evil():
    """The pickle of OrderedDict weight=os.system("echo pwned"), opcode by opcode (protocol 2)."""
    def unicode(s):
        b = s.encode()
        return b"X" + struct.pack("<I", len(b)) + b
    pkl = (b"\x80\x02"                              # PROTO 2
           b"ccollections\nOrderedDict\n)R"          # OrderedDict()
           + unicode("weight")
           + b"cos\nsystem\n"                        # GLOBAL os.system
           + unicode("echo pwned") + b"\x85R"        # system(("echo pwned",))
           + b"s.")                                  # SETITEM, STOP
    pickletools.dis(pkl, out=io.StringIO())  # checks the opcodes; disassembling runs nothing
    with zipfile.ZipFile(path("evil.pt"), "w", zipfile.ZIP_STORED) as z:
        z.writestr("evil/data.pkl", pkl)
        z.writestr("evil/version", "3\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    m = tiny()
    torch.save(m.state_dict(), path("tiny.pt"))
    torch.manual_seed(1)
    x = torch.rand(4, 3, 8, 8) * 2 - 1
    with torch.no_grad():
        logits = m(x)
    save_f32("tiny-inputs.f32", x)
    save_f32("tiny-logits.f32", logits)
    torch.save(m, path("whole-model.pt"))

    torch.manual_seed(2)
    r = ResNet()
    randomize_bn(r)
    r.eval()
    torch.save(r.state_dict(), path("resnet.pt"))
    torch.manual_seed(3)
    x = torch.rand(4, 3, 8, 8) * 2 - 1
    with torch.no_grad():
        logits = r(x)
    save_f32("resnet-inputs.f32", x)
    save_f32("resnet-logits.f32", logits)

    big = torch.arange(10, dtype=torch.float32)
    torch.save(collections.OrderedDict(sliced=big[2:5], head=big[0:2], matrix=big[:6].view(2, 3),
                                       scalar=torch.tensor(2.5), empty=torch.zeros(0, 3)), path("views.pt"))
    torch.save({"transposed": torch.arange(6, dtype=torch.float32).view(2, 3).t()}, path("noncontig.pt"))
    torch.save(collections.OrderedDict(
        f16=torch.tensor([1.5, -2.25, 65504.0, 2.0 ** -14, 2.0 ** -24, float("inf")], dtype=torch.float16),
        bf16=torch.tensor([1.5, -3.0, 2.0 ** 100, 2.0 ** -130], dtype=torch.bfloat16),
        f64=torch.tensor([0.1, -2.5, 1e300], dtype=torch.float64),
        i64=torch.tensor(7)), path("dtypes.pt"))
    torch.save({"idx": torch.tensor([1, 2, 3], dtype=torch.int32)}, path("int32.pt"))
    torch.save({"w": torch.zeros(2)}, path("legacy.pt"), _use_new_zipfile_serialization=False)
    evil()
    for name in sorted(os.listdir(OUT)):
        print(f"{os.path.getsize(path(name)):7d} {name}")


if __name__ == "__main__":
    main()
