#!/usr/bin/env python3
"""Exports a GPT-2-style or Llama-style causal language model for maas nodes
to run as a native decoder: TorchScript with an explicit key/value cache, its
tokenizer and a description of its shape.

    scripts/export_decoder.py HF_MODEL_DIR OUT_DIR

HF_MODEL_DIR is a folder `AutoModelForCausalLM.from_pretrained` reads:

- the GPT-2 family (learned positions, LayerNorm, GELU MLP);
- Llama and the models laid out like it (`model.layers[i].self_attn.q_proj`
  ... `mlp.gate_proj`): rotary positions (the model's own frequencies, so
  scaled rotary embeddings carry over), RMSNorm, a gated SiLU MLP and
  grouped-query attention, whose cache holds only the key/value heads.

OUT_DIR receives:

- `model.pt`: `forward(input_ids, positions, past, mask) -> (logits, present)`
  - `input_ids`, `positions`: int64 `[B, T]`, the new tokens of B sequences
    and their positions;
  - `past`: float32 `[L, 2, B, H, P, D]`, each sequence's keys and values so
    far, right-padded to the longest (P may be 0); H counts key/value heads;
  - `mask`: int64 `[B, P + T]`, 1 where a past slot holds a token of the
    sequence and for the new tokens, 0 for padding;
  - `logits`: float32 `[B, T, V]`; `present`: `[L, 2, B, H, P + T, D]`.
  New tokens attend to the unmasked past and, causally, to each other.
- `tokenizer.json` (and `tokenizer_config.json`, which holds the chat
  template), copied;
- `decoder.json`: the architecture, layers, cache heads, head size,
  vocabulary, context length and end-of-sequence ids.

The export is checked before it is written, whatever the architecture: two
prompts of different lengths decoded greedily together, token by token
through the cache with padding, must produce exactly the tokens Hugging
Face's `generate` produces for each alone, and the first step's logits must
match within 1e-4.
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


def allowed_slots(input_ids, past_len: int, mask):
    """`[B, 1, T, P + T]`: query i (new token i) may see past slot j when the
    mask has it, and new token j when j <= i."""
    t = input_ids.shape[1]
    new = torch.arange(t, device=input_ids.device)
    causal = torch.cat([torch.ones(t, past_len, dtype=torch.bool, device=input_ids.device),
                        new.unsqueeze(1) >= new.unsqueeze(0)], dim=1)
    return (causal.unsqueeze(0) & (mask != 0).unsqueeze(1)).unsqueeze(1)


def attend(q, k, v, allowed, scale: float):
    """Masked softmax attention; `[B, H, T, D]` out."""
    scores = (q @ k.transpose(-1, -2)) * scale
    scores = scores.masked_fill(~allowed, -3.4028234663852886e38)
    return torch.softmax(scores, dim=-1) @ v


class Gpt2Block(nn.Module):
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
        attended = attend(q, k, v, allowed, d ** -0.5).transpose(1, 2).reshape(b, t, width)
        x = x + attended @ self.proj_w + self.proj_b
        hidden = nn.functional.gelu(self.ln_2(x) @ self.fc_w + self.fc_b, approximate="tanh")
        return x + hidden @ self.out_w + self.out_b, k, v


class CachedGpt2(nn.Module):
    """GPT-2 with `forward(input_ids, positions, past, mask)`."""

    def __init__(self, model):
        super().__init__()
        transformer = model.transformer
        self.wte, self.wpe, self.ln_f = transformer.wte, transformer.wpe, transformer.ln_f
        self.blocks = nn.ModuleList([Gpt2Block(block, model.config.n_head) for block in transformer.h])
        self.lm_head = model.lm_head

    def forward(self, input_ids, positions, past, mask):
        x = self.wte(input_ids) + self.wpe(positions)
        allowed = allowed_slots(input_ids, past.shape[4], mask)
        keys, values = [], []
        for index, block in enumerate(self.blocks):
            x, k, v = block(x, past[index, 0], past[index, 1], allowed)
            keys.append(k)
            values.append(v)
        present = torch.stack([torch.stack(keys), torch.stack(values)], dim=1)
        return self.lm_head(self.ln_f(x)), present


class RmsNorm(nn.Module):
    """Llama's RMSNorm, computed in float32 as Hugging Face does."""

    def __init__(self, norm):
        super().__init__()
        self.weight = norm.weight
        self.eps = float(norm.variance_epsilon)

    def forward(self, x):
        dtype = x.dtype
        x = x.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class LlamaBlock(nn.Module):
    """One Llama decoder layer with its cache made explicit; keys are cached
    after rotation, so a cached key never moves."""

    def __init__(self, layer, heads: int, kv_heads: int, head_size: int):
        super().__init__()
        attention = layer.self_attn
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (
            attention.q_proj, attention.k_proj, attention.v_proj, attention.o_proj)
        self.gate_proj, self.up_proj, self.down_proj = layer.mlp.gate_proj, layer.mlp.up_proj, layer.mlp.down_proj
        self.input_norm = RmsNorm(layer.input_layernorm)
        self.post_norm = RmsNorm(layer.post_attention_layernorm)
        self.heads, self.kv_heads, self.head_size = heads, kv_heads, head_size

    def forward(self, x, cos, sin, past_k, past_v, allowed):
        b, t, _ = x.shape
        h = self.input_norm(x)
        q = self.q_proj(h).view(b, t, self.heads, self.head_size).transpose(1, 2)
        k = self.k_proj(h).view(b, t, self.kv_heads, self.head_size).transpose(1, 2)
        v = self.v_proj(h).view(b, t, self.kv_heads, self.head_size).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = torch.cat([past_k, k * cos + rotate_half(k) * sin], dim=2)
        v = torch.cat([past_v, v], dim=2)
        groups = self.heads // self.kv_heads
        attended = attend(q, k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1), allowed,
                          self.head_size ** -0.5)
        x = x + self.o_proj(attended.transpose(1, 2).reshape(b, t, self.heads * self.head_size))
        h = self.post_norm(x)
        x = x + self.down_proj(nn.functional.silu(self.gate_proj(h)) * self.up_proj(h))
        return x, k, v


