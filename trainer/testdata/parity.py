"""Loads a ResoMap safetensors export into the torchvision model of the same
name with strict=True and compares eval-mode logits with ResoMap's.
Usage: parity.py MODEL weights.safetensors input.bin logits.bin N C H W NUM_CLASSES MEAN STD
Parses safetensors with numpy so that no extra package is needed."""
import json, struct, sys
import numpy as np
import torch, torchvision

name, wpath, xpath, lpath = sys.argv[1:5]
n, c, h, w, nc = map(int, sys.argv[5:10])
mean, std = float(sys.argv[10]), float(sys.argv[11])

DT = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8}
raw = open(wpath, "rb").read()
hl = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + hl])
data = raw[8 + hl:]
sd = {}
for k, v in header.items():
    if k == "__metadata__":
        continue
    lo, hi = v["data_offsets"]
    arr = np.frombuffer(data[lo:hi], dtype=DT[v["dtype"]]).reshape(v["shape"])
    sd[k] = torch.from_numpy(arr.copy())

model = getattr(torchvision.models, name)(num_classes=nc)
model.load_state_dict(sd, strict=True)  # raises on any missing or extra key
model.eval()
x = np.fromfile(xpath, dtype=np.uint8).reshape(n, c, h, w)
x = (torch.from_numpy(x).float() / 255.0 - mean) / std
with torch.no_grad():
    ref = model(x).numpy()
ours = np.fromfile(lpath, dtype=np.float32).reshape(n, nc)
diff = float(np.abs(ref - ours).max())
print(json.dumps({"model": name, "keys": len(sd), "max_abs_diff": diff}))
sys.exit(0 if diff <= 1e-4 else 1)
