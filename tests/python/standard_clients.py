#!/usr/bin/env python3
"""Standard clients against a running maas coordinator.

Drives NVIDIA's tritonclient (HTTP and gRPC) and KServe's Python SDK
(InferenceRESTClient and InferenceGRPCClient, Open Inference Protocol v2)
the way their users do: health, readiness, metadata and inference on the
example `mlp` model, whose answers must equal PyTorch's reference outputs.
Exits non-zero with the failing check on stderr. The two SDKs each
register the `inference.*` protobuf messages, which cannot share one
process, so each runs in its own:

    standard_clients.py triton|kserve HTTP_ADDR GRPC_ADDR REFERENCE_JSON
    standard_clients.py triton-tls HTTP_ADDR GRPC_ADDR REFERENCE_JSON CA_PEM
"""

import asyncio
import json
import sys

import numpy as np


def reference(path, rows):
    with open(path) as f:
        ref = json.load(f)
    x = np.asarray(ref["inputs"][0]["data"], dtype=np.float32).reshape(ref["inputs"][0]["shape"])[:rows]
    y = np.asarray(ref["outputs"][0]["data"], dtype=np.float32).reshape(ref["outputs"][0]["shape"])[:rows]
    return x, y


def close(got, want, who):
    got = np.asarray(got, dtype=np.float32).reshape(want.shape)
    if not np.allclose(got, want, rtol=1e-4, atol=1e-5):
        raise AssertionError(f"{who}: outputs differ from PyTorch by {np.abs(got - want).max()}")


def tritonclient_http(http_addr, x, y, ca=None):
    import tritonclient.http as httpclient

    tls = {"ssl": True, "ssl_options": {"ca_certs": ca}} if ca else {}
    client = httpclient.InferenceServerClient(url=http_addr, **tls)
    assert client.is_server_live(), "tritonclient.http: server not live"
    assert client.is_server_ready(), "tritonclient.http: server not ready"
    assert client.is_model_ready("mlp"), "tritonclient.http: mlp not ready"
    assert not client.is_model_ready("no-such-model"), "tritonclient.http: an unknown model is ready"
    assert client.get_model_metadata("mlp")["inputs"][0]["name"] == "INPUT__0"
    for binary in (False, True):
        tensor = httpclient.InferInput("INPUT__0", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        wanted = httpclient.InferRequestedOutput("OUTPUT__0", binary_data=binary)
        result = client.infer("mlp", [tensor], outputs=[wanted], request_id="triton-http")
        close(result.as_numpy("OUTPUT__0"), y, f"tritonclient.http binary={binary}")


def tritonclient_grpc(grpc_addr, x, y, ca=None):
    import tritonclient.grpc as grpcclient

    tls = {"ssl": True, "root_certificates": ca} if ca else {}
    client = grpcclient.InferenceServerClient(url=grpc_addr, **tls)
    assert client.is_server_live(), "tritonclient.grpc: server not live"
    assert client.is_server_ready(), "tritonclient.grpc: server not ready"
    assert client.is_model_ready("mlp"), "tritonclient.grpc: mlp not ready"
    tensor = grpcclient.InferInput("INPUT__0", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    result = client.infer("mlp", [tensor], outputs=[grpcclient.InferRequestedOutput("OUTPUT__0")])
    close(result.as_numpy("OUTPUT__0"), y, "tritonclient.grpc")


async def kserve_rest(http_addr, x, y):
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    client = InferenceRESTClient(RESTConfig(protocol="v2"))
    base = f"http://{http_addr}"
    try:
        assert await client.is_server_live(base) is True, "kserve REST: server not live"
        assert await client.is_server_ready(base) is True, "kserve REST: server not ready"
        assert await client.is_model_ready(base, "mlp") is True, "kserve REST: mlp not ready"
        tensor = InferInput(name="INPUT__0", shape=list(x.shape), datatype="FP32")
        tensor.set_data_from_numpy(x, binary_data=False)
        request = InferRequest(model_name="mlp", infer_inputs=[tensor], request_id="kserve-rest")
        response = await client.infer(base, request, model_name="mlp")
        close(response.outputs[0].as_numpy(), y, "kserve REST")
    finally:
        await client.close()


async def kserve_grpc(grpc_addr, x, y):
    from kserve import InferenceGRPCClient, InferInput, InferRequest

    client = InferenceGRPCClient(url=grpc_addr)
    try:
        assert await client.is_server_live() is True, "kserve gRPC: server not live"
        assert await client.is_server_ready() is True, "kserve gRPC: server not ready"
        assert await client.is_model_ready("mlp") is True, "kserve gRPC: mlp not ready"
        tensor = InferInput(name="INPUT__0", shape=list(x.shape), datatype="FP32")
        tensor.set_data_from_numpy(x)
        request = InferRequest(model_name="mlp", infer_inputs=[tensor], request_id="kserve-grpc")
        response = await client.infer(request)
        close(response.outputs[0].as_numpy(), y, "kserve gRPC")
    finally:
        await client.close()


def main():
    sdk, http_addr, grpc_addr, reference_path = sys.argv[1:5]
    x, y = reference(reference_path, rows=4)
    if sdk == "triton":
        tritonclient_http(http_addr, x, y)
        tritonclient_grpc(grpc_addr, x, y)
    elif sdk == "triton-tls":
        ca = sys.argv[5]
        tritonclient_http(http_addr, x, y, ca)
        tritonclient_grpc(grpc_addr, x, y, ca)
    elif sdk == "kserve":
        asyncio.run(kserve_rest(http_addr, x, y))
        asyncio.run(kserve_grpc(grpc_addr, x, y))
    else:
        sys.exit(f"unknown SDK {sdk!r}: triton, triton-tls or kserve")
    print(f"{sdk}: HTTP and gRPC health, readiness and inference match PyTorch")


if __name__ == "__main__":
    main()
