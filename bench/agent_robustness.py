"""Benchmark: a real agent on loopback under >= 2,000 generated hostile and valid requests from 4 clients.

Usage: python bench/agent_robustness.py [--requests 2000] [--clients 4] [--time-limit-s 900] [--seed 0] [--out F]
Targets: 0 answers 5xx, 0 answers off the OpenAPI contract, every job ends by its deadline + 1 s, agent RSS after
< 2 x before, every valid job's result returned exactly once. Prints a summary; writes
bench/results/agent_robustness.json.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).parent))
from agent_requests import LIMIT_MB, Request, generate  # noqa: E402
from agent_contract import Contract  # noqa: E402

RESULTS = Path(__file__).parent / "results"
TOKEN = "bench-" + os.urandom(8).hex()


def start_agent(tmp: Path) -> tuple[subprocess.Popen, str]:
    """`edgeprune-agent serve` in its own process with short setup/body timeouts so the bench stays bounded."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token_file = tmp / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    proc = subprocess.Popen([sys.executable, "-m", "edgeprune_agent", "serve", "--port", str(port),
                             "--token-file", str(token_file), "--sensor", "estimate", "--job-setup-s", "2",
                             "--body-timeout-s", "2", "--max-upload-mb", str(LIMIT_MB),
                             "--max-queued-mb", str(4 * LIMIT_MB)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    end = time.time() + 60
    while time.time() < end:
        try:
            if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("agent did not start")


def raw_exchange(url: str, head: bytes, body: bytes, read_s: float = 30.0) -> tuple[int, bytes]:
    """Send raw bytes (a stalled or over-declared upload) and read the answer's status and body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=read_s) as sock:
        sock.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""


def _length(data: bytes) -> int:
    """Content-Length of a raw answer's head."""
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def send(client: httpx.Client, url: str, req: Request, stats: dict) -> tuple[int, bytes, dict]:
    """One request, retrying 503 + Retry-After as the host does; (status, body, headers)."""
    if req.raw_head is not None:
        status, body = raw_exchange(url, req.raw_head(url, TOKEN), req.body or b"")
        return status, body, {}
    headers = {"Authorization": f"Bearer {TOKEN}"} if req.auth == "good" else (
        {"Authorization": "Bearer wrong"} if req.auth == "wrong" else {})
    headers.update(req.headers)
    for _ in range(30):
        content = req.body() if callable(req.body) else req.body
        resp = client.request(req.method, req.path, params=req.params, content=content, headers=headers)
        if resp.status_code == 503 and "retry-after" in resp.headers:
            stats["retried_503"] += 1
            time.sleep(min(float(resp.headers["retry-after"]), 2.0))
            continue
        return resp.status_code, resp.content, dict(resp.headers)
    return resp.status_code, resp.content, dict(resp.headers)


class JobWatcher:
    """Polls every job a client created until it ends (finished jobs expire on the agent, so not at the end)."""

    def __init__(self, url: str, contract: Contract):
        self.url, self.contract = url, contract
        self.pending: queue.Queue = queue.Queue()
        self.views: dict = {}
        self.problems: list = []
        self.clients_done = threading.Event()
        self.thread = threading.Thread(target=self._loop)

    def _loop(self) -> None:
        waiting: list = []
        with httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
            while True:
                while not self.pending.empty():
                    waiting.append(self.pending.get())
                if not waiting and self.clients_done.is_set() and self.pending.empty():
                    return
                still = []
                for job_id in waiting:
                    resp = client.get(f"/v1/jobs/{job_id}")
                    if problem := self.contract.check("GET", "/v1/jobs/{job_id}", resp.status_code, resp.content):
                        self.problems.append(f"job view: {problem}")
                    view = resp.json()
                    if resp.status_code == 200 and view["status"] in ("queued", "running"):
                        still.append(job_id)
                    else:
                        self.views[job_id] = view
                waiting = still
                time.sleep(0.1)


