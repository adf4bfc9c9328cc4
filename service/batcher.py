"""One inference thread for the fingerprint network; concurrent requests' images are run as one batch.

Request threads decode and resize; they hand uint8 pixels to :class:`FingerprintBatcher`, whose single
thread concatenates everything pending (up to ``max_images``) into one forward pass and splits the result.
On a CPU this keeps torch's threads from being oversubscribed by parallel requests.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

import numpy as np

from metafeatures.fingerprint import Fingerprinter


class FingerprintBatcher:
    """Serialises and batches calls to one :class:`Fingerprinter` loaded once."""

    def __init__(self, fingerprinter: Fingerprinter, max_images: int = 512) -> None:
        self.fingerprinter = fingerprinter
        self.max_images = max_images
        self._pending: queue.Queue[tuple[np.ndarray, Future] | None] = queue.Queue()
        self.batches = 0
        self.images = 0
        self._thread = threading.Thread(target=self._loop, name="fingerprint-batcher", daemon=True)
        self._thread.start()

    def embed(self, pixels: np.ndarray) -> np.ndarray:
        """Features of (N, R, R, 3) uint8 pixels at the spec's resolution; blocks until computed."""
        future: Future = Future()
        self._pending.put((pixels, future))
        return future.result()

    def close(self) -> None:
        """Stop the inference thread after the pending work."""
        self._pending.put(None)
        self._thread.join(timeout=30)

    def _take(self) -> list[tuple[np.ndarray, Future]] | None:
        """Block for one request, then take whatever else is pending up to ``max_images``."""
        first = self._pending.get()
        if first is None:
            return None
        taken, count = [first], len(first[0])
        while count < self.max_images:
            try:
                nxt = self._pending.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                self._pending.put(None)
                break
            taken.append(nxt)
            count += len(nxt[0])
        return taken

    def _loop(self) -> None:
        """Run batches until closed; an exception goes to every request of that batch."""
        while (taken := self._take()) is not None:
            try:
                feats = self.fingerprinter.features_of_pixels(np.concatenate([p for p, _ in taken]))
            except Exception as exc:
                for _, fut in taken:
                    fut.set_exception(exc)
                continue
            self.batches += 1
            self.images += len(feats)
            start = 0
            for pixels, fut in taken:
                fut.set_result(feats[start: start + len(pixels)])
                start += len(pixels)
