"""The PyTorch side of ResoMap's GPU benchmark.

Trains torchvision's models on synthetic data with plain PyTorch (SGD with
momentum, cuDNN benchmark mode) and writes one JSON row per case, in the form
`build/resomap-bench --device cuda --json` writes, so scripts/gpu-check.sh can
put the two side by side. The cases are the same: resnet18 and vgg11 at 224
(batch 256) and 512 px (batch 64), one model of each later family at 224
(batch 128), fp32 and bf16 autocast + channels-last.

Usage: python3 bench/torch_reference.py OUT.json [--steps 12] [--warmup 4]
"""
import argparse
import json
import time

import torch
import torchvision

CASES = [(model, res, 256 if res == 224 else 64) for model in ("resnet18", "vgg11") for res in (224, 512)] + [
    (model, 224, 128) for model in ("mobilenet_v3_large", "efficientnet_b0", "convnext_tiny", "regnet_y_400mf", "vit_b_16")]


def images_per_second(model_name, res, batch, fast, steps, warmup):
    """Times `steps` training steps after `warmup` untimed ones."""
    net = getattr(torchvision.models, model_name)(num_classes=10).cuda()
    fmt = torch.channels_last if fast else torch.contiguous_format
    net = net.to(memory_format=fmt)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, res, res, device="cuda").to(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device="cuda")

    def train_step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=fast):
            loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        train_step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        train_step()
    torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=4)
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    rows = []
    for model, res, batch in CASES:
        for fast in (False, True):
            ips = images_per_second(model, res, batch, fast, args.steps, args.warmup)
            row = {"model": model, "res": res, "bs": batch, "bf16": fast, "channels_last": fast, "img_s": round(ips, 1)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
