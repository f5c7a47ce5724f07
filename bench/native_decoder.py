#!/usr/bin/env python3
"""Streamed text completions at 1, 4, 16 and 64 streams at once, from a
decoder maas nodes run natively, from `transformers serve` on the same
model, and from Hugging Face `generate` in this process (the N prompts
padded into one batch).

    bench/native_decoder.py HF_MODEL_DIR ENGINE_URL ENGINE_MODEL MAAS_URL MAAS_KEY MODEL [MAX_TOKENS] [ROUNDS]

For each path and number of streams: time to first token (median over the
streams) and generated tokens per second over all streams (tokens over the
wall time). For `generate`, the first token's time is a one-token
`generate` of the same batch.
"""

import statistics
import sys
import threading
import time

import torch
from openai import OpenAI
from transformers import AutoModelForCausalLM, AutoTokenizer

STREAMS = [1, 4, 16, 64]
WORDS = ["sea", "wind", "ships", "rain", "the", "light", "stone", "river"]


def prompt(index):
    return " ".join(WORDS[(index + j) % len(WORDS)] for j in range(4 + index % 12))


def through_api(base_url, key, model, streams, max_tokens):
    """Runs `streams` streamed completions at once; (TTFT median, tokens/s)."""
    firsts, counts = [None] * streams, [0] * streams
    start = threading.Barrier(streams + 1)

    def one(index):
        client = OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=600)
        start.wait()
        began = time.perf_counter()
        stream = client.completions.create(model=model, prompt=prompt(index), max_tokens=max_tokens,
                                           temperature=0, stream=True)
        for chunk in stream:
            if chunk.choices and chunk.choices[0].text:
                counts[index] += 1
                if firsts[index] is None:
                    firsts[index] = time.perf_counter() - began

    threads = [threading.Thread(target=one, args=(i,)) for i in range(streams)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    return statistics.median(f for f in firsts if f is not None), sum(counts) / wall


def in_process(model, tokenizer, streams, max_tokens):
    tokenizer.padding_side = "left"
    batch = tokenizer([prompt(i) for i in range(streams)], return_tensors="pt", padding=True)
    with torch.no_grad():
        began = time.perf_counter()
        model.generate(**batch, max_new_tokens=1, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        first = time.perf_counter() - began
        began = time.perf_counter()
        out = model.generate(**batch, max_new_tokens=max_tokens, min_new_tokens=max_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
        wall = time.perf_counter() - began
    return first, (out.shape[1] - batch["input_ids"].shape[1]) * streams / wall


def main():
    hf_dir, engine_url, engine_model, maas_url, maas_key, model = sys.argv[1:7]
    max_tokens = int(sys.argv[7]) if len(sys.argv) > 7 else 64
    rounds = int(sys.argv[8]) if len(sys.argv) > 8 else 2
    torch.set_num_threads(1)
    hf = AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    paths = [
        ("maas native", lambda n: through_api(f"{maas_url}/v1", maas_key, model, n, max_tokens)),
        ("transformers serve", lambda n: through_api(f"{engine_url}/v1", "none", engine_model, n, max_tokens)),
        ("HF generate (in process)", lambda n: in_process(hf, tokenizer, n, max_tokens)),
    ]
    for _, run in paths:
        run(1)
    print(f"streamed completions of {max_tokens} tokens, best of {rounds} rounds")
    print("| streams | path | TTFT median (ms) | tokens/s (all streams) |")
    print("|---:|---|---:|---:|")
    for streams in STREAMS:
        for label, run in paths:
            results = [run(streams) for _ in range(rounds)]
            first = min(r[0] for r in results)
            rate = max(r[1] for r in results)
            print(f"| {streams} | {label} | {first * 1e3:.1f} | {rate:.0f} |", flush=True)


if __name__ == "__main__":
    main()
