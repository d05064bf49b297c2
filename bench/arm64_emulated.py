"""The agent on emulated arm64 Debian (the Raspberry Pi OS base): install, serve, calibrate, verify, output parity.

Usage: python bench/arm64_emulated.py [--release bookworm|bullseye ...] [--cpu cortex-a76|cortex-a72]
                                     [--model-dir DIR] [--port 8791]
Needs root, mmdebstrap, qemu-user-static and the package registry (see tools/arm64-rootfs.sh). Per release it
installs "./device_agents[litert]" from the registry's aarch64 wheels into a fresh venv, serves the agent on
loopback, drives `edgeprune device add/check`, `calibrate --points 3` and `verify` (ONNX and .tflite) from the
host, and compares each artifact's outputs on the emulated aarch64 runtimes with the host's x86 ones.
Writes bench/results/arm64_emulated_<release>[-<cpu>].json (no suffix for the cortex-a76 default, a Pi 5).
Timings under emulation mean nothing and are not reported.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
ROOTFS = REPO / "tools" / "arm64-rootfs.sh"
VENV = "/opt/agent-venv"
PARITY_SAMPLES = 256


def rootfs(target: tuple[str, str], *args: str) -> list[str]:
    """Command line of tools/arm64-rootfs.sh for one (release, emulated CPU)."""
    return [str(ROOTFS), "--release", target[0], "--cpu", target[1], *args]


def in_rootfs(target: tuple[str, str], script: str, capture: bool = True) -> str:
    """Run a shell script inside the rootfs with the repository bound at its own path; its stdout."""
    cmd = rootfs(target, "run", "--bind", str(REPO), "--", "/bin/sh", "-ec", script)
    done = subprocess.run(cmd, check=True, text=True, stdout=subprocess.PIPE if capture else None)
    return done.stdout or ""


def install(target: tuple[str, str]) -> dict:
    """Fresh venv, pip install "./device_agents[litert]" (a copy, so no build files land in the repo)."""
    subprocess.run(rootfs(target, "build"), check=True)
    in_rootfs(target, f"python3 -m venv --clear {VENV}\n{VENV}/bin/pip install -q --upgrade pip\n"
                      f"rm -rf /tmp/agent-src && cp -r device_agents /tmp/agent-src\n"
                      f"{VENV}/bin/pip install '/tmp/agent-src[litert]'", capture=False)
    out = in_rootfs(target, f"cat /etc/debian_version; {VENV}/bin/python -c 'import platform; "
                            f"print(platform.python_version(), platform.machine())'; "
                            f"{VENV}/bin/pip list --format=json")
    debian, py_machine, listing = out.splitlines()[:3]
    python, machine = py_machine.split()
    packages = {p["name"]: p["version"] for p in json.loads(listing)}
    if "torch" in packages:
        raise RuntimeError("the agent's install pulled torch; it must install without it")
    return {"debian": debian, "python": python, "machine": machine, "packages": packages}


def start_agent(target: tuple[str, str], port: int, token: Path, log: Path) -> subprocess.Popen:
    """`edgeprune-agent serve` inside the rootfs on 127.0.0.1:port; returns once /v1/health answers."""
    cmd = rootfs(target, "run", "--bind", str(REPO), "--", f"{VENV}/bin/edgeprune-agent", "serve",
                 "--host", "127.0.0.1", "--port", str(port), "--token-file", str(token))
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 600  # first start under emulation imports fastapi/numpy slowly
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the agent exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=5):
                return proc
        except OSError:
            time.sleep(1)
    stop_agent(proc)
    raise RuntimeError(f"the agent did not answer on port {port} within 600 s; see {log}")


def stop_agent(proc: subprocess.Popen) -> None:
    """SIGTERM the agent's process group (unshare, chroot, emulated python), then wait."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def cli(env: dict, *args: str) -> dict:
    """One `edgeprune ... --json` call on the host; its JSON object."""
    done = subprocess.run([sys.executable, "-m", "edgeprune.cli.main", *args, "--json"], env=env, text=True,
                          capture_output=True, cwd=env["EDGEPRUNE_WORK"])
    if done.returncode != 0:
        raise RuntimeError(f"edgeprune {' '.join(args)} exited {done.returncode}: "
                           f"{(done.stdout + done.stderr)[-2000:]}")
    return json.loads(done.stdout)


def make_model(work: Path, env: dict) -> Path:
    """A compressed demo CNN (digits) with model.onnx and model.tflite, made on this host."""
    out = work / "compressed"
    if not (out / "model.tflite").exists():
        cli(env, "compress", "--device", "local", "--epochs", "1", "--data-limit", "400", "--out", str(out))
        cli(env, "export", "--model-dir", str(out), "--format", "tflite")
    return out


def parity_inputs(model_dir: Path, path: Path) -> np.ndarray:
    """Validation samples of the model's recorded data source, saved as x (and labels y) in an .npz."""
    from edgeprune.data import load_data
    from edgeprune.export.samples import take_labelled

    info = json.loads((model_dir / "channels.json").read_text())
    x, y = take_labelled(load_data(info["meta"]["data"], limit=2000).val, PARITY_SAMPLES)
    np.savez(path, x=x.numpy().astype(np.float32), y=y.numpy())
    return y.numpy()