class CachedLlama(nn.Module):
    """A Llama-style model with `forward(input_ids, positions, past, mask)`."""

    def __init__(self, model):
        super().__init__()
        config, inner = model.config, model.model
        heads, kv_heads, head_size = llama_heads(config)
        self.embed_tokens, self.norm, self.lm_head = inner.embed_tokens, RmsNorm(inner.norm), model.lm_head
        self.blocks = nn.ModuleList([LlamaBlock(layer, heads, kv_heads, head_size) for layer in inner.layers])
        # The model's own rotary frequencies and scaling (they differ for
        # scaled rotary embeddings such as Llama 3's).
        self.register_buffer("inv_freq", inner.rotary_emb.inv_freq.detach().clone().float())
        self.rotary_scale = float(getattr(inner.rotary_emb, "attention_scaling", 1.0))

    def forward(self, input_ids, positions, past, mask):
        x = self.embed_tokens(input_ids)
        freqs = positions.unsqueeze(-1).float() * self.inv_freq
        angles = torch.cat([freqs, freqs], dim=-1).unsqueeze(1)
        cos = (angles.cos() * self.rotary_scale).to(x.dtype)
        sin = (angles.sin() * self.rotary_scale).to(x.dtype)
        allowed = allowed_slots(input_ids, past.shape[4], mask)
        keys, values = [], []
        for index, block in enumerate(self.blocks):
            x, k, v = block(x, cos, sin, past[index, 0], past[index, 1], allowed)
            keys.append(k)
            values.append(v)
        present = torch.stack([torch.stack(keys), torch.stack(values)], dim=1)
        return self.lm_head(self.norm(x)), present


def llama_heads(config):
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_size = getattr(config, "head_dim", None) or config.hidden_size // heads
    return heads, kv_heads, head_size


def is_llama_layout(model):
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None or not hasattr(inner, "rotary_emb") or len(layers) == 0:
        return False
    layer = layers[0]
    return all(hasattr(layer.self_attn, name) for name in ["q_proj", "k_proj", "v_proj", "o_proj"]) and all(
        hasattr(layer.mlp, name) for name in ["gate_proj", "up_proj", "down_proj"])


def layout(model):
    """(architecture, cached module, layers, cache heads, head size, context)."""
    config = model.config
    if config.model_type == "gpt2":
        return ("gpt2", CachedGpt2(model), config.n_layer, config.n_head, config.n_embd // config.n_head,
                config.n_positions)
    if is_llama_layout(model):
        sliding = getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True)
        if sliding or "sliding_attention" in (getattr(config, "layer_types", None) or []):
            sys.exit(f"{config.model_type} uses sliding-window attention, which this exporter does not apply")
        rope = getattr(config, "rope_scaling", None) or getattr(config, "rope_parameters", None) or {}
        rope_type = rope.get("rope_type", rope.get("type")) if isinstance(rope, dict) else None
        if rope_type in ("dynamic", "longrope"):
            # Their frequencies change with the sequence's length, which a
            # fixed export cannot follow.
            sys.exit(f"rotary scaling '{rope_type}' changes with the sequence's length; this exporter does not apply it")
        _, kv_heads, head_size = llama_heads(config)
        return ("llama", CachedLlama(model), config.num_hidden_layers, kv_heads, head_size,
                config.max_position_embeddings)
    sys.exit(f"a {config.model_type} model is neither GPT-2 nor laid out like Llama; this exporter knows those two")


