#!/usr/bin/env python3
"""Builds the example model repository served by maas and used by its tests.

For each model it writes, under the output folder (default .maas/models):

    <model>/config.json                 inputs, outputs, batching (maas ModelConfig)
    <model>/<version>/model.pt          TorchScript
    <model>/<version>/reference.json    fixed inputs and PyTorch's outputs for them

Every weight and input comes from a fixed seed, so a rerun writes the same
files. The run is skipped when the folder was made by this same script.
"""

import argparse
import hashlib
import json
import os
import sys

import torch
from torch import nn


class Mlp(nn.Module):
    """A 256-512-512-10 classifier."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
        )

    def forward(self, x):
        return self.layers(x)


class SmallCnn(nn.Module):
    """Two strided convolutions, global pooling and a linear head: [N,3,64,64] -> [N,10]."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


class Ranker(nn.Module):
    """Two inputs of different dtypes, two outputs of different dtypes.

    ids (INT64 [N,8]) are embedded and averaged, joined with features
    (FP32 [N,4]); the result is scores (FP32 [N,5]) and label (INT64 [N]),
    the index of the best score.
    """

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(100, 16)
        self.head = nn.Linear(20, 5)

    def forward(self, ids, features):
        joined = torch.cat([self.embedding(ids).mean(dim=1), features], dim=1)
        scores = self.head(joined)
        return scores, scores.argmax(dim=1)


class Faulty(nn.Module):
    """Doubles its input and raises on any negative element."""

    def forward(self, x):
        if bool((x < 0).any()):
            raise ValueError("negative input is not allowed")
        return x * 2


class Sleepy(nn.Module):
    """Doubles its input; the first element of the batch's first column sets
    how much extra work it does (0: none, n: n products of 256x256
    matrices), so a client can make it slow on demand."""

    def __init__(self):
        super().__init__()
        self.register_buffer("w", torch.randn(256, 256) / 16)

    def forward(self, x):
        rounds = int(x[0, 0].clamp(0, 200).item())
        acc = self.w
        for _ in range(rounds):
            acc = torch.tanh(acc @ self.w)
        return x * 2 + acc.sum() * 0


class Dtypes(nn.Module):
    """One input and output per datatype, for the protocol's codecs."""

    def forward(self, b, u8, i8, i16, i32, f16, bf16, f64):
        return (
            torch.logical_not(b),
            u8 + 1,
            i8 - 1,
            i16 * 2,
            i32 + 7,
            f16 * 0.5,
            bf16 * 2,
            f64 * 3,
        )


def spec(name, datatype, shape):
    return {"name": name, "datatype": datatype, "shape": shape}


def tensor_json(name, datatype, tensor):
    values = tensor.detach().cpu()
    if datatype in ("FP16", "BF16"):
        values = values.float()
    if datatype == "BOOL":
        data = [bool(v) for v in values.flatten().tolist()]
    else:
        data = values.flatten().tolist()
    return {"name": name, "datatype": datatype, "shape": list(tensor.shape), "data": data}


def as_tuple(outputs):
    return outputs if isinstance(outputs, tuple) else (outputs,)


