#!/usr/bin/env python3
"""Splits a sequential-style PyTorch module (an nn.Sequential, or any module
whose children run one after the other, such as a stack of blocks) into
stages that each fit a node's memory, exports each stage as TorchScript, and
writes a pipeline that runs them in order, so that a model larger than any
one node is served by several. With --deploy it publishes the stages and the
pipeline with the maas CLI.

    scripts/split_model.py --module my_package.models:Net --input x:float32:4,1024 \\
        --out build/net --node-memory 268435456 [--micro-batch-rows 4] [--deploy]
    scripts/split_model.py ... --stages 3

Each stage's memory is measured as the bytes of its parameters and buffers,
times --headroom (what loading takes beside the weights: a TorchScript load
on CPU was measured at 1.8 times); stages are cut so that each stays under
--node-memory (or into --stages parts of balanced memory). Every stage is
checked against the eager module, and the stages chained against the whole
module, at several batch sizes.

Written to --out: stageN/model.pt and stageN/config.json (model NAME-stageN,
with memory_bytes), pipeline.json (model NAME, platform pipeline, steps
NAME-stage0 ... in order, micro_batch_rows), whole/model.pt and
whole/config.json (the unsplit module, memory_bytes the sum: what no node
can hold), reference.json (inputs and the unsplit module's outputs).
"""

import argparse
import json
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert import DTYPES, Input, check, config_draft, export_torchscript, load_module, tensor_json  # noqa: E402


