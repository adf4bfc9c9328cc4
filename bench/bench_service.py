"""REST service latency and throughput against the bare fingerprint forward, measured in the same run.

Targets (service issue): ``POST /v1/recommendations`` with a 64-image upload has p50 latency <= 1.25x the
bare forward of the portfolio's fingerprint backbone on the same 64 images; 8 and 32 concurrent clients
on loopback get 0 errors; throughput (images/s) and the server's peak RSS are reported.

    .venv/bin/python bench/bench_service.py [--requests 40] [--seconds 20] [--clients 1,8,32]

Issue 14's load check: ``--clients 32 --seconds 60`` (32 clients recommending for 60 s: zero errors, the
server's RSS sampled every second stays bounded).
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


class BareForward:
    """The portfolio's fingerprint network in this process, on the same images already decoded and resized."""

    def __init__(self, pngs: list[bytes]) -> None:
        loaded = load_portfolio(default_portfolio_dir())
        self.fpr = fingerprinter_for(loaded, threads=2)
        self.pngs = pngs
        r = self.fpr.spec.resolution
        self.size = (r, r)
        self.pixels = np.stack([resize_rgb(np.asarray(Image.open(io.BytesIO(b)).convert("RGB")), self.size)
                                for b in pngs])
        self.forward()  # warm-up

    def forward(self) -> float:
        """Seconds of one forward pass over the pre-resized pixels."""
        t = time.perf_counter()
        self.fpr.features_of_pixels(self.pixels)
        return time.perf_counter() - t

    def decode_and_forward(self) -> float:
        """Seconds to decode, resize and forward, in process (what the server must do at least)."""
        t = time.perf_counter()
        imgs = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in self.pngs]
        self.fpr.features_of_pixels(np.stack([resize_rgb(x, self.size) for x in imgs]))
        return time.perf_counter() - t


def multipart(pngs: list[bytes]) -> tuple[bytes, str]:
    """The multipart body and its content type, encoded once, so the load generator spends little CPU."""
    files = [("images", (f"{i}.png", b, "image/png")) for i, b in enumerate(pngs)]
    request = httpx.Request("POST", "http://x/v1/recommendations", files=files)
    return request.read(), request.headers["content-type"]


def post(client: httpx.Client, body: tuple[bytes, str]) -> int:
    """One multipart recommendation request (pre-encoded body); returns the status code."""
    return client.post("/v1/recommendations", content=body[0], headers={"content-type": body[1]}).status_code


def latency(server: LiveServer, body: tuple[bytes, str], bare: BareForward, n: int) -> dict[str, list[float]]:
    """``n`` rounds, each timing the bare forward, decode+forward and one request back to back, so the
    machine's drifting speed (it is shared) affects all three alike; two warm-up rounds are discarded."""
    times: dict[str, list[float]] = {"forward": [], "decode_forward": [], "request": []}
    with server.client() as c:
        for i in range(n + 2):
            forward, decode_forward = bare.forward(), bare.decode_and_forward()
            t = time.perf_counter()
            assert post(c, body) == 200
            if i >= 2:
                times["request"].append(time.perf_counter() - t)
                times["forward"].append(forward)
                times["decode_forward"].append(decode_forward)
    return times


def rss_mb(pid: int) -> float:
    """The process's current resident set (VmRSS) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(server: LiveServer, body: tuple[bytes, str], clients: int, seconds: float,
         rss: list[float] | None = None) -> tuple[float, int, int]:
    """``clients`` threads posting for ``seconds``: (images/s, requests, errors); the server's RSS is appended to
    ``rss`` once a second."""
    stop = time.monotonic() + seconds
    counts = {"ok": 0, "err": 0}
    lock = threading.Lock()

    def sample() -> None:
        while time.monotonic() < stop:
            if rss is not None:
                rss.append(rss_mb(server.proc.pid))  # type: ignore[union-attr]
            time.sleep(1.0)

    def run() -> None:
        with server.client() as c:
            while time.monotonic() < stop:
                try:
                    ok = post(c, body) == 200
                except Exception:
                    ok = False
                with lock:
                    counts["ok" if ok else "err"] += 1

    threads = [threading.Thread(target=run) for _ in range(clients)] + [threading.Thread(target=sample)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    return counts["ok"] * N_IMAGES / wall, counts["ok"] + counts["err"], counts["err"]


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    """Latency rounds interleaved with the bare forward, then the concurrency table, then RSS."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--clients", default="1,8,32", help="comma-separated numbers of concurrent clients")
    a = ap.parse_args()
    client_counts = [int(n) for n in a.clients.split(",")]
    torch.set_num_threads(2)
    pngs = make_pngs(N_IMAGES)
    bare = BareForward(pngs)
    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp), service_env(Path(tmp), fingerprint_threads=2)).start()
        try:
            body = multipart(pngs)
            times = latency(server, body, bare, a.requests)
            rows = []
            for n in client_counts:
                before = statistics.median(bare.forward() for _ in range(5))
                samples: list[float] = []
                ips, reqs, errs = load(server, body, n, a.seconds, samples)
                after = statistics.median(bare.forward() for _ in range(5))
                rows.append((n, reqs, errs, ips, N_IMAGES / ((before + after) / 2), samples))
            rss = peak_rss_mb(server.proc.pid)  # type: ignore[union-attr]
        finally:
            server.stop()
    req = sorted(times["request"])
    forward = statistics.median(times["forward"])
    p50, p99 = statistics.median(req), req[min(len(req) - 1, int(0.99 * len(req)))]
    decode_forward = statistics.median(times["decode_forward"])
    print(f"portfolio {default_portfolio_dir().name}, {N_IMAGES} PNG images of 64x64, torch threads 2, "
          f"{len(req)} interleaved rounds")
    print("| measure | value | ratio vs bare forward |")
    print("|---|---:|---:|")
    print(f"| bare forward (median) | {forward * 1000:.1f} ms | 1.00x |")
    print(f"| POST /v1/recommendations p50 | {p50 * 1000:.1f} ms | {p50 / forward:.2f}x |")
    print(f"| POST /v1/recommendations p99 | {p99 * 1000:.1f} ms | {p99 / forward:.2f}x |")
    print(f"| in-process decode+resize+forward | {decode_forward * 1000:.1f} ms | {decode_forward / forward:.2f}x |")
    print()
    print("| clients | seconds | requests | errors | images/s | single-stream forward images/s (around the phase) "
          "| ratio | server RSS MiB: first 10 s max / last 10 s max |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, reqs, errs, ips, single, samples in rows:
        early, late = max(samples[:10], default=float("nan")), max(samples[-10:], default=float("nan"))
        print(f"| {n} | {a.seconds:g} | {reqs} | {errs} | {ips:.0f} | {single:.0f} | {ips / single:.2f}x "
              f"| {early:.0f} / {late:.0f} |")
    print(f"\nserver peak RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