def compare(host: Path, emulated: Path, labels: np.ndarray) -> dict:
    """max |diff| and top-1 agreement of two output sets, and each side's accuracy."""
    a, b = np.load(host), np.load(emulated)
    ya, yb = a["y"].reshape(len(labels), -1), b["y"].reshape(len(labels), -1)
    return {"samples": len(labels), "max_abs_diff": float(np.max(np.abs(ya - yb))),
            "top1_agreement": float(np.mean(ya.argmax(1) == yb.argmax(1))),
            "accuracy_x86": float(np.mean(ya.argmax(1) == labels)),
            "accuracy_aarch64": float(np.mean(yb.argmax(1) == labels)),
            "x86": json.loads(str(a["meta"])), "aarch64": json.loads(str(b["meta"]))}


def parity(target: tuple[str, str], model_dir: Path, work: Path) -> dict:
    """Outputs of model.onnx and model.tflite on x86 (host) vs emulated aarch64, same inputs."""
    inputs = work / "parity_inputs.npz"
    labels = parity_inputs(model_dir, inputs)
    out = {}
    for name in ("model.onnx", "model.tflite"):
        art, host_out, emu_out = model_dir / name, work / f"{name}.x86.npz", work / f"{name}.{target[0]}.npz"
        runner = REPO / "tools" / "model_outputs.py"
        subprocess.run([sys.executable, str(runner), str(art), str(inputs), str(host_out)], check=True,
                       stdout=subprocess.DEVNULL)
        in_rootfs(target, f"{VENV}/bin/python {runner} {art} {inputs} {emu_out}")
        out[name] = compare(host_out, emu_out, labels)
    return out


def run_release(release: str, model_dir: Path | None, port: int, cpu: str = "cortex-a76") -> dict:
    """The whole path for one Debian release on one emulated CPU; the record written to bench/results."""
    work = RESULTS / "work" / f"arm64-{release}-{cpu}"
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "EDGEPRUNE_WORK": str(work), "EDGEPRUNE_CONFIG_DIR": str(work / "config"),
           "EDGEPRUNE_TABLES_DIR": str(work / "tables"), "EDGEPRUNE_MODELS_DIR": str(work / "models")}
    shutil.rmtree(work / "config", ignore_errors=True)  # a fresh device registry each run
    if model_dir is None:
        model_dir = make_model(RESULTS / "work", {**env, "EDGEPRUNE_WORK": str(RESULTS / "work")})
    elif REPO not in model_dir.resolve().parents:  # only the repository is bound into the rootfs
        model_dir = Path(shutil.copytree(model_dir, work / "model", dirs_exist_ok=True))
    model_dir = model_dir.resolve()  # the CLI runs in the work folder
    target = (release, cpu)
    record: dict = {"release": release, "emulated_cpu": cpu, "install": install(target)}
    token, name = work / "agent.token", f"pi-emu-{release}"
    agent = start_agent(target, port, token, work / "agent.log")
    try:
        cli(env, "device", "add", name, "--url", f"http://127.0.0.1:{port}", "--token-file", str(token))
        check = cli(env, "device", "check", name)
        record["info"] = {k: check["info"].get(k) for k in ("arch", "cpu_model", "python", "runtime_versions",
                                                            "fingerprint_id")}
        record["virtualization"] = check["info"]["conditions"]["virtualization"]
        record["check_warnings"] = check["warnings"]
        cal = cli(env, "calibrate", "--device", name, "--points", "3", "--network-variants", "2",
                  "--warmup", "2", "--min-repeats", "5", "--min-duration", "0.05")
        record["calibrate"] = {k: v for k, v in cal.items() if "ms" not in k and "latency" not in k}
        record["verify"] = {}
        for art in ("model.onnx", "model.tflite"):
            v = cli(env, "verify", str(model_dir / art), "--device", name)
            record["verify"][art] = {"runtime": v["provenance"]["runtime"],
                                     "runtime_version": v["provenance"].get("runtime_version"),
                                     "measured": "emulated; not a figure", "within_budget": v["within_budget"]}
    finally:
        stop_agent(agent)
    record["parity"] = parity(target, model_dir, work)
    record["qemu"] = subprocess.run(["qemu-aarch64-static", "--version"], text=True,
                                    capture_output=True).stdout.splitlines()[0]
    return record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--release", action="append", choices=("bookworm", "bullseye"))
    ap.add_argument("--model-dir", type=Path, help="compressed model dir with model.onnx and model.tflite")
    ap.add_argument("--cpu", default="cortex-a76", choices=("cortex-a76", "cortex-a72"),
                    help="CPU qemu emulates: cortex-a76 (Raspberry Pi 5) or cortex-a72 (Pi 4)")
    ap.add_argument("--port", type=int, default=8791)
    args = ap.parse_args()
    for release in args.release or ["bookworm", "bullseye"]:
        record = run_release(release, args.model_dir, args.port, args.cpu)
        suffix = "" if args.cpu == "cortex-a76" else f"-{args.cpu}"
        path = RESULTS / f"arm64_emulated_{release}{suffix}.json"
        path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        inst = record["install"]
        for art, p in record["parity"].items():
            print(f"{release} on {args.cpu} ({inst['debian']}, Python {inst['python']}) {art}: "
                  f"max |diff| {p['max_abs_diff']:.2g}, top-1 agreement {p['top1_agreement']:.1%} "
                  f"on {p['samples']} samples")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
