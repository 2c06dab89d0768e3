"""Trains the torchvision model of the same name from ResoMap's initial
weights with torch.optim on the same batch and compares the weights, buffers
and optimiser state with ResoMap's after the same steps.
Usage: optim_parity.py MODEL init.safetensors final.safetensors final.optim.safetensors
         input.bin labels.bin N C H W NUM_CLASSES MEAN STD OPTIMIZER JSON_HPARAMS"""
import json, sys
import numpy as np
import torch, torchvision
from safetensors_np import load

(name, init_path, final_path, optim_path, xpath, ypath) = sys.argv[1:7]
n, c, h, w, nc = map(int, sys.argv[7:12])
mean, std = float(sys.argv[12]), float(sys.argv[13])
opt_name, hp = sys.argv[14], json.loads(sys.argv[15])


torch.set_num_threads(2)
model = getattr(torchvision.models, name)(num_classes=nc)
model.load_state_dict(load(init_path), strict=True)
model.train()
params = dict(model.named_parameters())
if opt_name == "sgd":
    opt = torch.optim.SGD(model.parameters(), lr=hp["lrs"][0], momentum=hp["momentum"], nesterov=hp["nesterov"],
                          weight_decay=hp["weight_decay"], foreach=False)
else:
    opt = torch.optim.AdamW(model.parameters(), lr=hp["lrs"][0], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"],
                            weight_decay=hp["weight_decay"], foreach=False)
x = np.fromfile(xpath, dtype=np.uint8).reshape(n, c, h, w)
x = (torch.from_numpy(x).float() / 255.0 - mean) / std
y = torch.from_numpy(np.fromfile(ypath, dtype=np.int64))
for lr in hp["lrs"]:
    for g in opt.param_groups:
        g["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(x), y, label_smoothing=hp["label_smoothing"])
    loss.backward()
    opt.step()

ours = load(final_path)
ours.update(load(optim_path))
ref = {k: v.detach() for k, v in model.state_dict().items()}
for pname, p in params.items():
    st = opt.state[p]
    if opt_name == "sgd":
        ref["momentum_buffer." + pname] = st["momentum_buffer"]
    else:
        ref["exp_avg." + pname] = st["exp_avg"]
        ref["exp_avg_sq." + pname] = st["exp_avg_sq"]
        ref["step"] = torch.tensor(int(st["step"]))
worst, worst_key = 0.0, ""
missing = sorted(set(ref) ^ set(ours))
for k, v in ref.items():
    if k not in ours:
        continue
    a, b = v.double(), ours[k].double()
    # Relative to the tensor's scale: the same arithmetic, but conv and
    # reduction kernels may sum in another order than the C++ frontend.
    d = float((a - b).abs().max() / max(1e-3, float(a.abs().max())))
    if d > worst:
        worst, worst_key = d, k
print(json.dumps({"model": name, "optimizer": opt_name, "tensors": len(ref), "missing": missing[:5],
                  "worst_rel_diff": worst, "worst": worst_key}))
sys.exit(0 if not missing and worst <= 1e-4 else 1)
