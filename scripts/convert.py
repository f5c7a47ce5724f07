#!/usr/bin/env python3
"""Turns a PyTorch nn.Module into maas models: TorchScript, an AOTInductor
package (torch.export, then aoti_compile_and_package) and ONNX, each checked
against the eager module at several batch sizes, with a config draft per
format, reference outputs, and optional FP16/BF16 variants. With --deploy it
publishes the chosen format with the maas CLI.

    scripts/convert.py --module my_package.models:Net --input x:float32:4,256 \\
        --out build/net [--formats torchscript,aoti,onnx] [--half fp16,bf16] \\
        [--max-batch-size 64] [--deploy torchscript --alias production]

--module is IMPORT.PATH:ATTRIBUTE, a class (constructed with --init-json
keyword arguments) or a function returning a module. --path adds folders to
the import path. --input NAME:DTYPE:SHAPE[:HIGH] describes one input, batch
first (integer inputs are drawn below HIGH, 10 by default); give one per
input, in forward's order. --example-shape 1,256 is a short form for one
float input named INPUT__0.
"""

import argparse
import contextlib
import importlib
import io
import json
import os
import re
import subprocess
import sys
import time

import torch

DTYPES = {
    torch.float32: "FP32", torch.float64: "FP64", torch.float16: "FP16", torch.bfloat16: "BF16",
    torch.int64: "INT64", torch.int32: "INT32", torch.int16: "INT16", torch.int8: "INT8",
    torch.uint8: "UINT8", torch.bool: "BOOL",
}

FORMATS = {
    # format: (file, platform)
    "torchscript": ("model.pt", "pytorch_libtorch"),
    "aoti": ("model.pt2", "torch_aoti"),
    "onnx": ("model.onnx", "onnxruntime_onnx"),
}

HALVES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class ConversionError(Exception):
    """A format that cannot express the module, with the exporter's reason."""


class Input:
    def __init__(self, text):
        parts = text.split(":")
        if len(parts) not in (3, 4):
            sys.exit(f"--input must be NAME:DTYPE:SHAPE[:HIGH], got {text!r}")
        self.name, dtype, shape = parts[:3]
        self.dtype = getattr(torch, dtype, None)
        if not isinstance(self.dtype, torch.dtype) or self.dtype not in DTYPES:
            sys.exit(f"--input {text!r}: {dtype!r} is not a dtype maas serves")
        self.shape = [int(d) for d in shape.split(",")]
        self.high = int(parts[3]) if len(parts) == 4 else 10

    def example(self, rows, dtype=None):
        shape = [rows] + self.shape[1:]
        if self.dtype.is_floating_point:
            return torch.randn(shape, dtype=dtype or self.dtype)
        return torch.randint(0, self.high, shape, dtype=self.dtype)


def load_module(spec, init_json):
    module_path, _, attribute = spec.partition(":")
    if not attribute:
        sys.exit(f"--module must be IMPORT.PATH:ATTRIBUTE, got {spec!r}")
    factory = getattr(importlib.import_module(module_path), attribute)
    module = factory(**json.loads(init_json))
    if not isinstance(module, torch.nn.Module):
        sys.exit(f"{spec} did not produce a torch.nn.Module")
    return module.eval()


def as_tuple(outputs):
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)


def first_line(error):
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else 'no message'}"


