"""REST service latency and throughput against the bare fingerprint forward, measured in the same run.

Targets (service issue): ``POST /v1/recommendations`` with a 64-image upload has p50 latency <= 1.25x the
bare forward of the portfolio's fingerprint backbone on the same 64 images; 8 and 32 concurrent clients
on loopback get 0 errors; throughput (images/s) and the server's peak RSS are reported.

    .venv/bin/python bench/bench_service.py [--requests 40] [--seconds 20]
"""

from __future__ import annotations

import argparse
import io
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see metafeatures/__init__.py
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metafeatures.images import resize_rgb  # noqa: E402
from portfolio.artifact import load_portfolio  # noqa: E402
from portfolio.defaults import default_portfolio_dir  # noqa: E402
from portfolio.fingerprinting import fingerprinter_for  # noqa: E402
from tests.fixtures.live import LiveServer, service_env  # noqa: E402

N_IMAGES = 64


def make_pngs(n: int, size: int = 64, seed: int = 0) -> list[bytes]:
    """``n`` textured RGB PNGs (smooth noise: realistic decode cost, not incompressible)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((size, size), Image.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def bare_forward_s(pngs: list[bytes], reps: int) -> tuple[float, float]:
    """Median seconds of the fingerprint forward alone (pre-decoded, pre-resized pixels), and with decoding."""
    loaded = load_portfolio(default_portfolio_dir())
    fpr = fingerprinter_for(loaded, threads=2)
    r = fpr.spec.resolution
    decoded = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in pngs]
    pixels = np.stack([resize_rgb(x, (r, r)) for x in decoded])
    fpr.features_of_pixels(pixels)  # warm-up
    forward, full = [], []
    for _ in range(reps):
        t = time.perf_counter()
        fpr.features_of_pixels(pixels)
        forward.append(time.perf_counter() - t)
        t = time.perf_counter()
        imgs = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in pngs]
        fpr.features_of_pixels(np.stack([resize_rgb(x, (r, r)) for x in imgs]))
        full.append(time.perf_counter() - t)
    return statistics.median(forward), statistics.median(full)


def post(client: httpx.Client, pngs: list[bytes]) -> int:
    """One multipart recommendation request; returns the status code."""
    files = [("images", (f"{i}.png", b, "image/png")) for i, b in enumerate(pngs)]
    return client.post("/v1/recommendations", files=files).status_code


def latency(server: LiveServer, pngs: list[bytes], n: int) -> list[float]:
    """Sequential request latencies in seconds (first two discarded as warm-up)."""
    times = []
    with server.client() as c:
        for i in range(n + 2):
            t = time.perf_counter()
            assert post(c, pngs) == 200
            if i >= 2:
                times.append(time.perf_counter() - t)
    return times


def load(server: LiveServer, pngs: list[bytes], clients: int, seconds: float) -> tuple[float, int, int]:
    """``clients`` threads posting for ``seconds``: (images/s, requests, errors)."""
    stop = time.monotonic() + seconds
    counts = {"ok": 0, "err": 0}
    lock = threading.Lock()

    def run() -> None:
        with server.client() as c:
            while time.monotonic() < stop:
                try:
                    ok = post(c, pngs) == 200
                except Exception:
                    ok = False
                with lock:
                    counts["ok" if ok else "err"] += 1

    threads = [threading.Thread(target=run) for _ in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    return counts["ok"] * len(pngs) / wall, counts["ok"] + counts["err"], counts["err"]


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    """Baseline forward, then the live server: latency percentiles, concurrency table, RSS."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=20.0)
    a = ap.parse_args()
    torch.set_num_threads(2)
    pngs = make_pngs(N_IMAGES)
    forward, decode_forward = bare_forward_s(pngs, reps=10)
    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp), service_env(Path(tmp), fingerprint_threads=2)).start()
        try:
            lat = sorted(latency(server, pngs, a.requests))
            p50, p99 = statistics.median(lat), lat[min(len(lat) - 1, int(0.99 * len(lat)))]
            rows = [(n, *load(server, pngs, n, a.seconds)) for n in (1, 8, 32)]
            rss = peak_rss_mb(server.proc.pid)  # type: ignore[union-attr]
        finally:
            server.stop()
    single = N_IMAGES / forward
    print(f"portfolio {default_portfolio_dir().name}, {N_IMAGES} PNG images of 64x64, torch threads 2")
    print(f"bare forward (pre-resized pixels): {forward * 1000:.1f} ms; decode+resize+forward: "
          f"{decode_forward * 1000:.1f} ms")
    print("| measure | value | ratio vs bare forward |")
    print("|---|---:|---:|")
    print(f"| POST /v1/recommendations p50 | {p50 * 1000:.1f} ms | {p50 / forward:.2f}x |")
    print(f"| POST /v1/recommendations p99 | {p99 * 1000:.1f} ms | {p99 / forward:.2f}x |")
    print(f"| in-process decode+resize+forward | {decode_forward * 1000:.1f} ms | {decode_forward / forward:.2f}x |")
    print()
    print("| clients | requests | errors | images/s | vs single-stream forward |")
    print("|---:|---:|---:|---:|---:|")
    for n, ips, reqs, errs in rows:
        print(f"| {n} | {reqs} | {errs} | {ips:.0f} | {ips / single:.2f}x |")
    print(f"\nserver peak RSS: {rss:.0f} MiB; single-stream forward: {single:.0f} images/s")


if __name__ == "__main__":
    main()
