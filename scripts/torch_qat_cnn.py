#!/usr/bin/python3
"""Peer: PyTorch 1.13 eager-mode QAT of resnet20 and mobilenet_v2 on 3-channel 32x32 images.

The successor of ../shared/peers/torch_qat.py (lenet and mlp on MNIST) for the models of
qat's "Real networks": the same architectures with the same module names as qat's built-in
resnet20 and mobilenet_v2 (model/builtin.go), the same data (a CIFAR-10 binary directory:
data_batch_1..5.bin, test_batch.bin; scripts/make-fashion3 builds Fashion-MNIST-3ch, which is
not CIFAR-10), the same normalisation (per-channel mean and std of the training images used)
and the same schedule as scripts/bench-cnn.sh gives qat: float training with Adam 1e-3, then
post-training quantization (moving-average min/max calibration on 32 training batches, BN in
eval mode) and QAT fine-tuning
with Adam 1e-4 from the float weights, batch 128, no augmentation.

Usage: torch_qat_cnn.py [--save-float PATH] DATA_DIR MODEL(resnet20|mobilenet_v2) FLOAT_EPOCHS QAT_EPOCHS LIMIT BITS...
BITS are W8A8 or W4A4 (fake quantization at those widths; int8 conversion for W8A8 only).
--save-float writes the trained float model's state_dict (torch.save), which qat import reads, so
that qat's QAT can start from the very weights PyTorch's starts from.
Prints one JSON line with accuracies (top-1, top-5), training samples/s and int8 eval samples/s
under each quantized engine this PyTorch has (qnnpack, onednn).

Residual adds are FloatFunctional (add_relu, skip_add), as torchvision's quantizable models
write them; mobilenet_v2 is torchvision.models.quantization.mobilenet_v2 with its classifier
dropout set to 0, because qat's mobilenet_v2 has none.
"""
import json, os, sys, time
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F
import torch.ao.quantization as tq
import torchvision