@contextlib.contextmanager
def quiet():
    """Keeps exporters' progress chatter off the terminal."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


def errors(got, expected):
    """The largest absolute and relative errors over every output."""
    worst_abs, worst_rel = 0.0, 0.0
    for g, e in zip(got, expected):
        difference = (g.double() - e.double()).abs()
        worst_abs = max(worst_abs, difference.max().item() if difference.numel() else 0.0)
        scale = e.double().abs().clamp_min(1e-6)
        worst_rel = max(worst_rel, (difference / scale).max().item() if difference.numel() else 0.0)
    return worst_abs, worst_rel


def check(run, module, batches, what, atol, rtol):
    """Runs every batch through `run` and the eager module; returns the
    worst errors, or raises ConversionError when outputs disagree."""
    worst = (0.0, 0.0)
    for inputs in batches:
        rows = inputs[0].shape[0]
        with torch.no_grad():
            expected = as_tuple(module(*inputs))
            got = as_tuple(run(*inputs))
        if len(expected) != len(got):
            raise ConversionError(f"{what} returns {len(got)} outputs, the eager module {len(expected)}")
        for index, (g, e) in enumerate(zip(got, expected)):
            if g.dim() == 0 or g.shape[0] != rows:
                raise ConversionError(
                    f"{what}: output {index} has shape {list(g.shape)} for {rows} input rows; maas batches "
                    "requests along dimension 0, so every output needs one row per input row (another size "
                    "than the example's may be fixed in the export)")
            if g.shape != e.shape:
                raise ConversionError(f"{what}: output {index} has shape {list(g.shape)}, eager {list(e.shape)}")
            if not torch.allclose(g.double(), e.double(), atol=atol, rtol=rtol):
                abs_error, rel_error = errors([g], [e])
                raise ConversionError(f"{what}: output {index} differs from the eager module at {rows} rows "
                                      f"(max abs error {abs_error:.3g}, rel {rel_error:.3g})")
        batch_worst = errors(got, expected)
        worst = (max(worst[0], batch_worst[0]), max(worst[1], batch_worst[1]))
    return worst


def export_torchscript(module, example, path):
    with torch.no_grad(), quiet():
        traced = torch.jit.trace(module, tuple(example))
    traced.save(path)
    loaded = torch.jit.load(path)
    return lambda *inputs: loaded(*inputs)


def dynamic_shapes(inputs, max_batch_size):
    batch = torch.export.Dim("batch", min=1, max=max(2, max_batch_size))
    return tuple({0: batch} for _ in inputs)


def export_aoti(module, example, path, max_batch_size):
    with quiet():
        program = torch.export.export(module, tuple(example), dynamic_shapes=dynamic_shapes(example, max_batch_size))
        torch._inductor.aoti_compile_and_package(program, package_path=path)
        loaded = torch._inductor.aoti_load_package(path)
    return lambda *inputs: loaded(*inputs)


def export_onnx(module, example, path, max_batch_size, input_names, output_count):
    import onnxruntime

    with quiet():
        torch.onnx.export(module, tuple(example), path, dynamo=True,
                          dynamic_shapes=dynamic_shapes(example, max_batch_size), input_names=input_names,
                          output_names=[f"OUTPUT__{i}" for i in range(output_count)], external_data=False)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(*inputs):
        feeds = {name: tensor.numpy() for name, tensor in zip(names, inputs)}
        return tuple(torch.from_numpy(array) for array in session.run(None, feeds))
    return run


def export(fmt, module, example, path, args, input_names, output_count):
    """Writes `fmt` to `path` and returns a function running the result;
    an exporter's failure becomes a ConversionError naming its reason."""
    try:
        if fmt == "torchscript":
            return export_torchscript(module, example, path)
        if fmt == "aoti":
            return export_aoti(module, example, path, args.max_batch_size)
        return export_onnx(module, example, path, args.max_batch_size, input_names, output_count)
    except ConversionError:
        raise
    except Exception as error:  # every exporter raises its own types
        raise ConversionError(f"cannot export to {fmt}: {first_line(error)}") from None


def tensor_json(name, tensor):
    values = tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor
    return {"name": name, "datatype": DTYPES[tensor.dtype], "shape": list(tensor.shape),
            "data": values.flatten().tolist()}


def config_draft(name, platform, inputs, outputs, max_batch_size):
    return {
        "name": name,
        "platform": platform,
        "max_batch_size": max_batch_size,
        "inputs": [{"name": n, "datatype": DTYPES[t.dtype], "shape": [-1] + list(t.shape[1:])} for n, t in inputs],
        "outputs": [{"name": f"OUTPUT__{i}", "datatype": DTYPES[t.dtype], "shape": [-1] + list(t.shape[1:])}
                    for i, t in enumerate(outputs)],
    }