def run_clients(url: str, requests: list[Request], clients: int, contract: Contract, stop_at: float) -> dict:
    """Drain the requests with `clients` threads; record every answer and follow every job it created."""
    todo: queue.Queue = queue.Queue()
    for req in requests:
        todo.put(req)
    stats = {"answers": collections.Counter(), "by_kind": collections.defaultdict(collections.Counter),
             "violations": [], "unexpected": [], "jobs": [], "retried_503": 0, "sent": 0, "errors": []}
    lock = threading.Lock()
    watcher = JobWatcher(url, contract)
    watcher.thread.start()

    def client_loop() -> None:
        with httpx.Client(base_url=url, timeout=httpx.Timeout(120.0, connect=10.0)) as client:
            while time.monotonic() < stop_at:
                try:
                    req = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    status, body, headers = send(client, url, req, stats)
                    job_id = headers.get("x-job-id") or (json.loads(body).get("job_id") if status == 202 else None)
                    if job_id and req.cancel:
                        gone = client.delete(f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {TOKEN}"})
                        if problem := contract.check("DELETE", "/v1/jobs/{job_id}", gone.status_code, gone.content):
                            stats["violations"].append(f"cancel: {problem}")
                except (httpx.HTTPError, OSError) as exc:
                    with lock:
                        stats["errors"].append(f"{req.kind}: {type(exc).__name__}: {exc}")
                    continue
                problem = contract.check(req.method, req.template, status, body)
                with lock:
                    stats["sent"] += 1
                    stats["answers"][status] += 1
                    stats["by_kind"][req.kind][status] += 1
                    if problem:
                        stats["violations"].append(f"{req.kind} {status}: {problem}")
                    if status not in req.expect:
                        stats["unexpected"].append(f"{req.kind} {req.params} -> {status} {body[:200]!r}")
                    if job_id:
                        stats["jobs"].append({"job_id": job_id, "kind": req.kind, "sha": req.sha,
                                              "result": json.loads(body) if status == 200 else None})
                        watcher.pending.put(job_id)

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    watcher.clients_done.set()
    watcher.thread.join()
    stats["not_sent"] = todo.qsize()
    stats["views"] = watcher.views
    stats["violations"] += watcher.problems
    return stats


def judge_jobs(jobs: list[dict], views: dict) -> dict:
    """Every job ended by its deadline + 1 s; each valid job's result came back exactly once."""
    late = [v for v in views.values() if v.get("ran_s") is not None and v["ran_s"] > v["deadline_s"] + 1.0]
    lost = [j["job_id"] for j in jobs if j["job_id"] not in views or views[j["job_id"]].get("status") is None]
    results, submitted = collections.Counter(), collections.Counter()
    for job in jobs:
        if job["kind"] != "valid":
            continue
        submitted[job["sha"]] += 1
        result = job["result"] or views.get(job["job_id"], {}).get("result")
        if result is not None:
            results[result["model_sha256"]] += 1
    over = [v["ran_s"] - v["deadline_s"] for v in views.values() if v.get("ran_s") is not None]
    return {"jobs": len(jobs), "job_status": dict(collections.Counter(v.get("status") for v in views.values())),
            "late": len(late), "late_examples": late[:3], "unfollowed": len(lost),
            "max_ran_over_deadline_s": max(over, default=None),
            "max_ran_s": max((v["ran_s"] for v in views.values() if v.get("ran_s") is not None), default=None),
            "valid_submitted": sum(submitted.values()), "valid_results": sum(results.values()),
            "valid_missing": sum(1 for sha in submitted if results[sha] == 0),
            "valid_duplicated": sum(1 for sha in results if results[sha] > 1 or sha not in submitted),
            "deadline_exceeded": sum(1 for v in views.values()
                                     if (v.get("error") or {}).get("error") == "deadline exceeded"),
            "cancelled": sum(1 for v in views.values() if v.get("status") == "cancelled")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--time-limit-s", type=float, default=900.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "agent_robustness.json")
    args = parser.parse_args()
    started = time.monotonic()
    stop_at = started + args.time_limit_s
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_agent(Path(tmp))
        try:
            agent = psutil.Process(proc.pid)
            contract = Contract(httpx.get(url + "/openapi.json").json())
            rss_start = agent.memory_info().rss
            warm = generate(8, args.seed + 1, valid_only=True)
            run_clients(url, warm, 1, contract, stop_at)  # first jobs start the forkserver
            # /v1/info imports the runtimes once to report their versions (the host asks for it before any run)
            httpx.get(url + "/v1/info", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
            rss_before = agent.memory_info().rss
            requests = generate(args.requests, args.seed)
            series, sampling = [], threading.Event()
            sampler = threading.Thread(target=lambda: [series.append(agent.memory_info().rss / 2**20)
                                                       for _ in iter(lambda: sampling.wait(2.0), True)])
            sampler.start()
            stats = run_clients(url, requests, args.clients, contract, stop_at)
            sampling.set()
            sampler.join()
            jobs = judge_jobs(stats["jobs"], stats["views"])
            rss_after = agent.memory_info().rss
            leftover = [" ".join(c.cmdline())[-70:] for c in agent.children(recursive=True)]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    five_xx = {code: n for code, n in stats["answers"].items() if code >= 500}
    report = {
        "requests_generated": len(requests), "requests_answered": stats["sent"], "not_sent": stats["not_sent"],
        "client_errors": stats["errors"][:10], "clients": args.clients, "seconds": time.monotonic() - started,
        "answers_by_status": dict(sorted(stats["answers"].items())),
        "answers_by_kind": {k: dict(sorted(v.items())) for k, v in sorted(stats["by_kind"].items())},
        "answers_5xx": sum(five_xx.values()), "answers_5xx_by_status": five_xx,
        "retried_503_with_retry_after": stats["retried_503"],
        "schema_violations": len(stats["violations"]), "schema_violation_examples": stats["violations"][:10],
        "unexpected_status": len(stats["unexpected"]), "unexpected_examples": stats["unexpected"][:10],
        **jobs,
        "rss_at_start_mib": rss_start / 2**20, "rss_before_mib": rss_before / 2**20, "rss_after_mib": rss_after / 2**20,
        "rss_ratio": rss_after / rss_before, "rss_max_mib": max(series, default=None),
        "rss_every_2s_mib": [round(x, 1) for x in series], "agent_children_after": leftover,
    }
    report["targets_met"] = {
        "no_5xx": report["answers_5xx"] == 0, "no_schema_violation": report["schema_violations"] == 0,
        "jobs_end_by_deadline_plus_1s": report["late"] == 0 and report["unfollowed"] == 0,
        "rss_below_2x": report["rss_ratio"] < 2.0,
        "valid_results_exactly_once": report["valid_missing"] == 0 and report["valid_duplicated"] == 0,
        "at_least_2000_requests": report["requests_answered"] >= 2000,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    for key in ("requests_answered", "seconds", "answers_by_status", "answers_5xx", "retried_503_with_retry_after",
                "schema_violations", "unexpected_status", "jobs", "job_status", "late", "max_ran_over_deadline_s",
                "deadline_exceeded", "cancelled", "valid_submitted", "valid_results", "valid_missing",
                "valid_duplicated",
                "rss_at_start_mib", "rss_before_mib", "rss_after_mib", "rss_ratio", "rss_max_mib", "agent_children_after", "targets_met"):
        print(f"{key:32s} {report[key]}")


if __name__ == "__main__":
    main()
