#!/usr/bin/python3
"""int8 inference speed of qat's runtime and PyTorch 1.13's converted int8 model, alternated.

Usage: int8-vs-torch.py DATA_DIR MODEL TORCH_FLOAT.pt QAT.qmodel QAT_BINARY [ROUNDS]

After scripts/bench-cnn.sh (which leaves, per model, torch-float.pt, PyTorch's float weights, and
qat-W8A8.qmodel, qat's int8 model, under its OUT directory), this builds PyTorch's W8A8 model of
MODEL (resnet20 or mobilenet_v2) from TORCH_FLOAT.pt with scripts/torch_qat_cnn.py's own code,
calibrates its observers on 8 training batches, converts it for each quantized engine (onednn,
qnnpack), and then, ROUNDS times (default 3), times `qat eval` of QAT.qmodel (GOMAXPROCS=1,
--threads 1) and each converted model on the whole test split of DATA_DIR (a CIFAR-10 binary
directory), one thread each. The models' accuracies differ (PyTorch's is only calibrated, not
fine-tuned); the speed does not depend on them. Prints one JSON line of samples/s per round.
"""
import json, os, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch
import torch.ao.quantization as tq
import torch_qat_cnn as P

torch.set_num_threads(1)
d, name, ptfile, qmodel, qatbin = sys.argv[1:6]
rounds = int(sys.argv[6]) if len(sys.argv) > 6 else 3
xs, ys, xt, yt, mean, std = P.load_cifar(d, 8 * 128)
state = torch.load(ptfile)
convs = {}
for e in ('onednn', 'qnnpack'):
    if e not in torch.backends.quantized.supported_engines:
        continue
    torch.backends.quantized.engine = e
    q = P.quantized(state, name, 'W8A8', e)
    with torch.no_grad():
        for i in range(0, 8 * 128, 128):
            q(xs[i:i + 128])
    q.eval()
    convs[e] = tq.convert(q, inplace=False)
res = {'qat': []}
for e in convs:
    res[e] = []
for _ in range(rounds):
    out = subprocess.run([qatbin, 'eval', '--model', qmodel, '--data', 'cifar10:' + d, '--threads', '1', '--json'],
                         env=dict(os.environ, GOMAXPROCS='1'), capture_output=True, text=True, check=True).stdout
    res['qat'].append(round(json.loads(out)['samples_per_sec']))
    for e, c in convs.items():
        torch.backends.quantized.engine = e
        P.evaluate(c, xt[:500], yt[:500])  # warm up
        res[e].append(round(P.evaluate(c, xt, yt)[2]))
print(json.dumps(dict(model=name, **res)))
