#!/usr/bin/env python3
"""Exports a GPT-2-style causal language model for maas nodes to run as a
native decoder: TorchScript with an explicit key/value cache, its tokenizer
and a description of its shape.

    scripts/export_decoder.py HF_MODEL_DIR OUT_DIR

HF_MODEL_DIR is a folder `AutoModelForCausalLM.from_pretrained` reads (a
GPT-2 family model). OUT_DIR receives:

- `model.pt`: `forward(input_ids, positions, past, mask) -> (logits, present)`
  - `input_ids`, `positions`: int64 `[B, T]`, the new tokens of B sequences
    and their positions;
  - `past`: float32 `[L, 2, B, H, P, D]`, each sequence's keys and values so
    far, right-padded to the longest (P may be 0);
  - `mask`: int64 `[B, P + T]`, 1 where a past slot holds a token of the
    sequence and for the new tokens, 0 for padding;
  - `logits`: float32 `[B, T, V]`; `present`: `[L, 2, B, H, P + T, D]`.
  New tokens attend to the unmasked past and, causally, to each other.
- `tokenizer.json` (and `tokenizer_config.json`, which holds the chat
  template), copied;
- `decoder.json`: layers, heads, head size, vocabulary, context length and
  end-of-sequence ids.

The export is checked before it is written: two prompts of different lengths
decoded greedily together, token by token through the cache with padding,
must produce exactly the tokens Hugging Face's `generate` produces for each
alone, and the first step's logits must match within 1e-4.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer

CHECK_TOKENS = 32


class Block(nn.Module):
    """One GPT-2 block with its cache made explicit."""

    def __init__(self, block, heads: int):
        super().__init__()
        self.ln_1, self.ln_2 = block.ln_1, block.ln_2
        # GPT-2's Conv1D computes x @ weight + bias.
        self.attn_w, self.attn_b = block.attn.c_attn.weight, block.attn.c_attn.bias
        self.proj_w, self.proj_b = block.attn.c_proj.weight, block.attn.c_proj.bias
        self.fc_w, self.fc_b = block.mlp.c_fc.weight, block.mlp.c_fc.bias
        self.out_w, self.out_b = block.mlp.c_proj.weight, block.mlp.c_proj.bias
        self.heads = heads

    def forward(self, x, past_k, past_v, allowed):
        b, t, width = x.shape
        d = width // self.heads
        qkv = self.ln_1(x) @ self.attn_w + self.attn_b
        q, k, v = qkv.split(width, dim=2)
        q = q.view(b, t, self.heads, d).transpose(1, 2)
        k = torch.cat([past_k, k.view(b, t, self.heads, d).transpose(1, 2)], dim=2)
        v = torch.cat([past_v, v.view(b, t, self.heads, d).transpose(1, 2)], dim=2)
        scores = (q @ k.transpose(-1, -2)) / (d ** 0.5)
        scores = scores.masked_fill(~allowed, -3.4028234663852886e38)
        attended = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(b, t, width)
        x = x + attended @ self.proj_w + self.proj_b
        hidden = nn.functional.gelu(self.ln_2(x) @ self.fc_w + self.fc_b, approximate="tanh")
        return x + hidden @ self.out_w + self.out_b, k, v


class CachedDecoder(nn.Module):
    """GPT-2 with `forward(input_ids, positions, past, mask)`."""

    def __init__(self, model):
        super().__init__()
        transformer = model.transformer
        self.wte, self.wpe, self.ln_f = transformer.wte, transformer.wpe, transformer.ln_f
        self.blocks = nn.ModuleList([Block(block, model.config.n_head) for block in transformer.h])
        self.lm_head = model.lm_head

    def forward(self, input_ids, positions, past, mask):
        t = input_ids.shape[1]
        p = past.shape[4]
        x = self.wte(input_ids) + self.wpe(positions)
        # Query i (new token i) may see past slot j when the mask has it, and
        # new token j when j <= i.
        new = torch.arange(t, device=input_ids.device)
        causal = torch.cat([torch.ones(t, p, dtype=torch.bool, device=input_ids.device),
                            new.unsqueeze(1) >= new.unsqueeze(0)], dim=1)
        allowed = (causal.unsqueeze(0) & (mask != 0).unsqueeze(1)).unsqueeze(1)
        keys, values = [], []
        for index, block in enumerate(self.blocks):
            x, k, v = block(x, past[index, 0], past[index, 1], allowed)
            keys.append(k)
            values.append(v)
        present = torch.stack([torch.stack(keys), torch.stack(values)], dim=1)
        return self.lm_head(self.ln_f(x)), present


def empty_past(config, batch):
    heads, d = config.n_head, config.n_embd // config.n_head
    return torch.zeros(config.n_layer, 2, batch, heads, 0, d)


def greedy_together(module, config, prompts, steps):
    """Decodes `prompts` as one batch through the cache: prefill right-padded,
    then one token per sequence per step. Returns each sequence's tokens and
    the prefill's logits at each prompt's last position."""
    batch = len(prompts)
    longest = max(len(p) for p in prompts)
    ids = torch.zeros(batch, longest, dtype=torch.long)
    mask = torch.zeros(batch, longest, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, :len(prompt)] = torch.tensor(prompt)
        mask[row, :len(prompt)] = 1
    positions = torch.arange(longest).unsqueeze(0).expand(batch, longest).contiguous()
    logits, past = module(ids, positions, empty_past(config, batch), mask)
    lengths = [len(p) for p in prompts]
    first_logits = torch.stack([logits[row, lengths[row] - 1] for row in range(batch)])
    tokens = [[int(logits[row, lengths[row] - 1].argmax())] for row in range(batch)]
    for _ in range(steps - 1):
        new = torch.tensor([[seq[-1]] for seq in tokens])
        positions = torch.tensor([[lengths[row] + len(tokens[row]) - 1] for row in range(batch)])
        mask = torch.cat([mask, torch.ones(batch, 1, dtype=torch.long)], dim=1)
        logits, past = module(new, positions, past, mask)
        for row in range(batch):
            tokens[row].append(int(logits[row, 0].argmax()))
    return tokens, first_logits


def check(module, model, tokenizer):
    prompts = ["The sea is", "Tell me a short story about a cat who lived near the river."]
    encoded = [tokenizer(p)["input_ids"] for p in prompts]
    with torch.no_grad():
        ours, first_logits = greedy_together(module, model.config, encoded, CHECK_TOKENS)
        for row, prompt in enumerate(encoded):
            reference = model.generate(torch.tensor([prompt]), max_new_tokens=CHECK_TOKENS, min_new_tokens=CHECK_TOKENS,
                                       do_sample=False, pad_token_id=model.config.eos_token_id)[0, len(prompt):].tolist()
            expected_logits = model(torch.tensor([prompt])).logits[0, -1]
            error = float((first_logits[row] - expected_logits).abs().max())
            same = ours[row] == reference
            print(f"prompt {row} ({len(prompt)} tokens): {CHECK_TOKENS} greedy tokens "
                  f"{'equal' if same else 'DIFFER'}, first logits max abs error {error:.2e}")
            if not same or error > 1e-4:
                sys.exit(f"the export disagrees with the model:\n  ours {ours[row]}\n  hf   {reference}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()

    model = AutoModelForCausalLM.from_pretrained(args.model_dir).eval()
    if model.config.model_type != "gpt2":
        sys.exit(f"{args.model_dir} is a {model.config.model_type} model; this exporter knows GPT-2's layout")
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    with torch.no_grad():
        module = torch.jit.script(CachedDecoder(model).eval())
    check(module, model, tokenizer)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    module.save(str(args.out_dir / "model.pt"))
    for name in ["tokenizer.json", "tokenizer_config.json"]:
        if (args.model_dir / name).exists():
            shutil.copy(args.model_dir / name, args.out_dir / name)
    config = model.config
    eos = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
    description = {"architecture": "gpt2", "layers": config.n_layer, "heads": config.n_head,
                   "head_size": config.n_embd // config.n_head, "vocab_size": config.vocab_size,
                   "context_length": config.n_positions, "eos_token_ids": eos}
    (args.out_dir / "decoder.json").write_text(json.dumps(description, indent=2) + "\n")
    print(f"decoder written to {args.out_dir}: {description}")


if __name__ == "__main__":
    main()