def half_module(module, dtype):
    """A copy of the module whose weights are `dtype`."""
    import copy

    return copy.deepcopy(module).to(dtype).eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", required=True, help="IMPORT.PATH:ATTRIBUTE of a module class or factory")
    parser.add_argument("--path", action="append", default=[], help="folder to add to the import path")
    parser.add_argument("--init-json", default="{}", help="keyword arguments for the class or factory, as JSON")
    parser.add_argument("--input", action="append", default=[], type=Input, help="NAME:DTYPE:SHAPE[:HIGH]")
    parser.add_argument("--example-shape", help="one FP32 input INPUT__0 of this shape, batch first, e.g. 1,256")
    parser.add_argument("--example-dtype", default="float32", help="dtype of the --example-shape input")
    parser.add_argument("--out", required=True, help="folder for the models, config drafts and reference.json")
    parser.add_argument("--name", help="model name (default: the folder's name)")
    parser.add_argument("--formats", default="torchscript", help="comma-separated: torchscript, aoti, onnx")
    parser.add_argument("--half", default="", help="also make these variants, comma-separated: fp16, bf16")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--atol", type=float, default=1e-4, help="largest absolute error accepted (FP32)")
    parser.add_argument("--rtol", type=float, default=1e-4, help="largest relative error accepted (FP32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deploy", nargs="?", const="torchscript", choices=list(FORMATS),
                        help="publish this format (default torchscript) with the maas CLI after converting")
    parser.add_argument("--alias", help="with --deploy: point this alias at the new version")
    parser.add_argument("--maas", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "maas"),
                        help="path of the maas CLI")
    args = parser.parse_args()

    formats = [f for f in args.formats.split(",") if f]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        sys.exit(f"--formats takes torchscript, aoti and onnx; got {args.formats!r}")
    halves = [h for h in args.half.split(",") if h]
    if any(h not in HALVES for h in halves):
        sys.exit(f"--half takes fp16 and bf16; got {args.half!r}")
    if args.deploy and args.deploy not in formats:
        formats.append(args.deploy)
    specs = args.input or ([Input(f"INPUT__0:{args.example_dtype}:{args.example_shape}")]
                           if args.example_shape else sys.exit("give --input (or --example-shape)"))

    sys.path[:0] = args.path
    torch.manual_seed(args.seed)
    module = load_module(args.module, args.init_json)
    # Exported with a batch of two or more (one would be fixed as a
    # constant), checked at the example's size and at others: batching
    # concatenates requests.
    example_rows = max(2, specs[0].shape[0])
    example = [s.example(example_rows) for s in specs]
    sizes = sorted({1, example_rows, max(2, min(args.max_batch_size, 7))})
    batches = [[s.example(rows) for s in specs] for rows in sizes]
    with torch.no_grad():
        reference_outputs = as_tuple(module(*batches[-1]))
    input_names = [s.name for s in specs]

    name = args.name or os.path.basename(os.path.normpath(args.out))
    os.makedirs(args.out, exist_ok=True)
    written, failed = {}, {}
    print(f"{'variant':<22} {'file':<20} {'export (s)':>10} {'max abs err':>12} {'max rel err':>12}  batch sizes")
    for dtype_name in ["fp32"] + halves:
        for fmt in formats:
            file, platform = FORMATS[fmt]
            variant_module = module
            if dtype_name != "fp32":
                file = file.replace("model.", f"model.{dtype_name}.")
                variant_module = half_module(module, HALVES[dtype_name])
            path = os.path.join(args.out, file)
            variant = f"{fmt} {dtype_name}"
            started = time.time()
            cast = (lambda t: t.to(HALVES[dtype_name]) if t.is_floating_point() else t) if dtype_name != "fp32" \
                else (lambda t: t)
            try:
                run = export(fmt, variant_module, [cast(t) for t in example], path, args, input_names,
                             len(reference_outputs))
                exported = time.time() - started
                if dtype_name == "fp32":
                    worst = check(run, module, batches, variant, args.atol, args.rtol)
                else:
                    # A half variant is measured against FP32, not held to its tolerance.
                    with torch.no_grad():
                        got = [tuple(o.float() for o in as_tuple(run(*[cast(t) for t in b]))) for b in batches]
                        want = [as_tuple(module(*b)) for b in batches]
                    worst = max((errors(g, w) for g, w in zip(got, want)), key=lambda e: e[0])
            except ConversionError as error:
                failed[variant] = str(error)
                print(f"{variant:<22} {'-':<20} {'-':>10} {'-':>12} {'-':>12}  failed: {error}")
                continue
            written[variant] = path
            print(f"{variant:<22} {file:<20} {exported:>10.1f} {worst[0]:>12.3g} {worst[1]:>12.3g}  {sizes}")
            config_inputs = [(n, cast(t)) for n, t in zip(input_names, example)]
            config_outputs = [cast(t) for t in reference_outputs]
            suffix = "" if fmt == "torchscript" and dtype_name == "fp32" else f".{fmt}" + (
                "" if dtype_name == "fp32" else f".{dtype_name}")
            with open(os.path.join(args.out, f"config{suffix}.json"), "w") as f:
                json.dump(config_draft(name, platform, config_inputs, config_outputs, args.max_batch_size), f,
                          indent=2)

    reference = {"inputs": [tensor_json(n, t) for n, t in zip(input_names, batches[-1])],
                 "outputs": [tensor_json(f"OUTPUT__{i}", t) for i, t in enumerate(reference_outputs)]}
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(reference, f)
    for variant, reason in failed.items():
        print(f"{variant}: {reason}", file=sys.stderr)
    if not written:
        sys.exit(1)

    if args.deploy:
        if f"{args.deploy} fp32" not in written:
            sys.exit(f"cannot deploy {args.deploy}: it was not converted")
        file, _ = FORMATS[args.deploy]
        config = "config.json" if args.deploy == "torchscript" else f"config.{args.deploy}.json"
        command = [args.maas, "deploy", name, "--model", os.path.join(args.out, file),
                   "--config", os.path.join(args.out, config), "--source", args.module]
        if args.alias:
            command += ["--alias", args.alias]
        sys.exit(subprocess.call(command))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
