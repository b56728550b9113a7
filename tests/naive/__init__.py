"""Slow, obvious reference implementations that the fast code is tested against: NumPy
loops that follow the definitions (``layers``: every layer method's choice, forward and
backward pass and MAC counts; ``tables``: the first implementation of the LSH tables)."""
