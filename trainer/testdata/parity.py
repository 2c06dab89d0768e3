"""Loads a ResoMap safetensors export into the torchvision model of the same
name with strict=True and compares eval-mode logits with ResoMap's.
With SEED LABELS LOSS it also compares a training-mode loss sum after
torch.manual_seed(SEED): ResoMap's per-model generator, seeded the same,
must draw PyTorch's dropout masks.
Usage: parity.py MODEL weights.safetensors input.bin logits.bin N C H W NUM_CLASSES MEAN STD [SEED LABELS LOSS]
Parses safetensors with numpy so that no extra package is needed."""
import json, sys
import numpy as np
import torch, torchvision
from safetensors_np import load

name, wpath, xpath, lpath = sys.argv[1:5]
n, c, h, w, nc = map(int, sys.argv[5:10])
mean, std = float(sys.argv[10]), float(sys.argv[11])

sd = load(wpath)

# A ViT is built for one image size (its position embedding's grid).
sized = {"image_size": h} if name.startswith("vit_") else {}
model = getattr(torchvision.models, name)(num_classes=nc, **sized)
model.load_state_dict(sd, strict=True)  # raises on any missing or extra key
model.eval()
x = np.fromfile(xpath, dtype=np.uint8).reshape(n, c, h, w)
x = (torch.from_numpy(x).float() / 255.0 - mean) / std
with torch.no_grad():
    ref = model(x).numpy()
ours = np.fromfile(lpath, dtype=np.float32).reshape(n, nc)
diff = float(np.abs(ref - ours).max())
report = {"model": name, "keys": len(sd), "max_abs_diff": diff}
ok = diff <= 1e-4
if len(sys.argv) > 12:
    seed, labels, our_loss = int(sys.argv[12]), sys.argv[13], float(sys.argv[14])
    y = torch.tensor([int(v) for v in labels.split(",")])
    model.train()
    torch.manual_seed(seed)
    with torch.no_grad():
        loss = float(torch.nn.functional.cross_entropy(model(x), y, reduction="sum"))
    report.update(train_loss=loss, ours=our_loss)
    ok = ok and abs(loss - our_loss) <= 1e-4 * abs(loss) + 1e-6  # relative: some losses are tiny
print(json.dumps(report))
sys.exit(0 if ok else 1)
