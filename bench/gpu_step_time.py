"""Seconds per distilled training step of a model on this machine's GPU, one process or several side by side.

Usage: python bench/gpu_step_time.py [--model resnet56] [--batch 512] [--procs 1,5]; prints JSON.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time

import torch

from edgeprune.models import build_model
from edgeprune.train import kd_loss


def steps_per_second(model_name: str, batch: int, steps: int, start, out) -> None:
    """Time ``steps`` SGD steps with a frozen teacher after a barrier; put (seconds per step) in ``out``."""
    net, shape = build_model(model_name)
    teacher = build_model(model_name)[0].cuda().eval()
    net.cuda().train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, *shape[1:], device="cuda")
    y = torch.randint(0, 10, (batch,), device="cuda")

    def step():
        with torch.no_grad():
            soft = teacher(x)
        logits = net(x)
        loss = kd_loss(logits, soft, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    start.wait()
    tick = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    out.put((time.perf_counter() - tick) / steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet56")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--procs", default="1,5")
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    report = {"model": args.model, "batch": args.batch, "gpu": torch.cuda.get_device_name(0), "runs": []}
    for n in map(int, args.procs.split(",")):
        start, out = ctx.Barrier(n), ctx.Queue()
        procs = [ctx.Process(target=steps_per_second, args=(args.model, args.batch, args.steps, start, out))
                 for _ in range(n)]
        for p in procs:
            p.start()
        times = [out.get() for _ in procs]
        for p in procs:
            p.join()
        report["runs"].append({"processes": n, "s_per_step": times,
                               "epoch_s_50k_each": [t * -(-50000 // args.batch) for t in times]})
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
