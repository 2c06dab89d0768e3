"""Saves a ResoMap safetensors export as a PyTorch .pth (torch.save of the
state dict), as a practitioner's weights would come.
Usage: to_pth.py weights.safetensors out.pth"""
import sys
import torch
from safetensors_np import load

torch.save(load(sys.argv[1]), sys.argv[2])
