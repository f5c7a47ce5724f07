"""String tensors to and from an ONNX model on a maas node, called with
tritonclient over HTTP JSON, HTTP binary and gRPC, against the same model
run here by onnxruntime.

    python tests/python/string_clients.py HTTP_ADDR GRPC_ADDR FIXTURE_DIR MODEL TOKEN

Sends, from 12 threads at once (so that the server batches them), requests
of 1 to 3 rows of words of different lengths (ASCII, accented, empty);
every output must equal onnxruntime's (strings exactly, scores within
1e-6). Meanwhile two requests are malformed — an element that is not
UTF-8 and one holding a NUL byte — and must be refused with a 400 naming
the element, without failing the others. Prints one line per check; exits
non-zero at the first mismatch.
"""

import sys
import threading
from pathlib import Path

import numpy as np
import onnxruntime

WORDS = ["cat", "dog", "émeu", "fish", "naïve", "über", "", "a much longer word than the others", "ok", "zebra"]
OUTPUTS = ["IDS", "TAGGED", "SCORES", "LABEL"]


def fail(message):
    print("MISMATCH:", message)
    sys.exit(1)


def request_inputs(seed):
    rng = np.random.default_rng(seed)
    rows = 1 + seed % 3
    text = np.array([[WORDS[i].encode() for i in rng.integers(0, len(WORDS), 2)] for _ in range(rows)],
                    dtype=np.object_)
    features = rng.normal(size=(rows, 4)).astype(np.float32)
    return text, features


def call(protocol, binary, addr, model, token, text, features):
    headers = {"authorization": f"Bearer {token}"}
    if protocol == "http":
        import tritonclient.http as client

        inputs = [client.InferInput("TEXT", list(text.shape), "BYTES"),
                  client.InferInput("FEATURES", list(features.shape), "FP32")]
        inputs[0].set_data_from_numpy(text, binary_data=binary)
        inputs[1].set_data_from_numpy(features, binary_data=binary)
        wanted = [client.InferRequestedOutput(name, binary_data=binary) for name in OUTPUTS]
    else:
        import tritonclient.grpc as client

        inputs = [client.InferInput("TEXT", list(text.shape), "BYTES"),
                  client.InferInput("FEATURES", list(features.shape), "FP32")]
        inputs[0].set_data_from_numpy(text)
        inputs[1].set_data_from_numpy(features)
        wanted = [client.InferRequestedOutput(name) for name in OUTPUTS]
    triton = client.InferenceServerClient(addr)
    result = triton.infer(model, inputs, outputs=wanted, headers=headers)
    return [result.as_numpy(name) for name in OUTPUTS]


def as_text(values):
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values.reshape(-1)]


def check(session, got, text, features, where):
    expected = session.run(OUTPUTS, {"TEXT": np.vectorize(bytes.decode, otypes=[object])(text), "FEATURES": features})
    ids, tagged, scores, label = got
    if not np.array_equal(ids, expected[0]):
        fail(f"{where}: IDS {ids.tolist()} != {expected[0].tolist()}")
    for name, value, reference in [("TAGGED", tagged, expected[1]), ("LABEL", label, expected[3])]:
        if as_text(value) != as_text(reference) or value.shape != reference.shape:
            fail(f"{where}: {name} {as_text(value)} {value.shape} != {as_text(reference)} {reference.shape}")
    if not np.allclose(scores, expected[2], atol=1e-6, rtol=0):
        fail(f"{where}: SCORES {scores.tolist()} != {expected[2].tolist()}")


def main():
    http_addr, grpc_addr, fixture, model, token = sys.argv[1:6]
    session = onnxruntime.InferenceSession(str(Path(fixture) / "model.onnx"))
    routes = [("http", False, http_addr), ("http", True, http_addr), ("grpc", True, grpc_addr)]
    answers, refusals, errors = [], [], []

    def good(seed):
        protocol, binary, addr = routes[seed % len(routes)]
        text, features = request_inputs(seed)
        try:
            answers.append((seed, protocol, binary, text, features,
                            call(protocol, binary, addr, model, token, text, features)))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(f"request {seed} over {protocol} binary={binary}: {error}")

    def bad(element, protocol, addr):
        text = np.array([[b"cat", element]], dtype=np.object_)
        try:
            call(protocol, True, addr, model, token, text, np.zeros((1, 4), dtype=np.float32))
            errors.append(f"{element!r} over {protocol} was answered")
        except Exception as error:  # noqa: BLE001 - the refusal is the point
            refusals.append(str(error))

    threads = [threading.Thread(target=good, args=(seed,)) for seed in range(12)]
    threads.append(threading.Thread(target=bad, args=(b"\xff\xfe", "http", http_addr)))
    threads.append(threading.Thread(target=bad, args=(b"nul\x00here", "grpc", grpc_addr)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        fail("; ".join(errors))
    for seed, protocol, binary, text, features, got in answers:
        check(session, got, text, features, f"request {seed} over {protocol} binary={binary}")
    print(f"strings: {len(answers)} requests over HTTP JSON, HTTP binary and gRPC equal to onnxruntime")
    wanted = ["element 1 is not UTF-8 text", "element 1 holds a NUL byte"]
    for expected in wanted:
        if not any(expected in refusal for refusal in refusals):
            fail(f"no refusal says {expected!r}: {refusals}")
    print(f"strings: malformed elements refused: {' | '.join(sorted(refusals))}")


if __name__ == "__main__":
    main()