def empty_past(shape, batch):
    layers, heads, head_size = shape
    return torch.zeros(layers, 2, batch, heads, 0, head_size)


def pick(logits, banned):
    """The greedy token, never one of `banned` (as `min_new_tokens` does)."""
    logits = logits.clone()
    logits[banned] = float("-inf")
    return int(logits.argmax())


def greedy_together(module, shape, prompts, steps, banned):
    """Decodes `prompts` as one batch through the cache: prefill right-padded,
    then one token per sequence per step, never an end-of-sequence token.
    Returns each sequence's tokens and the prefill's logits at each prompt's
    last position."""
    batch = len(prompts)
    longest = max(len(p) for p in prompts)
    ids = torch.zeros(batch, longest, dtype=torch.long)
    mask = torch.zeros(batch, longest, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, :len(prompt)] = torch.tensor(prompt)
        mask[row, :len(prompt)] = 1
    positions = torch.arange(longest).unsqueeze(0).expand(batch, longest).contiguous()
    logits, past = module(ids, positions, empty_past(shape, batch), mask)
    lengths = [len(p) for p in prompts]
    first_logits = torch.stack([logits[row, lengths[row] - 1] for row in range(batch)])
    tokens = [[pick(logits[row, lengths[row] - 1], banned)] for row in range(batch)]
    for _ in range(steps - 1):
        new = torch.tensor([[seq[-1]] for seq in tokens])
        positions = torch.tensor([[lengths[row] + len(tokens[row]) - 1] for row in range(batch)])
        mask = torch.cat([mask, torch.ones(batch, 1, dtype=torch.long)], dim=1)
        logits, past = module(new, positions, past, mask)
        for row in range(batch):
            tokens[row].append(pick(logits[row, 0], banned))
    return tokens, first_logits


def check(module, shape, model, tokenizer, eos):
    prompts = ["The sea is", "Tell me a short story about a cat who lived near the river."]
    encoded = [tokenizer(p)["input_ids"] for p in prompts]
    with torch.no_grad():
        ours, first_logits = greedy_together(module, shape, encoded, CHECK_TOKENS, eos)
        for row, prompt in enumerate(encoded):
            # Plain greedy decoding: none of the model's own generation
            # settings (a repetition penalty, banned n-grams) that the node
            # does not apply; end-of-sequence banned on both sides.
            reference = model.generate(torch.tensor([prompt]), max_new_tokens=CHECK_TOKENS, min_new_tokens=CHECK_TOKENS,
                                       do_sample=False, num_beams=1, repetition_penalty=1.0, no_repeat_ngram_size=0,
                                       eos_token_id=eos, pad_token_id=eos[0])[0, len(prompt):].tolist()
            expected_logits = model(torch.tensor([prompt])).logits[0, -1]
            error = float((first_logits[row] - expected_logits).abs().max())
            same = ours[row] == reference
            print(f"prompt {row} ({len(prompt)} tokens): {CHECK_TOKENS} greedy tokens "
                  f"{'equal' if same else 'DIFFER'}, first logits max abs error {error:.2e}")
            if not same or error > 1e-4:
                sys.exit(f"the export disagrees with the model:\n  ours {ours[row]}\n  hf   {reference}")


def end_of_sequence_ids(model):
    """The ids that end a sequence: the model's and its generation
    config's (Llama 3 Instruct ends a turn with one only the latter names)."""
    ids = []
    for source in [model.config, getattr(model, "generation_config", None)]:
        value = getattr(source, "eos_token_id", None)
        for token in value if isinstance(value, list) else [value]:
            if token is not None and token not in ids:
                ids.append(int(token))
    if not ids:
        sys.exit("the model names no end-of-sequence token")
    return ids


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()

    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    architecture, cached, layers, heads, head_size, context = layout(model)
    eos = end_of_sequence_ids(model)
    with torch.no_grad():
        module = torch.jit.script(cached.eval())
    check(module, (layers, heads, head_size), model, tokenizer, eos)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    module.save(str(args.out_dir / "model.pt"))
    for name in ["tokenizer.json", "tokenizer_config.json"]:
        if (args.model_dir / name).exists():
            shutil.copy(args.model_dir / name, args.out_dir / name)
    config = model.config
    description = {"architecture": architecture, "layers": layers, "heads": heads, "head_size": head_size,
                   "vocab_size": config.vocab_size, "context_length": context, "eos_token_ids": eos}
    (args.out_dir / "decoder.json").write_text(json.dumps(description, indent=2) + "\n")
    print(f"decoder written to {args.out_dir}: {description}")


if __name__ == "__main__":
    main()
