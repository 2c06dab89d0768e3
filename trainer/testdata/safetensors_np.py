"""Reads a safetensors file with numpy only (Debian has no safetensors
package): {name: torch tensor}."""
import json, struct
import numpy as np
import torch

DT = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8}


def load(path):
    raw = open(path, "rb").read()
    hl = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + hl])
    data = raw[8 + hl:]
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        lo, hi = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[lo:hi], dtype=DT[v["dtype"]]).reshape(v["shape"]).copy())
    return out
