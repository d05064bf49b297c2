"""Test helpers: tiny ONNX models built with onnx.helper, fake sysfs trees, a live agent server."""
from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import httpx
import numpy as np
import onnx
import uvicorn
from onnx import TensorProto, helper, numpy_helper

from edgeprune_agent.server import create_app

FIXTURES = Path(__file__).parent / "fixtures"
SYSFS_LINE = re.compile(r"^(.*/[^/:]+):(.*)$")
TOKEN = "test-token-0123456789"


def _save(graph: onnx.GraphProto) -> bytes:
    """Serialise a graph as an opset-13 model with an IR version onnxruntime accepts."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def conv_relu_bytes(dims: Optional[List[object]] = None) -> bytes:
    """Conv 3->8 3x3 + Relu on a 1x3x16x16 float input (or on `dims`)."""
    dims = dims or [1, 3, 16, 16]
    weight = np.random.default_rng(1).standard_normal((8, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["y"])],
        "conv_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [dims[0], 8, dims[2], dims[3]])],
        initializer=[numpy_helper.from_array(weight, "w")])
    return _save(graph)


def int64_input_bytes() -> bytes:
    """Cast an int64 1x4 input to float and Relu it."""
    graph = helper.make_graph(
        [helper.make_node("Cast", ["ids"], ["f"], to=TensorProto.FLOAT),
         helper.make_node("Relu", ["f"], ["y"])],
        "int_input",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    return _save(graph)


def loop_forever_bytes() -> bytes:
    """A Loop whose trip count is int64 max and whose condition stays true: one inference never ends."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["v_in", "one"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1])],
        initializer=[numpy_helper.from_array(np.ones(1, np.float32), "one")])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trip", "cond", "x"], ["y"], body=body)],
        "loop_forever",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        initializer=[numpy_helper.from_array(np.array(2**63 - 1, np.int64), "trip"),
                     numpy_helper.from_array(np.array(True), "cond")])
    return _save(graph)


def write_sysfs(root: Path, fixture_name: str) -> Dict[str, str]:
    """Build a fake tree under `root` from a `<path>:<value>` fixture file; returns path -> value."""
    written = {}
    for line in (FIXTURES / fixture_name).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = SYSFS_LINE.match(line)
        assert match, f"bad fixture line {line!r}"
        path, value = match.group(1), match.group(2)
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(value + "\n")
        written[path] = value
    return written


def write_file(root: Path, rel: str, text: str) -> Path:
    """Write `text` to root/rel, creating directories."""
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return target


class LiveServer:
    """uvicorn serving an agent app on a free loopback port in a background thread."""

    def __init__(self, tls: Optional[tuple] = None, **app_kwargs):
        self.app = create_app(TOKEN, **app_kwargs)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.tls = tls
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self._sock.getsockname()[1]}"
        ssl_kw = {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1])} if tls else {}
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on", **ssl_kw)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]},
                                        daemon=True)

    def __enter__(self) -> "LiveServer":
        self._thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                verify = str(self.tls[0]) if self.tls else True
                if httpx.get(self.url + "/v1/health", timeout=1, verify=verify).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.02)
        raise RuntimeError("agent server did not come up within 10 s")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self._thread.join(10)
        self._sock.close()

    def client(self, token: Optional[str] = TOKEN, timeout: float = 60) -> httpx.Client:
        """An httpx client for this server, with the bearer token unless token is None."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        verify = str(self.tls[0]) if self.tls else True
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout, verify=verify)


def make_tls_cert(directory: Path, name: str = "agent") -> tuple:
    """A fresh self-signed certificate for 127.0.0.1/localhost (and its key) as PEM files in ``directory``."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def serve_agent_process(tmp_path: Path) -> tuple:
    """A real `edgeprune-agent serve` process on a free loopback port, once it answers /v1/health: (process, url)."""
    token = tmp_path / "token"
    token.write_text(TOKEN)
    token.chmod(0o600)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "edgeprune_agent", "serve", "--port", str(port), "--token-file",
                             str(token), "--sensor", "none"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            if time.monotonic() > end or proc.poll() is not None:
                proc.kill()
                raise AssertionError("agent did not start") from None
            time.sleep(0.05)
