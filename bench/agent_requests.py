"""Generated requests for the agent robustness benchmark: valid jobs, hostile bodies, parameters at and past bounds."""
from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LIMIT_MB = 8  # the agent runs with --max-upload-mb 8 in the benchmark
MEASURE = "/v1/measure"
FAST = {"warmup": 1, "min_repeats": 5, "min_duration_s": 0.02, "max_duration_s": 0.5, "reference": "false"}
MAX_THREADS = os.cpu_count() or 1
# (parameter, value, accepted?) at and past every documented bound; the rest of the settings stay FAST.
BOUNDS = [("threads", 1, True), ("threads", MAX_THREADS, True), ("threads", 0, False),
          ("threads", MAX_THREADS + 1, False), ("threads", 5000, False), ("threads", 10**30, False),
          ("threads", -1, False), ("warmup", 0, True), ("warmup", 10_000, True), ("warmup", 10_001, False),
          ("warmup", 10**9, False), ("warmup", -1, False), ("min_repeats", 1, True),
          ("min_repeats", 100_000, True), ("min_repeats", 100_001, False), ("min_repeats", 0, False),
          ("max_duration_s", 300, True), ("max_duration_s", 300.001, False), ("max_duration_s", 1e6, False),
          ("max_duration_s", 0, False), ("max_duration_s", -5, False), ("max_duration_s", "inf", False),
          ("max_duration_s", "nan", False), ("min_duration_s", 0, False), ("min_duration_s", 1e6, False),
          ("min_duration_s", 0.001, True), ("min_duration_s", 0.6, False)]  # 0.6 > max_duration_s 0.5
BAD_TYPES = [("threads", "many"), ("warmup", "1.5"), ("max_duration_s", "soon"), ("wait", "perhaps"),
             ("profile", "2x")]


@dataclass
class Request:
    """One generated request and the answers that would be correct."""

    kind: str
    method: str = "POST"
    template: str = MEASURE
    path: str = MEASURE
    params: dict = field(default_factory=dict)
    body: bytes | Callable | None = None
    headers: dict = field(default_factory=lambda: {"Content-Type": "application/octet-stream"})
    auth: str = "good"
    expect: frozenset = frozenset({200})
    sha: str | None = None
    cancel: bool = False
    raw_head: Callable | None = None


def _save(graph: onnx.GraphProto) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def conv_model(seed: int = 0, dims: list | None = None) -> bytes:
    """Conv 3->8 3x3 + Relu; the weights follow ``seed`` so every valid job has its own model hash."""
    dims = dims or [1, 3, 16, 16]
    weight = np.random.default_rng(seed).standard_normal((8, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(weight, "w")])
    return _save(graph)


