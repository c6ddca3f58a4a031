"""Load test of ``cleancut serve``: N concurrent clients against a server on 127.0.0.1.

Starts its own server subprocess, measures one unloaded request at a time first, then runs
each scenario for a bounded time (and a bounded number of requests) and stops by itself.
A scenario's load is given as a multiple of the server's capacity (``workers + queue_size``
requests admitted at once): at 1x every client fits in the queue, at 4x three in four
arrivals find it full. Clients do not honour ``Retry-After`` (the worst case for the server):
after a 503 they pause 50 ms and send again.

Reported per scenario: throughput of cut-outs, p50/p99 latency of accepted (200) requests
and of refusals, the share of 503s (and whether each carried ``Retry-After``), any other
status or error, and the server's RSS sampled over time (psutil). Goals (issue 4): at 4x
every answer is 200 or 503-with-Retry-After, the RSS stays flat, and the p99 of accepted
requests stays within 2x of (unloaded latency x capacity).

    python benchmarks/load.py                       # unloaded, 1x, 4x; 45 s each
    python benchmarks/load.py --loads 1,4 --duration 60 --workers 1 --queue-size 4
    python benchmarks/load.py --workers 2 --threads 1 --loads 1   # two inferences at once

Prints JSON (``--json-out`` writes it to a file too) and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
DEFAULT_IMAGE = REPO / "examples" / "astronaut.jpg"
BACKOFF_AFTER_503 = 0.05


@dataclass
class Sample:
    status: int  # 0: transport error
    latency: float
    retry_after: bool = False
    error: str = ""


@dataclass
class Scenario:
    name: str
    clients: int
    duration: float
    samples: list[Sample] = field(default_factory=list)
    rss_mb: list[tuple[float, float]] = field(default_factory=list)
    elapsed: float = 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(args: argparse.Namespace, port: int) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-c",
        "from cleancut.server.command import serve; serve(prog_name='cleancut serve')",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(args.workers),
        "--queue-size",
        str(args.queue_size),
        "--timeout",
        str(args.timeout),
        "--no-browser",
        "--log-level",
        "warning",
        "--model",
        args.model,
        "--backend",
        args.backend,
    ]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    env = dict(os.environ)
    if args.cache_dir:
        env["CLEANCUT_CACHE_DIR"] = str(args.cache_dir)
    return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise SystemExit("the server did not become ready in time")


def post(client: httpx.Client, url: str, image: bytes) -> Sample:
    t0 = time.perf_counter()
    try:
        r = client.post(url + "/api/remove", content=image, headers={"Content-Type": "image/jpeg"})
        return Sample(r.status_code, time.perf_counter() - t0, "retry-after" in r.headers)
    except httpx.HTTPError as exc:
        return Sample(0, time.perf_counter() - t0, error=type(exc).__name__)


def run_scenario(
    scenario: Scenario, url: str, image: bytes, pid: int, max_requests: int, timeout: float
) -> None:
    stop = threading.Event()
    lock = threading.Lock()
    started = time.monotonic()
    proc = psutil.Process(pid)

    def client_loop() -> None:
        with httpx.Client(timeout=timeout + 30) as client:
            while not stop.is_set():
                sample = post(client, url, image)
                with lock:
                    scenario.samples.append(sample)
                    if len(scenario.samples) >= max_requests:
                        stop.set()
                if sample.status == 503:
                    time.sleep(BACKOFF_AFTER_503)

    def sample_rss() -> None:
        while not stop.is_set():
            scenario.rss_mb.append((time.monotonic() - started, proc.memory_info().rss / 2**20))
            stop.wait(0.5)

    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(scenario.clients)]
    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    for t in threads:
        t.start()
    stop.wait(scenario.duration)
    stop.set()
    for t in threads:
        t.join(timeout + 60)  # requests in flight finish (bounded by the server's timeout)
    sampler.join()
    scenario.elapsed = time.monotonic() - started
    scenario.rss_mb.append((scenario.elapsed, proc.memory_info().rss / 2**20))


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def summarize(s: Scenario) -> dict[str, Any]:
    ok = [x.latency for x in s.samples if x.status == 200]
    refused = [x for x in s.samples if x.status == 503]
    other = [x for x in s.samples if x.status not in (200, 503)]
    rss = [m for _, m in s.rss_mb]
    # Memory trend: the second half of the run against the first (flat: close to 0).
    half = len(rss) // 2
    drift = (statistics.mean(rss[half:]) - statistics.mean(rss[:half])) if half else 0.0
    return {
        "scenario": s.name,
        "clients": s.clients,
        "seconds": round(s.elapsed, 1),
        "requests": len(s.samples),
        "ok": len(ok),
        "throughput_per_s": round(len(ok) / s.elapsed, 3) if s.elapsed else 0.0,
        "p50_ok_s": _r(percentile(ok, 50)),
        "p99_ok_s": _r(percentile(ok, 99)),
        "max_ok_s": _r(max(ok) if ok else None),
        "share_503": round(len(refused) / len(s.samples), 3) if s.samples else 0.0,
        "503_with_retry_after": all(x.retry_after for x in refused),
        "p99_503_s": _r(percentile([x.latency for x in refused], 99)),
        "other": sorted({f"{x.status or x.error}" for x in other}),
        "other_count": len(other),
        "rss_mb": {
            "start": _r(rss[0] if rss else None),
            "max": _r(max(rss) if rss else None),
            "end": _r(rss[-1] if rss else None),
            "drift_second_half": _r(drift),
        },
        "rss_series_mb": [[round(t, 1), round(m, 1)] for t, m in s.rss_mb[:: max(1, len(s.rss_mb) // 40)]],
    }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def print_table(results: list[dict[str, Any]], unloaded: float, capacity: int) -> None:
    bound = 2 * unloaded * capacity
    print()
    print(
        f"unloaded latency {unloaded:.2f} s; capacity {capacity}; "
        f"p99 goal <= 2 x {unloaded:.2f} x {capacity} = {bound:.1f} s"
    )
    head = (
        f"{'scenario':<10}{'clients':>8}{'reqs':>6}{'ok/s':>7}{'p50 ok':>8}{'p99 ok':>8}"
        f"{'503 %':>7}{'RA':>4}{'p99 503':>9}{'other':>6}{'RSS MB start/max/end':>23}{'goal':>6}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        rss = r["rss_mb"]
        p99 = r["p99_ok_s"]
        goal = (
            "ok"
            if r["other_count"] == 0 and r["503_with_retry_after"] and (p99 is None or p99 <= bound)
            else "MISS"
        )
        print(
            f"{r['scenario']:<10}{r['clients']:>8}{r['requests']:>6}{r['throughput_per_s']:>7.2f}"
            f"{_fmt(r['p50_ok_s']):>8}{_fmt(p99):>8}{100 * r['share_503']:>7.1f}"
            f"{'y' if r['503_with_retry_after'] else 'n':>4}{_fmt(r['p99_503_s']):>9}{r['other_count']:>6}"
            f"{rss['start']:>9.0f}/{rss['max']:.0f}/{rss['end']:.0f}{'':>4}{goal:>6}"
        )


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    p.add_argument("--loads", default="1,4", help="multiples of the capacity, comma-separated")
    p.add_argument("--duration", type=float, default=45.0, help="seconds per scenario")
    p.add_argument("--max-requests", type=int, default=50_000, help="per scenario")
    p.add_argument("--unloaded", type=int, default=5, help="sequential requests for the baseline")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--queue-size", type=int, default=4)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--model", default="isnet_fp16")
    p.add_argument("--backend", default="auto")
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--json-out", type=Path, default=None)
    args = p.parse_args()

    image = args.image.read_bytes()
    capacity = args.workers + args.queue_size
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(args, port)
    try:
        wait_ready(url, proc, timeout=600)
        server = httpx.get(url + "/readyz", timeout=10).json()
        with httpx.Client(timeout=args.timeout + 30) as client:
            for _ in range(2):  # warm-up: first runs allocate arenas and caches
                post(client, url, image)
            base = Scenario("unloaded", 1, 0)
            t0 = time.monotonic()
            for _ in range(args.unloaded):
                base.samples.append(post(client, url, image))
            base.elapsed = time.monotonic() - t0
            rss_now = psutil.Process(proc.pid).memory_info().rss / 2**20
            base.rss_mb = [(0.0, rss_now), (base.elapsed, rss_now)]
        results = [summarize(base)]
        unloaded = results[0]["p50_ok_s"] or 0.0
        for factor in [float(f) for f in args.loads.split(",") if f.strip()]:
            clients = max(1, round(factor * capacity))
            s = Scenario(f"{factor:g}x", clients, args.duration)
            run_scenario(s, url, image, proc.pid, args.max_requests, args.timeout)
            results.append(summarize(s))
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    report = {
        "image": str(args.image),
        "image_bytes": len(image),
        "workers": args.workers,
        "threads": args.threads,
        "queue_size": args.queue_size,
        "capacity": capacity,
        "cpu_count": os.cpu_count(),
        "server": server.get("models"),
        "unloaded_latency_s": unloaded,
        "p99_goal_s": round(2 * unloaded * capacity, 3),
        "results": results,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text)
    print_table(results, unloaded, capacity)


if __name__ == "__main__":
    main()