def load_cifar(d, limit):
    def read(names):
        raw = b''.join(open(os.path.join(d, n), 'rb').read() for n in names)
        a = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3073)
        return torch.from_numpy(a[:, 1:].reshape(-1, 3, 32, 32).copy()), torch.from_numpy(a[:, 0].astype(np.int64))
    xs, ys = read(['data_batch_%d.bin' % i for i in range(1, 6)])
    xt, yt = read(['test_batch.bin'])
    # Per-channel mean and std of the whole training split, as qat's cifar10 loader computes them
    # (float64 sums, rounded to float32), before any limit.
    full = xs.double().div(255)
    mean = full.mean(dim=(0, 2, 3)).float()
    std = full.std(dim=(0, 2, 3), unbiased=False).float()
    if limit:
        xs, ys = xs[:limit], ys[:limit]
    xs, xt = xs.float().div(255), xt.float().div(255)
    norm = lambda x: (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    return norm(xs), ys, norm(xt), yt, mean, std


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.add_relu = nn.quantized.FloatFunctional()

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = x if self.downsample is None else self.downsample(x)
        return self.add_relu.add_relu(y, s)

    def fuse(self):
        tq.fuse_modules_qat(self, [['conv1', 'bn1', 'relu'], ['conv2', 'bn2']], inplace=True)
        if self.downsample is not None:
            tq.fuse_modules_qat(self.downsample, [['0', '1']], inplace=True)


class ResNet20(nn.Module):
    """He et al. 2016's CIFAR ResNet-20 with 1x1 conv + BN shortcuts (option B), qat's names."""
    def __init__(self, classes=10):
        super().__init__()
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.conv1, self.bn1, self.relu = nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        cin, stages = 16, []
        for i, w in enumerate([16, 32, 64]):
            blocks = []
            for b in range(3):
                blocks.append(BasicBlock(cin, w, 2 if i > 0 and b == 0 else 1))
                cin = w
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(self.quant(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.dequant(self.fc(torch.flatten(self.avgpool(x), 1)))

    def fuse_model(self, is_qat=True):
        tq.fuse_modules_qat(self, [['conv1', 'bn1', 'relu']], inplace=True)
        for m in self.modules():
            if isinstance(m, BasicBlock):
                m.fuse()


def make(name):
    if name == 'resnet20':
        return ResNet20()
    m = torchvision.models.quantization.mobilenet_v2(weights=None, quantize=False, num_classes=10)
    m.classifier[0].p = 0.0
    return m


def epoch(model, opt, xs, ys, bs=128):
    model.train()
    perm = torch.randperm(len(xs))
    for i in range(0, len(xs), bs):
        j = perm[i:i + bs]
        opt.zero_grad()
        F.cross_entropy(model(xs[j]), ys[j]).backward()
        opt.step()
    return len(xs)


@torch.no_grad()
def evaluate(model, xt, yt, bs=250):
    model.eval()
    top1 = top5 = 0
    t = time.perf_counter()
    for i in range(0, len(xt), bs):
        out = model(xt[i:i + bs])
        y = yt[i:i + bs]
        top1 += (out.argmax(1) == y).sum().item()
        top5 += (out.topk(5, 1).indices == y[:, None]).any(1).sum().item()
    return top1 / len(xt), top5 / len(xt), len(xt) / (time.perf_counter() - t)


def qconfig(bits, engine):
    if bits == 'W8A8':
        return tq.get_default_qat_qconfig(engine)
    # W4A4: 4-bit symmetric per-channel weights and 4-bit affine activations with the default
    # observers, the narrower-range analogue of the default QAT qconfig.
    act = tq.FakeQuantize.with_args(observer=tq.MovingAverageMinMaxObserver, quant_min=0, quant_max=15,
                                    dtype=torch.quint8, qscheme=torch.per_tensor_affine)
    w = tq.FakeQuantize.with_args(observer=tq.MovingAveragePerChannelMinMaxObserver, quant_min=-8, quant_max=7,
                                  dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
    return tq.QConfig(activation=act, weight=w)


def quantized(float_state, name, bits, engine):
    m = make(name)
    m.load_state_dict(float_state)
    m.train()
    m.fuse_model(is_qat=True)
    m.qconfig = qconfig(bits, engine)
    tq.prepare_qat(m, inplace=True)
    return m


def main():
    args = sys.argv[1:]
    save_float = None
    if args[:1] == ['--save-float']:
        save_float, args = args[1], args[2:]
    d, name = args[0], args[1]
    fe, qe, limit = int(args[2]), int(args[3]), int(args[4])
    bits_list = args[5:] or ['W8A8']
    torch.manual_seed(0)
    xs, ys, xt, yt, mean, std = load_cifar(d, limit)
    m = make(name)
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    t = time.perf_counter()
    n = sum(epoch(m, opt, xs, ys) for _ in range(fe))
    out = dict(peer='pytorch-' + torch.__version__, threads=torch.get_num_threads(), model=name, data=d,
               float_epochs=fe, qat_epochs=qe, train_n=len(xs), float_train_sps=round(n / (time.perf_counter() - t)),
               mean=mean.tolist(), std=std.tolist())
    out['acc_float'], out['top5_float'], _ = evaluate(m, xt, yt)
    state = m.state_dict()
    if save_float:
        torch.save(state, save_float)
    engines = [e for e in ('qnnpack', 'onednn') if e in torch.backends.quantized.supported_engines]
    for bits in bits_list:
        engine = engines[0]
        torch.backends.quantized.engine = engine
        # PTQ: observers on 32 training batches of 128 in eval mode (BN on its running statistics,
        # as qat calibrate runs), no gradient step.
        p = quantized(state, name, bits, engine)
        p.eval()
        p.apply(tq.disable_fake_quant)
        with torch.no_grad():
            for i in range(0, 32 * 128, 128):
                p(xs[i:i + 128])
        p.apply(tq.enable_fake_quant)
        out['ptq_' + bits], _, _ = evaluate(p, xt, yt)
        q = quantized(state, name, bits, engine)
        opt = torch.optim.Adam(q.parameters(), 1e-4)
        t = time.perf_counter()
        n = sum(epoch(q, opt, xs, ys) for _ in range(qe))
        out['qat_train_sps_' + bits] = round(n / (time.perf_counter() - t))
        out['qat_' + bits], out['qat_top5_' + bits], out['fakequant_eval_sps_' + bits] = evaluate(q, xt, yt)
        if bits != 'W8A8':
            continue
        q.eval()
        for e in engines:
            torch.backends.quantized.engine = e
            c = tq.convert(q, inplace=False)
            evaluate(c, xt[:500], yt[:500])  # warm up
            out['int8_' + e], _, out['int8_eval_sps_' + e] = evaluate(c, xt, yt)
    print(json.dumps(out))


if __name__ == '__main__':
    main()