def loop_forever() -> bytes:
    """A Loop with an int64-max trip count and a condition that stays true: one inference never ends."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"]), helper.make_node("Add", ["v_in", "one"], ["v_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1])],
        initializer=[numpy_helper.from_array(np.ones(1, np.float32), "one")])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trip", "cond", "x"], ["y"], body=body)], "loop",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        initializer=[numpy_helper.from_array(np.array(2**63 - 1, np.int64), "trip"),
                     numpy_helper.from_array(np.array(True), "cond")])
    return _save(graph)


def _bitflip(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        pos = rng.randrange(len(out))
        out[pos] ^= 1 << rng.randrange(8)
    return bytes(out)


def _raw(declared: int) -> Callable:
    """A raw request head declaring ``declared`` body bytes."""
    def head(url: str, token: str) -> bytes:
        host = url.removeprefix("http://")
        return (f"POST {MEASURE} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n").encode()
    return head


def _stream_past_limit() -> Callable:
    """A chunked body (no Content-Length) that grows past the upload limit."""
    def chunks():
        for _ in range(LIMIT_MB + 2):
            yield b"\0" * 2**20
    return chunks


def _valid(i: int, rng: random.Random) -> Request:
    body = conv_model(seed=1000 + i)
    wait = rng.random() < 0.5
    params = {**FAST, "wait": "true" if wait else "false", "reference": rng.choice(["true", "false"])}
    return Request("valid", params=params, body=body, expect=frozenset({200 if wait else 202}),
                   sha=hashlib.sha256(body).hexdigest())


def _hostile(kind: str, rng: random.Random, base: bytes) -> Request:
    """A request the agent must refuse cleanly."""
    invalid_model = frozenset({422})
    if kind == "random_bytes":
        return Request(kind, params=FAST, body=os.urandom(rng.choice([1, 7, 100, 4096, 200_000])),
                       expect=invalid_model)
    if kind == "truncated":
        return Request(kind, params=FAST, body=base[:rng.randrange(1, len(base))], expect=invalid_model)
    if kind == "bitflip":
        return Request(kind, params=FAST, body=_bitflip(base, rng), expect=frozenset({200, 422}))
    if kind == "dynamic_shape":
        return Request(kind, params=FAST, body=conv_model(dims=["N", 3, 16, 16]), expect=invalid_model)
    if kind == "huge_input":
        side = rng.choice([20_000, 100_000, 2**31 - 1])
        return Request(kind, params=FAST, body=conv_model(dims=[1, 3, side, side]), expect=invalid_model)
    if kind == "bound":
        name, value, ok = rng.choice(BOUNDS)
        return Request(kind, params={**FAST, name: value}, body=base, expect=frozenset({200} if ok else {400}))
    if kind == "bad_type":
        name, value = rng.choice(BAD_TYPES)
        return Request(kind, params={**FAST, name: value}, body=base, expect=frozenset({422}))
    if kind == "auth":
        return Request(kind, params=FAST, body=base, auth=rng.choice(["none", "wrong"]), expect=frozenset({401}))
    if kind == "unknown_job":
        method = rng.choice(["GET", "DELETE"])
        job = os.urandom(16).hex()
        return Request(kind, method=method, template="/v1/jobs/{job_id}", path=f"/v1/jobs/{job}", headers={},
                       expect=frozenset({404}))
    if kind == "oversize_declared":
        return Request(kind, raw_head=_raw(LIMIT_MB * 2**20 + rng.randint(1, 10**9)), body=b"",
                       expect=frozenset({413}))
    if kind == "empty":
        return Request(kind, params=FAST, body=b"", expect=frozenset({400}))
    if kind == "bad_runtime":
        return Request(kind, params={**FAST, "runtime": rng.choice(["tensorrt", "", "ONNXRUNTIME"])}, body=base,
                       expect=frozenset({400}))
    if kind == "read_only":
        path = rng.choice(["/v1/health", "/v1/info"])
        return Request(kind, method="GET", template=path, path=path, headers={}, expect=frozenset({200}))
    raise ValueError(kind)


MIX = {"random_bytes": 10, "truncated": 10, "bitflip": 8, "dynamic_shape": 2, "huge_input": 3, "bound": 24,
       "bad_type": 5, "auth": 6, "unknown_job": 6, "oversize_declared": 6, "empty": 3, "bad_runtime": 3,
       "read_only": 6}


def generate(n: int, seed: int, valid_only: bool = False) -> list[Request]:
    """``n`` requests: a burst of 24 queued jobs first, then 8 % valid jobs, a fixed set of hanging, stalled,
    streamed and long jobs and the rest hostile, shuffled."""
    rng = random.Random(seed)
    base = conv_model()
    if valid_only:
        return [_valid(seed * 10_000 + i, rng) for i in range(n)]
    out = [_valid(seed * 10_000 + i, rng) for i in range(max(1, n * 8 // 100))]
    out += [Request("hanging", params={**FAST, "max_duration_s": 0.05, "min_duration_s": 0.01, "wait": "false"},
                    body=loop_forever(), expect=frozenset({202})) for _ in range(10)]
    out += [Request("stalled_body", raw_head=_raw(1000), body=b"x" * 10, expect=frozenset({408}))
            for _ in range(8)]
    out += [Request("oversize_streamed", params=FAST, body=_stream_past_limit(), expect=frozenset({413}))
            for _ in range(3)]
    out += [Request("long_cancelled", params={**FAST, "min_duration_s": 300, "max_duration_s": 300,
                                              "wait": "false"}, body=base, expect=frozenset({202}), cancel=True)
            for _ in range(3)]
    burst = [_valid(seed * 10_000 + 5_000 + i, rng) for i in range(24)]  # fills the 16-job queue: 503s
    for req in burst:
        req.params["wait"], req.expect = "false", frozenset({202})
    kinds, weights = zip(*MIX.items())
    out += [_hostile(kind, rng, base) for kind in rng.choices(kinds, weights, k=max(0, n - len(out) - len(burst)))]
    rng.shuffle(out)
    return burst + out
