"""Checks ResoMap's optimiser steps against torch.optim, one step at a time:
for each step k it loads ResoMap's weights, buffers and optimiser state after
step k-1 into the torchvision model of the same name and torch.optim, takes
step k on the same batch with the same learning rate and compares with
ResoMap's after step k.

Why one step at a time: AdamW divides by sqrt(v)+eps, so an element whose
gradient is near zero moves by about ±lr whichever its sign. A difference of
one rounding in one step (torch.optim's lerp against a multiply-add, another
CPU's vector width) flips such elements, and on a net this small (BatchNorm
over six values in layer4) the flips grow over the next steps into
differences of 1e-2. Started from the same state, a step differs by roundings.
Usage: optim_parity.py MODEL DIR STEPS input.bin labels.bin N C H W NUM_CLASSES MEAN STD OPTIMIZER JSON_HPARAMS
DIR holds w0.st (initial weights) and, for k in 1..STEPS, wK.st and oK.st."""
import json, os, sys
import numpy as np
import torch, torchvision
from safetensors_np import load

(name, d, steps, xpath, ypath) = sys.argv[1:6]
steps = int(steps)
n, c, h, w, nc = map(int, sys.argv[6:11])
mean, std = float(sys.argv[11]), float(sys.argv[12])
opt_name, hp = sys.argv[13], json.loads(sys.argv[14])

torch.set_num_threads(2)
x = np.fromfile(xpath, dtype=np.uint8).reshape(n, c, h, w)
x = (torch.from_numpy(x).float() / 255.0 - mean) / std
y = torch.from_numpy(np.fromfile(ypath, dtype=np.int64))
# A ViT is built for its image size; with "seed" in the hyper-parameters,
# step k's dropout and stochastic depth draw after torch.manual_seed(seed+k),
# as ResoMap's model generator seeded alike does.
sized = {"image_size": h} if name.startswith("vit_") else {}
model = torchvision.models.__dict__[name](num_classes=nc, **sized)
model.train()
params = dict(model.named_parameters())


def optimiser(lr):
    if opt_name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=hp["momentum"], nesterov=hp["nesterov"],
                               weight_decay=hp["weight_decay"], foreach=False)
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"],
                             weight_decay=hp["weight_decay"], foreach=False)


def restore(opt, state, step):
    """ResoMap's optimiser state after step `step` into torch.optim's."""
    for pname, p in params.items():
        if opt_name == "sgd":
            opt.state[p] = {"momentum_buffer": state["momentum_buffer." + pname].clone()}
        else:
            opt.state[p] = {"step": torch.tensor(float(step)), "exp_avg": state["exp_avg." + pname].clone(),
                            "exp_avg_sq": state["exp_avg_sq." + pname].clone()}


def reference(opt):
    ref = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for pname, p in params.items():
        st = opt.state[p]
        if opt_name == "sgd":
            ref["momentum_buffer." + pname] = st["momentum_buffer"]
        else:
            ref["exp_avg." + pname] = st["exp_avg"]
            ref["exp_avg_sq." + pname] = st["exp_avg_sq"]
            ref["step"] = torch.tensor(int(st["step"]))
    return ref


worst, worst_key, missing, tensors = 0.0, "", [], 0
for k in range(1, steps + 1):
    lr = hp["lrs"][k - 1]
    model.load_state_dict(load(os.path.join(d, "w%d.st" % (k - 1))), strict=True)
    opt = optimiser(lr)
    if k > 1:
        restore(opt, load(os.path.join(d, "o%d.st" % (k - 1))), k - 1)
    opt.zero_grad(set_to_none=True)
    if "seed" in hp:
        torch.manual_seed(hp["seed"] + k)
    loss = torch.nn.functional.cross_entropy(model(x), y, label_smoothing=hp["label_smoothing"])
    loss.backward()
    opt.step()
    ours = load(os.path.join(d, "w%d.st" % k))
    ours.update(load(os.path.join(d, "o%d.st" % k)))
    ref = reference(opt)
    tensors = len(ref)
    missing += sorted(set(ref) ^ set(ours))
    for key, v in ref.items():
        if key not in ours:
            continue
        a, b = v.double(), ours[key].double()
        # Relative to the tensor's scale: the same arithmetic, but conv and
        # reduction kernels may sum in another order than the C++ frontend.
        diff = float((a - b).abs().max() / max(1e-3, float(a.abs().max())))
        if diff > worst:
            worst, worst_key = diff, "step %d: %s" % (k, key)
print(json.dumps({"model": name, "optimizer": opt_name, "steps": steps, "tensors": tensors, "missing": missing[:5],
                  "worst_rel_diff": worst, "worst": worst_key}))
sys.exit(0 if not missing and worst <= 1e-4 else 1)
