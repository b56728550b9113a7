"""When the LSH layer re-hashes its updated rows: :class:`RehashSchedule`."""

from __future__ import annotations

import math

__all__ = ["RehashSchedule"]


class RehashSchedule:
    """When to re-hash updated rows, counted in optimizer steps (batches).

    ``every``        every ``every`` batches.
    ``exponential``  SLIDE's schedule (Chen et al. 2020): the ``t``-th interval
                     (``t = 0, 1, ...``) is ``every * exp(growth * t)`` batches.
    ``paper``        the paper's public code: an epoch is cut into 10 chunks and the
                     tables are rebuilt after each chunk of epoch ``e`` (counted from
                     0) while ``e <= 20`` and ``e % (e // 10 + 1) == 0`` (every epoch
                     up to 9, then epochs 10, 12, 14, 16 and 18, then never). The trainer
                     tells the layer the epoch and its batch count; without that the
                     layer is in epoch 0 with chunks of ``every`` batches.
    ``never``        the tables keep the initial weights' codes.
    """

    def __init__(self, mode: str, every: int, growth: float):
        self.mode, self.every, self.growth = mode, every, growth
        self.steps = 0  # optimizer steps seen
        self.done = 0  # re-hashes made
        self.next_at = every
        self.epoch = 0
        self.epoch_batches = None
        self.epoch_step = 0

    def start_epoch(self, epoch: int, n_batches: int) -> None:
        self.epoch, self.epoch_batches, self.epoch_step = epoch, n_batches, 0

    def step(self) -> bool:
        """Count one optimizer step; True when the tables are due for a re-hash."""
        self.steps += 1
        self.epoch_step += 1
        if self.mode == "never":
            return False
        if self.mode == "every":
            return self.steps % self.every == 0
        if self.mode == "exponential":
            if self.steps < self.next_at:
                return False
            self.done += 1
            self.next_at = self.steps + max(1, int(round(self.every * math.exp(self.growth * self.done))))
            return True
        # paper
        e = self.epoch
        if not (e <= 20 and e % (e // 10 + 1) == 0):
            return False
        nb = self.epoch_batches if self.epoch_batches is not None else 10 * self.every
        bounds = {math.ceil(nb * c / 10) for c in range(1, 11)}
        return self.epoch_step in bounds
