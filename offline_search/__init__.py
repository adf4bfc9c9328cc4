"""Offline BOHB search and the portfolio rebuild job; hpbandster is imported only in ``hpb``."""
