"""Load on pipelines and on their models given prepared tensors, through
one coordinator, from client threads on the same machine (see
bench/pipelines.sh).

    python bench/pipelines.py URL TOKEN FIXTURES SECONDS

Each case runs for SECONDS at 1 and at 8 clients, one row per request,
over keep-alive HTTP connections with bodies built beforehand: requests/s
and p50/p99 latency. Then each pipeline step's mean time, from the
coordinator's maas_pipeline_step_seconds.
"""

import http.client
import json
import re
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

TEXT = "The service answered every request quickly and the results were excellent."


def binary_body(inputs, outputs=None):
    """A binary-extension body of (name, datatype, shape, raw bytes)."""
    header = {"inputs": [{"name": n, "datatype": d, "shape": s, "parameters": {"binary_data_size": len(b)}}
                         for n, d, s, b in inputs]}
    if outputs:
        header["outputs"] = [{"name": o} for o in outputs]
    text = json.dumps(header).encode()
    return text + b"".join(b for _, _, _, b in inputs), len(text)


def bytes_element(data):
    return len(data).to_bytes(4, "little") + data


def run(url, token, model, body, clients, seconds):
    """Sends `body` to `model` from `clients` threads for `seconds`;
    returns requests/s and latencies (ms)."""
    parsed = urllib.parse.urlparse(url)
    payload, json_len = body
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream",
               "Inference-Header-Content-Length": str(json_len)}
    path = f"/v2/models/{model}/infer"
    latencies, failures = [], []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client():
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port)
        mine = []
        while time.monotonic() < stop:
            started = time.perf_counter()
            connection.request("POST", path, payload, headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failures.append(response.status)
                continue
            mine.append((time.perf_counter() - started) * 1000)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    if failures:
        sys.exit(f"{model}: {len(failures)} failed requests, statuses {sorted(set(failures))}")
    latencies.sort()
    return len(latencies) / elapsed, latencies


def step_times(url, token):
    parsed = urllib.parse.urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port)
    connection.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
    text = connection.getresponse().read().decode()
    sums, counts = {}, {}
    for line in text.splitlines():
        found = re.match(r'maas_pipeline_step_seconds_(sum|count)\{(.*)\} ([0-9.e+-]+)', line)
        if found:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', found.group(2)))
            key = (labels["model"], labels["step"])
            (sums if found.group(1) == "sum" else counts)[key] = float(found.group(3))
    return {key: sums[key] / counts[key] * 1000 for key in sums if counts.get(key)}


def main():
    url, token, fixtures, seconds = sys.argv[1], sys.argv[2], Path(sys.argv[3]), float(sys.argv[4])
    tokenizer = Tokenizer.from_file(str(fixtures / "text" / "tokenizer.json"))
    tokenizer.enable_truncation(16)
    tokenizer.enable_padding(length=16, pad_id=tokenizer.token_to_id("[PAD]"))
    encoding = tokenizer.encode(TEXT)
    ids = np.array([encoding.ids], dtype=np.int64).tobytes()
    mask = np.array([encoding.attention_mask], dtype=np.int64).tobytes()
    jpeg = (fixtures / "image" / "image0.jpg").read_bytes()
    from PIL import Image
    from torchvision import transforms
    prepare = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                                  transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    pixels = prepare(Image.open(fixtures / "image" / "image0.jpg").convert("RGB")).unsqueeze(0).numpy().tobytes()
    cases = [
        ("bert (token ids)", "bert", binary_body([("input_ids", "INT64", [1, 16], ids),
                                                  ("attention_mask", "INT64", [1, 16], mask)])),
        ("bert-hop (ids, 1 model step)", "bert-hop", binary_body([("input_ids", "INT64", [1, 16], ids),
                                                                  ("attention_mask", "INT64", [1, 16], mask)])),
        ("sentiment (raw text)", "sentiment", binary_body([("TEXT", "BYTES", [1, 1], bytes_element(TEXT.encode()))])),
        ("resnet (pixels)", "resnet", binary_body([("pixels", "FP32", [1, 3, 224, 224], pixels)])),
        ("classify-image (JPEG)", "classify-image",
         binary_body([("IMAGE", "BYTES", [1, 1], bytes_element(jpeg))], ["LABELS", "SCORES"])),
    ]
    for _, model, body in cases:
        run(url, token, model, body, 2, 1.0)  # warm-up
    print(f"{'case':<30} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for clients in (1, 8):
        for label, model, body in cases:
            rate, latencies = run(url, token, model, body, clients, seconds)
            p50 = latencies[len(latencies) // 2]
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
            print(f"{label:<30} {clients:>7} {rate:>8.1f} {p50:>8.2f} {p99:>8.2f}")
    print("\nmean time per step (ms), over every request above:")
    for (model, step), ms in sorted(step_times(url, token).items()):
        print(f"  {model:<16} {step:<10} {ms:8.3f}")


if __name__ == "__main__":
    main()
