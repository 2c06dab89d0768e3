"""The plain PyTorch script of a ResoMap training on Fashion-MNIST: what a
user would write to train the same job, for `make bench-train` to put next
to ResoMap's run of it (cmd/resomap-bench --job).

The same job as ResoMap's: the first TRAIN training images and the first
VAL test images, resized to RES px with PIL's bicubic (ResoMap's cache uses
Catmull-Rom, the same cubic), normalised by the training split's mean and
std, random crop after zero padding and horizontal flip, SGD with nesterov
momentum and weight decay on every parameter, label smoothing, cosine per
step after a linear warm-up, the last partial batch dropped, the model
validated after each epoch, and best = the accuracy at the lowest
validation loss. The model is torchvision's (resnet18 with a one-channel
stem, as ResoMap builds it) or ResoMap's smallcnn written out below.
Augmentation runs serially in the training process, as a simple script's
DataLoader(num_workers=0) does. Differences that remain: the random
streams (initialisation, order, crops) are PyTorch's, not ResoMap's, and
the statistics are of the 28 px images (ResoMap's, of the resized ones).

Prints one JSON line: per-epoch training images/s (from the first step to
the end of the epoch's training, data included), validation seconds and
accuracy, and the best accuracy.
Usage: torch_train_reference.py --model resnet18 --res 32 --epochs 3 --seed 1
"""
import argparse
import gzip
import json
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from PIL import Image
from torchvision import transforms

DATA = "/usr/share/datasets/fashion-mnist"


def idx(name):
    raw = gzip.open("%s/%s.gz" % (DATA, name)).read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


class SmallCNN(nn.Module):
    """ResoMap's smallcnn (torch/csrc/resomap.cpp)."""

    def __init__(self, in_ch, nc):
        super().__init__()
        layers, c = [], in_ch
        for i, v in enumerate((16, 32, 64)):
            if i > 0:
                layers.append(nn.MaxPool2d(2, 2))
            layers += [nn.Conv2d(c, v, 3, padding=1, bias=False), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            c = v
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(c, nc))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def model_for(name, nc, res):
    if name == "smallcnn":
        return SmallCNN(1, nc)
    if name.startswith("resnet"):
        net = getattr(torchvision.models, name)(num_classes=nc)
        net.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        return net
    # Any other torchvision model: built for res if it is a ViT, its first
    # convolution taking one channel (what a user adapting it to grey
    # images writes; the speed is what is compared).
    net = getattr(torchvision.models, name)(num_classes=nc, **({"image_size": res} if name.startswith("vit_") else {}))
    for parent in net.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                setattr(parent, child_name, nn.Conv2d(1, child.out_channels, child.kernel_size, child.stride,
                                                      child.padding, bias=child.bias is not None))
                if name.startswith("vit_"):
                    net.conv_proj = getattr(parent, child_name)
                return net
    return net


class Images(torch.utils.data.Dataset):
    def __init__(self, pix, labels, tf):
        self.pix, self.labels, self.tf = pix, labels, tf

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.tf(Image.fromarray(self.pix[i], mode="L")), int(self.labels[i])


def lr_at(t, total, steps_per_epoch, a):
    """sweep.Config.LRAt."""
    warm = int(round(a.warmup_epochs * steps_per_epoch))
    if t < warm:
        return a.lr * (t + 1) / warm
    span = total - warm
    if span <= 1:
        return a.lr
    return 0.5 * a.lr * (1 + math.cos(math.pi * (t - warm) / (span - 1)))


def evaluate(net, loader):
    net.eval()
    loss, correct, n = 0.0, 0, 0
    with torch.no_grad():
        for x, y in loader:
            out = net(x)
            loss += float(F.cross_entropy(out, y, reduction="sum"))
            correct += int((out.argmax(1) == y).sum())
            n += len(y)
    net.train()
    return loss / n, correct / n


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet18")
    p.add_argument("--res", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--train", type=int, default=5120)
    p.add_argument("--val", type=int, default=2000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--warmup-epochs", type=float, default=1)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--crop-padding", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    train_pix, train_y = idx("train-images-idx3-ubyte"), idx("train-labels-idx1-ubyte")
    mean, std = float(train_pix.mean()) / 255, float(train_pix.std()) / 255
    val_pix, val_y = idx("t10k-images-idx3-ubyte")[:a.val], idx("t10k-labels-idx1-ubyte")[:a.val]
    train_pix, train_y = train_pix[:a.train], train_y[:a.train]
    resize = transforms.Resize(a.res, interpolation=transforms.InterpolationMode.BICUBIC)
    norm = [transforms.ToTensor(), transforms.Normalize([mean], [std])]
    train_tf = transforms.Compose([resize, transforms.RandomCrop(a.res, padding=a.crop_padding),
                                   transforms.RandomHorizontalFlip()] + norm)
    val_tf = transforms.Compose([resize] + norm)
    train = torch.utils.data.DataLoader(Images(train_pix, train_y, train_tf), batch_size=a.batch, shuffle=True,
                                        drop_last=True, num_workers=0)
    val = torch.utils.data.DataLoader(Images(val_pix, val_y, val_tf), batch_size=a.batch, num_workers=0)

    net = model_for(a.model, 10, a.res)
    opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=a.momentum, nesterov=True, weight_decay=a.weight_decay)
    steps = len(train)
    rows, best_loss, best_acc, t = [], math.inf, 0.0, 0
    start = time.perf_counter()
    for epoch in range(a.epochs):
        t0 = time.perf_counter()
        for x, y in train:
            for g in opt.param_groups:
                g["lr"] = lr_at(t, a.epochs * steps, steps, a)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y, label_smoothing=a.label_smoothing).backward()
            opt.step()
            t += 1
        t1 = time.perf_counter()
        vloss, vacc = evaluate(net, val)
        t2 = time.perf_counter()
        if vloss < best_loss:
            best_loss, best_acc = vloss, vacc
        rows.append({"epoch": epoch + 1, "train_images_per_s": steps * a.batch / (t1 - t0), "train_seconds": t1 - t0,
                     "val_seconds": t2 - t1, "val_acc": vacc, "val_loss": vloss})
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "model": a.model, "res": a.res, "seed": a.seed,
                      "epochs": a.epochs, "train": steps * a.batch, "threads": a.threads, "epoch_rows": rows,
                      "wall_seconds": time.perf_counter() - start, "best_acc": best_acc}))


if __name__ == "__main__":
    main()
