#!/usr/bin/python3
"""Generate train/testdata/optim_pytorch.json: PyTorch reference trajectories
for the optimizers in train/optim.go and the LR schedules in train/schedule.go.

Run from the repository root:

    /usr/bin/python3 train/testdata/gen_optim.py > train/testdata/optim_pytorch.json

Every optimizer uses the single-tensor CPU path (foreach=False) on float32
parameters. The learning rate is changed before every step (by writing
param_groups[i]["lr"]) so the test also checks that lr is applied per step.
Floats are written with Python's repr, which round-trips exactly; float32
values are exactly representable as the doubles written.
"""
import json
import math
import sys
import warnings

import torch

torch.manual_seed(20240611)
torch.set_num_threads(1)

STEPS = 20
# (name, shape, gradient scale, no_decay). fc1.weight (12) and fc1.bias (5)
# are below 16 elements and take ATen's scalar loop; conv.weight (66)
# exercises the AVX2 vector loop plus a scalar tail.
PARAMS = [
    ("fc1.weight", [3, 4], 1.0, False),
    ("fc1.bias", [5], 1e-3, True),
    ("conv.weight", [6, 11], 10.0, False),
]


def f32list(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


init = [torch.randn(shape, dtype=torch.float32) for _, shape, _, _ in PARAMS]
grads = []
for s in range(STEPS):
    row = []
    for (name, shape, scale, _), p in zip(PARAMS, init):
        g = (torch.randn(shape, dtype=torch.float32) * scale).to(torch.float32)
        # a few exact zeros (Adam's denominator then is just eps)
        if s % 5 == 2:
            g.view(-1)[0] = 0.0
        row.append(g)
    grads.append(row)


def lr_at(base, s):
    # an lr that changes every step
    return base * (1.0 + 0.5 * math.cos(0.7 * s))


CASES = [
    # name, Go config, torch constructor, base lr, per-group kwargs for
    # decayed / no-decay groups (None: single group with all params)
    ("sgd_momentum", {"Kind": "sgd", "Momentum": 0.9}, 0.05,
     lambda groups: torch.optim.SGD(groups, lr=0.05, momentum=0.9, foreach=False),
     None),
    ("sgd_nesterov_wd", {"Kind": "sgd", "Momentum": 0.9, "Nesterov": True, "WeightDecay": 1e-2}, 0.05,
     lambda groups: torch.optim.SGD(groups, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2, foreach=False),
     "weight_decay"),
    ("sgd_plain", {"Kind": "sgd", "NoMomentum": True}, 0.05,
     lambda groups: torch.optim.SGD(groups, lr=0.05, momentum=0.0, foreach=False),
     None),
    ("adam", {"Kind": "adam"}, 1e-3,
     lambda groups: torch.optim.Adam(groups, lr=1e-3, foreach=False),
     None),
    ("adam_wd", {"Kind": "adam", "WeightDecay": 0.05}, 1e-3,
     lambda groups: torch.optim.Adam(groups, lr=1e-3, weight_decay=0.05, foreach=False),
     "weight_decay"),
    ("adam_betas", {"Kind": "adam", "Beta1": 0.8, "Beta2": 0.99, "Eps": 1e-6}, 1e-2,
     lambda groups: torch.optim.Adam(groups, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, foreach=False),
     None),
    ("adamw", {"Kind": "adamw"}, 1e-3,
     lambda groups: torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.01, foreach=False),
     "weight_decay"),
    ("adamw_wd", {"Kind": "adamw", "WeightDecay": 0.5}, 1e-2,
     lambda groups: torch.optim.AdamW(groups, lr=1e-2, weight_decay=0.5, foreach=False),
     "weight_decay"),
]

STATE_KEYS = {"momentum_buffer": "momentum_buffer", "exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq"}

