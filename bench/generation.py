#!/usr/bin/env python3
"""What maas adds to a generative request: the same streamed chat completions
sent to an engine directly and through a coordinator, one at a time (the
test engine runs one generation at a time), with the OpenAI client.

    bench/generation.py ENGINE_URL ENGINE_MODEL MAAS_URL MAAS_KEY MODEL [REQUESTS] [MAX_TOKENS]

Prints a table: time to first token (p50, p99), whole request (p50), and
generated tokens per second, for each path, and the ratio of the medians.
"""

import statistics
import sys
import time

from openai import OpenAI


def measure(client, model, requests, max_tokens):
    first, whole, rates = [], [], []
    for index in range(requests):
        started = time.perf_counter()
        stream = client.chat.completions.create(
            model=model, stream=True, temperature=0, max_tokens=max_tokens,
            messages=[{"role": "user", "content": f"Tell me about the sea, number {index}."}])
        first_at, pieces = None, 0
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces += 1
                if first_at is None:
                    first_at = time.perf_counter()
        ended = time.perf_counter()
        first.append((first_at or ended) - started)
        whole.append(ended - started)
        if first_at and pieces > 1 and ended > first_at:
            rates.append((pieces - 1) / (ended - first_at))
    return first, whole, rates


def quantile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main():
    engine_url, engine_model, maas_url, maas_key, model = sys.argv[1:6]
    requests = int(sys.argv[6]) if len(sys.argv) > 6 else 50
    max_tokens = int(sys.argv[7]) if len(sys.argv) > 7 else 64
    paths = [("engine directly", OpenAI(base_url=f"{engine_url}/v1", api_key="none"), engine_model),
             ("through maas", OpenAI(base_url=f"{maas_url}/v1", api_key=maas_key), model)]
    for _, client, name in paths:
        measure(client, name, 3, max_tokens)
    results = {}
    print(f"{requests} streamed chat completions of {max_tokens} tokens each, one at a time")
    print("| path | TTFT p50 (ms) | TTFT p99 (ms) | request p50 (ms) | tokens/s p50 |")
    print("|---|---:|---:|---:|---:|")
    for label, client, name in paths:
        first, whole, rates = measure(client, name, requests, max_tokens)
        results[label] = (statistics.median(first), statistics.median(whole), statistics.median(rates))
        print(f"| {label} | {statistics.median(first) * 1e3:.1f} | {quantile(first, 0.99) * 1e3:.1f} "
              f"| {statistics.median(whole) * 1e3:.1f} | {statistics.median(rates):.0f} |")
    direct, proxied = results["engine directly"], results["through maas"]
    print(f"\nthrough maas / directly: TTFT {proxied[0] / direct[0]:.2f}x, request {proxied[1] / direct[1]:.2f}x, "
          f"tokens/s {proxied[2] / direct[2]:.2f}x; added per request: {(proxied[1] - direct[1]) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
