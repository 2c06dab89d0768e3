"""Evaluates a ResoMap checkpoint with plain PyTorch and torchvision.

  python3 evaluate_in_pytorch.py best_model.safetensors IMAGE_FOLDER

IMAGE_FOLDER holds one sub-folder per class (named as in training), e.g. the
val/ folder of the data set the sweep trained on. The safetensors file says
everything else in its metadata: the model, the class names in label order,
the input size, the normalisation (mean/std of the training images) and the
validation transform. The weights load into torchvision's model of the same
name with strict=True. Prints the top-1 accuracy.

Needs torch, torchvision, numpy and Pillow; no ResoMap code.
"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torchvision
import torchvision.transforms as T
from PIL import Image

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8}


def read_safetensors(path):
    """Tensors and metadata of a safetensors file, with numpy only."""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, v in header.items():
        lo, hi = v["data_offsets"]
        arr = np.frombuffer(data[lo:hi], dtype=DTYPES[v["dtype"]]).reshape(v["shape"])
        tensors[name] = torch.from_numpy(arr.copy())
    return tensors, meta


def transform_of(meta):
    """The validation transform ResoMap used, from torchvision's parts."""
    res = int(meta["input_size"])
    norm = [T.ToTensor(), T.Normalize(json.loads(meta["mean"]), json.loads(meta["std"]))]
    if meta.get("augment") == "imagenet":
        return T.Compose([T.Resize(int(meta["resize"])), T.CenterCrop(res)] + norm)
    # CIFAR recipe: a centre square, resized once with a bicubic filter.
    square = T.Lambda(lambda im: T.functional.center_crop(im, min(im.size)))
    return T.Compose([square, T.Resize((res, res), interpolation=T.InterpolationMode.BICUBIC)] + norm)


def main():
    weights, folder = sys.argv[1], sys.argv[2]
    tensors, meta = read_safetensors(weights)
    classes = json.loads(meta["classes"])
    name = meta["model"]
    if not hasattr(torchvision.models, name):
        sys.exit("%s is not a torchvision model" % name)
    # A ViT is built for the size it was trained at (its position embedding).
    sized = {"image_size": int(meta["input_size"])} if name.startswith("vit_") else {}
    model = getattr(torchvision.models, name)(num_classes=len(classes), **sized)
    model.load_state_dict(tensors, strict=True)
    model.eval()
    channels = len(json.loads(meta["mean"]))
    tf = transform_of(meta)
    correct = total = 0
    with torch.no_grad():
        for label, cls in enumerate(classes):
            d = os.path.join(folder, cls)
            if not os.path.isdir(d):
                continue
            for f in sorted(os.listdir(d)):
                if not f.lower().endswith((".jpg", ".jpeg", ".png")):
                    continue
                im = Image.open(os.path.join(d, f)).convert("RGB" if channels == 3 else "L")
                pred = model(tf(im).unsqueeze(0)).argmax(1).item()
                correct += int(pred == label)
                total += 1
    if total == 0:
        sys.exit("no images of the checkpoint's classes %s in %s" % (classes, folder))
    print("accuracy %.6f over %d images" % (correct / total, total))


if __name__ == "__main__":
    main()