optimizers = []
for name, cfg, base, ctor, wd_key in CASES:
    params = [p.clone().requires_grad_(True) for p in init]
    if wd_key is None:
        groups = [{"params": params}]
        nodecay = [False] * len(params)
    else:
        # no_decay params go to a group with weight_decay=0
        nodecay = [nd for (_, _, _, nd) in PARAMS]
        groups = [
            {"params": [p for p, nd in zip(params, nodecay) if not nd]},
            {"params": [p for p, nd in zip(params, nodecay) if nd], wd_key: 0.0},
        ]
    opt = ctor(groups)
    lrs, after = [], []
    for s in range(STEPS):
        lr = lr_at(base, s)
        for g in opt.param_groups:
            g["lr"] = lr
        for p, g in zip(params, grads[s]):
            p.grad = g.clone()
        opt.step()
        lrs.append(lr)
        after.append([f32list(p) for p in params])
    state = {}
    for (pname, _, _, _), p in zip(PARAMS, params):
        for k, v in opt.state[p].items():
            if k in STATE_KEYS and v is not None:
                state[pname + "." + k] = f32list(v)
    optimizers.append({
        "name": name,
        "config": cfg,
        "no_decay": nodecay,
        "lrs": lrs,
        "params_after": after,
        "final_state": state,
    })


def run_sched(make, base, total):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=base)
    sched = make(opt)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(total):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
    return out


S = torch.optim.lr_scheduler


def warm(W, after):
    # linear warmup lr*(s+1)/W for s < W, then `after` (counted from W)
    return lambda opt: S.SequentialLR(
        opt, [S.LinearLR(opt, start_factor=1.0 / W, end_factor=1.0, total_iters=W - 1), after(opt)],
        milestones=[W])


SCHEDULES = [
    ("constant", {}, 0.1, 7, lambda opt: S.ConstantLR(opt, factor=1.0, total_iters=0)),
    ("step", {"Kind": "step", "StepSize": 3, "Gamma": 0.5}, 0.1, 12,
     lambda opt: S.StepLR(opt, step_size=3, gamma=0.5)),
    ("step_default_gamma", {"Kind": "step", "StepSize": 4}, 0.3, 13,
     lambda opt: S.StepLR(opt, step_size=4)),
    ("cosine", {"Kind": "cosine"}, 0.1, 15,
     lambda opt: S.CosineAnnealingLR(opt, T_max=15)),
    ("cosine_minlr", {"Kind": "cosine", "MinLR": 1e-4}, 0.01, 50,
     lambda opt: S.CosineAnnealingLR(opt, T_max=50, eta_min=1e-4)),
    ("warmup_cosine", {"Kind": "cosine", "MinLR": 1e-5, "WarmupSteps": 4}, 0.1, 20,
     warm(4, lambda opt: S.CosineAnnealingLR(opt, T_max=16, eta_min=1e-5))),
    ("warmup_step", {"Kind": "step", "StepSize": 5, "Gamma": 0.3, "WarmupSteps": 3}, 0.2, 16,
     warm(3, lambda opt: S.StepLR(opt, step_size=5, gamma=0.3))),
    ("warmup_constant", {"WarmupSteps": 5}, 0.05, 9,
     lambda opt: S.LinearLR(opt, start_factor=1.0 / 5, end_factor=1.0, total_iters=4)),
]

schedules = []
for name, cfg, base, total, make in SCHEDULES:
    schedules.append({"name": name, "config": cfg, "base_lr": base, "total": total,
                      "lrs": run_sched(make, base, total)})

json.dump({
    "generator": "train/testdata/gen_optim.py",
    "torch_version": torch.__version__,
    "steps": STEPS,
    "params": [{"name": n, "shape": sh, "init": f32list(p)} for (n, sh, _, _), p in zip(PARAMS, init)],
    "grads": [[f32list(g) for g in row] for row in grads],
    "optimizers": optimizers,
    "schedules": schedules,
}, sys.stdout, indent=None, separators=(",", ":"))
sys.stdout.write("\n")
