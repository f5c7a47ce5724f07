#!/usr/bin/env python3
"""Turns a PyTorch nn.Module into a maas model: TorchScript, a config draft
and reference outputs, after checking that the traced module reproduces the
eager one. With --deploy it also publishes the result with the maas CLI.

    scripts/convert.py --module my_package.models:Net --example-shape 1,256 \\
        --out build/net [--name net] [--max-batch-size 64] [--deploy --alias production]

--module is IMPORT.PATH:ATTRIBUTE, a class (constructed with --init-json
keyword arguments) or a function returning a module. --path adds folders to
the import path.
"""

import argparse
import importlib
import json
import os
import subprocess
import sys

import torch

DTYPES = {
    torch.float32: "FP32", torch.float64: "FP64", torch.float16: "FP16", torch.bfloat16: "BF16",
    torch.int64: "INT64", torch.int32: "INT32", torch.int16: "INT16", torch.int8: "INT8",
    torch.uint8: "UINT8", torch.bool: "BOOL",
}


def load_module(spec, init_json):
    module_path, _, attribute = spec.partition(":")
    if not attribute:
        sys.exit(f"--module must be IMPORT.PATH:ATTRIBUTE, got {spec!r}")
    factory = getattr(importlib.import_module(module_path), attribute)
    module = factory(**json.loads(init_json))
    if not isinstance(module, torch.nn.Module):
        sys.exit(f"{spec} did not produce a torch.nn.Module")
    return module.eval()


def example(shape, dtype, rows):
    shape = [rows] + shape[1:]
    if dtype.is_floating_point:
        return torch.randn(shape, dtype=dtype)
    return torch.randint(0, 10, shape, dtype=dtype)


def as_tuple(outputs):
    return outputs if isinstance(outputs, tuple) else (outputs,)


def check_same(traced, module, inputs, what):
    with torch.no_grad():
        expected = as_tuple(module(*inputs))
        got = as_tuple(traced(*inputs))
    if len(expected) != len(got):
        sys.exit(f"{what}: the traced module returns {len(got)} outputs, the eager one {len(expected)}")
    rows = inputs[0].shape[0]
    for index, (g, e) in enumerate(zip(got, expected)):
        if g.shape != e.shape or not torch.allclose(g.double(), e.double(), rtol=1e-5, atol=1e-6):
            sys.exit(f"{what}: output {index} of the traced module differs from the eager module")
        if g.dim() == 0 or g.shape[0] != rows:
            sys.exit(f"{what}: output {index} has shape {list(g.shape)} for {rows} input rows; "
                     "maas batches requests along dimension 0, so every output needs one row per input row")
    return expected


def tensor_json(name, tensor):
    values = tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor
    return {"name": name, "datatype": DTYPES[tensor.dtype], "shape": list(tensor.shape),
            "data": values.flatten().tolist()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", required=True, help="IMPORT.PATH:ATTRIBUTE of a module class or factory")
    parser.add_argument("--path", action="append", default=[], help="folder to add to the import path")
    parser.add_argument("--init-json", default="{}", help="keyword arguments for the class or factory, as JSON")
    parser.add_argument("--example-shape", required=True, help="example input shape, batch first, e.g. 1,256")
    parser.add_argument("--example-dtype", default="float32", help="torch dtype of the example input")
    parser.add_argument("--out", required=True, help="folder for model.pt, config.json and reference.json")
    parser.add_argument("--name", help="model name (default: the folder's name)")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deploy", action="store_true", help="publish with the maas CLI after converting")
    parser.add_argument("--alias", help="with --deploy: point this alias at the new version")
    parser.add_argument("--maas", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "maas"),
                        help="path of the maas CLI")
    args = parser.parse_args()

    sys.path[:0] = args.path
    torch.manual_seed(args.seed)
    module = load_module(args.module, args.init_json)
    dtype = getattr(torch, args.example_dtype)
    shape = [int(d) for d in args.example_shape.split(",")]
    inputs = [example(shape, dtype, shape[0])]
    with torch.no_grad():
        traced = torch.jit.trace(module, tuple(inputs))
    check_same(traced, module, inputs, "the example input")
    # Batching concatenates requests: the traced module must accept other batch sizes.
    other = [example(shape, dtype, max(2, min(args.max_batch_size, 3)))]
    expected = check_same(traced, module, other, "a batch of another size")

    name = args.name or os.path.basename(os.path.normpath(args.out))
    os.makedirs(args.out, exist_ok=True)
    traced.save(os.path.join(args.out, "model.pt"))
    config = {
        "name": name,
        "max_batch_size": args.max_batch_size,
        "inputs": [{"name": "INPUT__0", "datatype": DTYPES[dtype], "shape": [-1] + shape[1:]}],
        "outputs": [{"name": f"OUTPUT__{i}", "datatype": DTYPES[t.dtype], "shape": [-1] + list(t.shape[1:])}
                    for i, t in enumerate(expected)],
    }
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    reference = {"inputs": [tensor_json("INPUT__0", other[0])],
                 "outputs": [tensor_json(o["name"], t) for o, t in zip(config["outputs"], expected)]}
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(reference, f)
    print(f"converted {args.module} to {args.out}/model.pt; traced outputs match the eager module")

    if args.deploy:
        command = [args.maas, "deploy", name, "--model", os.path.join(args.out, "model.pt"),
                   "--config", os.path.join(args.out, "config.json"), "--source", args.module]
        if args.alias:
            command += ["--alias", args.alias]
        sys.exit(subprocess.call(command))


if __name__ == "__main__":
    main()
