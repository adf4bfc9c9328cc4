"""Dataset ingestion, fingerprints and matchers: dataset -> fingerprint batch -> known dataset."""

import os

# Idle OpenMP threads sleep instead of spinning. On shared 2-vCPU machines spinning made torch's CPU
# kernels up to 80x slower at random (measured: MobileNetV2 eval 11.7 s vs 0.15 s); libgomp reads this
# when torch is first imported, so it is set here (a user's own setting wins).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