def weight_bytes(module):
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def cut(blocks, stages, node_memory, headroom):
    """Groups consecutive blocks into stages: into `stages` parts of about
    equal memory, or as few as keep each under `node_memory`."""
    sizes = [weight_bytes(b) * headroom for b in blocks]
    if stages:
        target = sum(sizes) / stages
        groups, current, acc = [], [], 0.0
        for index, size in enumerate(sizes):
            left_blocks, left_groups = len(sizes) - index, stages - len(groups)
            if current and (acc + size > target * 1.0001 or left_blocks < left_groups):
                groups.append(current)
                current, acc = [], 0.0
            current.append(index)
            acc += size
        groups.append(current)
        return groups
    groups, current, acc = [], [], 0.0
    for index, size in enumerate(sizes):
        if size > node_memory:
            sys.exit(f"block {index} alone needs {int(size)} bytes, more than --node-memory {node_memory}")
        if current and acc + size > node_memory:
            groups.append(current)
            current, acc = [], 0.0
        current.append(index)
        acc += size
    groups.append(current)
    return groups


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--module", required=True, help="IMPORT.PATH:ATTRIBUTE of a module class or factory")
    parser.add_argument("--path", action="append", default=[], help="folder to add to the import path")
    parser.add_argument("--init-json", default="{}", help="keyword arguments for the class or factory, as JSON")
    parser.add_argument("--input", required=True, type=Input, help="NAME:DTYPE:SHAPE[:HIGH], batch first")
    parser.add_argument("--out", required=True, help="folder for the stages, the pipeline and reference.json")
    parser.add_argument("--name", help="model name (default: the folder's name)")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--stages", type=int, help="cut into this many stages of balanced memory")
    group.add_argument("--node-memory", type=int, help="cut so that each stage fits this many bytes")
    parser.add_argument("--headroom", type=float, default=2.0,
                        help="memory per weight byte (default 2: a TorchScript load on CPU was measured at 1.8)")
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--micro-batch-rows", type=int, help="rows per micro-batch (default: max batch size / 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deploy", action="store_true", help="publish the stages and the pipeline")
    parser.add_argument("--maas", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "maas"),
                        help="path of the maas CLI")
    args = parser.parse_args()

    sys.path[:0] = args.path
    torch.manual_seed(args.seed)
    module = load_module(args.module, args.init_json)
    blocks = list(module.children())
    if len(blocks) < 2:
        sys.exit(f"{args.module} has {len(blocks)} child modules; a split needs a stack of at least two")
    groups = cut(blocks, args.stages, args.node_memory, args.headroom)
    name = args.name or os.path.basename(os.path.normpath(args.out))
    os.makedirs(args.out, exist_ok=True)
    example_rows = max(2, args.input.shape[0])
    sizes = sorted({1, example_rows, max(2, min(args.max_batch_size, 7))})
    batches = [[args.input.example(rows)] for rows in sizes]
    example = args.input.example(example_rows)

    # Each stage, exported from the eager blocks and checked against them.
    print(f"{'stage':<8} {'blocks':<12} {'weights (bytes)':>16} {'memory_bytes':>14}")
    stage_runs, stage_names, stage_memory = [], [], []
    stage_input = example
    for index, members in enumerate(groups):
        stage = torch.nn.Sequential(*[blocks[i] for i in members]).eval()
        folder = os.path.join(args.out, f"stage{index}")
        os.makedirs(folder, exist_ok=True)
        run = export_torchscript(stage, [stage_input], os.path.join(folder, "model.pt"))
        with torch.no_grad():
            stage_output = stage(stage_input)
        memory = int(weight_bytes(stage) * args.headroom)
        stage_name = f"{name}-stage{index}"
        config = config_draft(stage_name, "pytorch_libtorch", [("INPUT__0", stage_input)], [stage_output],
                              args.max_batch_size)
        config["memory_bytes"] = memory
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
        stage_runs.append(run)
        stage_names.append(stage_name)
        stage_memory.append(memory)
        print(f"{index:<8} {f'{members[0]}..{members[-1]}':<12} {weight_bytes(stage):>16} {memory:>14}")
        stage_input = stage_output

    # The stages chained answer as the whole module does.
    def chained(x):
        for run in stage_runs:
            x = run(x)
        return x
    worst = check(chained, module, batches, "the stages chained", 1e-4, 1e-4)
    print(f"stages chained vs the whole module: max abs error {worst[0]:.3g}, rel {worst[1]:.3g}, batch sizes {sizes}")

    whole = os.path.join(args.out, "whole")
    os.makedirs(whole, exist_ok=True)
    export_torchscript(module, [example], os.path.join(whole, "model.pt"))
    with torch.no_grad():
        outputs = module(batches[-1][0])
    whole_config = config_draft(name, "pytorch_libtorch", [(args.input.name, example)], [outputs], args.max_batch_size)
    whole_config["memory_bytes"] = sum(stage_memory)
    with open(os.path.join(whole, "config.json"), "w") as f:
        json.dump(whole_config, f, indent=2)

    micro = args.micro_batch_rows or max(1, args.max_batch_size // 4)
    steps, tensor = [], args.input.name
    for index, stage_name in enumerate(stage_names):
        produced = "OUTPUT__0" if index == len(stage_names) - 1 else f"stage{index}_out"
        steps.append({"name": f"stage{index}", "model": {"model": stage_name},
                      "input_map": {"INPUT__0": tensor}, "output_map": {"OUTPUT__0": produced}})
        tensor = produced
    pipeline = {
        "name": name, "platform": "pipeline", "max_batch_size": args.max_batch_size,
        "inputs": whole_config["inputs"], "outputs": whole_config["outputs"],
        "pipeline": {"steps": steps, "micro_batch_rows": micro},
    }
    with open(os.path.join(args.out, "pipeline.json"), "w") as f:
        json.dump(pipeline, f, indent=2)
    reference = {"inputs": [tensor_json(args.input.name, batches[-1][0])],
                 "outputs": [tensor_json("OUTPUT__0", outputs)]}
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(reference, f)
    print(f"{len(groups)} stages, {sum(stage_memory)} bytes in all; pipeline '{name}', micro-batches of {micro} rows")

    if args.deploy:
        for index, stage_name in enumerate(stage_names):
            folder = os.path.join(args.out, f"stage{index}")
            command = [args.maas, "deploy", stage_name, "--model", os.path.join(folder, "model.pt"),
                       "--config", os.path.join(folder, "config.json"), "--source", args.module]
            if subprocess.call(command) != 0:
                sys.exit(f"deploying {stage_name} failed")
        sys.exit(subprocess.call([args.maas, "pipeline", name, "--config", os.path.join(args.out, "pipeline.json")]))


if __name__ == "__main__":
    main()