def export(root, name, version, module, config, inputs, script=False):
    module.eval()
    model_dir = os.path.join(root, name)
    version_dir = os.path.join(model_dir, str(version))
    os.makedirs(version_dir, exist_ok=True)
    with torch.no_grad():
        expected = as_tuple(module(*inputs))
        if script:
            compiled = torch.jit.script(module)
        else:
            compiled = torch.jit.trace(module, tuple(inputs))
        for got, want in zip(as_tuple(compiled(*inputs)), expected):
            if not torch.equal(got, want) and not torch.allclose(got.double(), want.double(), rtol=1e-6, atol=1e-7):
                sys.exit(f"{name}: TorchScript output differs from the eager module")
    compiled.save(os.path.join(version_dir, "model.pt"))
    reference = {
        "inputs": [tensor_json(s["name"], s["datatype"], t) for s, t in zip(config["inputs"], inputs)],
        "outputs": [tensor_json(s["name"], s["datatype"], t) for s, t in zip(config["outputs"], expected)],
    }
    with open(os.path.join(version_dir, "reference.json"), "w") as f:
        json.dump(reference, f)
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def build(root):
    torch.manual_seed(1)
    mlp_config = {
        "name": "mlp", "max_batch_size": 64, "max_queue_delay_us": 500,
        "inputs": [spec("INPUT__0", "FP32", [-1, 256])],
        "outputs": [spec("OUTPUT__0", "FP32", [-1, 10])],
        "warmup_batch_sizes": [1, 2, 4, 8, 16, 32, 64],
        # Both versions are served (by default only the newest would be).
        "version_policy": {"all": {}},
    }
    # Both versions share their reference inputs, so a client can check an
    # answer against whichever version gave it.
    torch.manual_seed(100)
    mlp_inputs = [torch.randn(64, 256)]
    for version in (1, 2):
        torch.manual_seed(100 + version)
        export(root, "mlp", version, Mlp(), mlp_config, mlp_inputs)

    torch.manual_seed(2)
    cnn_config = {
        "name": "cnn", "max_batch_size": 32, "max_queue_delay_us": 1000,
        "inputs": [spec("INPUT__0", "FP32", [-1, 3, 64, 64])],
        "outputs": [spec("OUTPUT__0", "FP32", [-1, 10])],
        "warmup_batch_sizes": [1, 2, 4, 8, 16, 32],
    }
    export(root, "cnn", 1, SmallCnn(), cnn_config, [torch.randn(8, 3, 64, 64)])

    torch.manual_seed(3)
    ranker_config = {
        "name": "ranker", "max_batch_size": 32,
        "inputs": [spec("ids", "INT64", [-1, 8]), spec("features", "FP32", [-1, 4])],
        "outputs": [spec("scores", "FP32", [-1, 5]), spec("label", "INT64", [-1])],
    }
    export(root, "ranker", 1, Ranker(), ranker_config,
           [torch.randint(0, 100, (16, 8)), torch.randn(16, 4)])

    torch.manual_seed(4)
    faulty_config = {
        "name": "faulty", "max_batch_size": 16,
        "inputs": [spec("INPUT__0", "FP32", [-1, 4])],
        "outputs": [spec("OUTPUT__0", "FP32", [-1, 4])],
    }
    export(root, "faulty", 1, Faulty(), faulty_config, [torch.rand(4, 4)], script=True)

    torch.manual_seed(6)
    sleepy_config = {
        "name": "sleepy", "max_batch_size": 8,
        "inputs": [spec("INPUT__0", "FP32", [-1, 4])],
        "outputs": [spec("OUTPUT__0", "FP32", [-1, 4])],
        "labels": {"task": "regression"},
    }
    sleepy_inputs = torch.rand(4, 4)
    sleepy_inputs[0, 0] = 3
    export(root, "sleepy", 1, Sleepy(), sleepy_config, [sleepy_inputs], script=True)

    torch.manual_seed(5)
    names = [("b", "BOOL", torch.bool), ("u8", "UINT8", torch.uint8), ("i8", "INT8", torch.int8),
             ("i16", "INT16", torch.int16), ("i32", "INT32", torch.int32), ("f16", "FP16", torch.float16),
             ("bf16", "BF16", torch.bfloat16), ("f64", "FP64", torch.float64)]
    dtypes_config = {
        "name": "dtypes", "max_batch_size": 8,
        "inputs": [spec(f"in_{n}", dt, [-1, 4]) for n, dt, _ in names],
        "outputs": [spec(f"out_{n}", dt, [-1, 4]) for n, dt, _ in names],
    }
    raw = torch.randn(3, 4) * 50
    inputs = [raw > 0, raw.abs().clamp(max=200).to(torch.uint8), raw.clamp(-100, 100).to(torch.int8),
              (raw * 10).to(torch.int16), (raw * 1000).to(torch.int32), raw.to(torch.float16),
              raw.to(torch.bfloat16), raw.double() / 7]
    export(root, "dtypes", 1, Dtypes(), dtypes_config, inputs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", ".maas", "models"))
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args()
    with open(__file__, "rb") as f:
        stamp = hashlib.sha256(f.read() + torch.__version__.encode()).hexdigest()
    stamp_path = os.path.join(args.out, ".stamp")
    if not args.force and os.path.exists(stamp_path) and open(stamp_path).read() == stamp:
        print(f"example models in {os.path.abspath(args.out)} are up to date")
        return
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    build(args.out)
    with open(stamp_path, "w") as f:
        f.write(stamp)
    print(f"example models written to {os.path.abspath(args.out)}")


if __name__ == "__main__":
    main()
