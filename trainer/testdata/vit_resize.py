"""Loads a ResoMap ViT export made for one image size into torchvision's
vit_b_16 for another, through torchvision's own interpolate_embeddings, and
compares its eval-mode logits with ResoMap's (the same weights evaluated at
the other size). Usage: vit_resize.py weights.safetensors SIZE input.bin logits.bin N C NUM_CLASSES MEAN STD"""
import json, sys
import numpy as np
import torch, torchvision
from torchvision.models.vision_transformer import interpolate_embeddings
from safetensors_np import load

wpath, size, xpath, lpath = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
n, c, nc = map(int, sys.argv[5:8])
mean, std = float(sys.argv[8]), float(sys.argv[9])
sd = interpolate_embeddings(size, 16, load(wpath))
model = torchvision.models.vit_b_16(num_classes=nc, image_size=size)
model.load_state_dict(sd, strict=True)
model.eval()
x = np.fromfile(xpath, dtype=np.uint8).reshape(n, c, size, size)
x = (torch.from_numpy(x).float() / 255.0 - mean) / std
with torch.no_grad():
    ref = model(x).numpy()
ours = np.fromfile(lpath, dtype=np.float32).reshape(n, nc)
diff = float(np.abs(ref - ours).max())
print(json.dumps({"size": size, "max_abs_diff": diff, "logit_range": float(np.abs(ref).max())}))
sys.exit(0 if diff <= 1e-4 else 1)
