"""One training step of a model: what synchronous training (:mod:`lshprof.nn.training`)
and every Hogwild worker (:mod:`lshprof.nn.hogwild`) run for each mini-batch."""

from __future__ import annotations

import numpy as np

__all__ = ["train_step"]


def train_step(model, opt, clock, Xb: np.ndarray, yb: np.ndarray, sparse_out: bool):
    """One mini-batch: forward (the true classes kept active in a sparse output layer),
    loss, backward, the optimizer step and each layer's re-hash hook. Returns the
    batch's mean loss and its number of correct predictions."""
    logits = model.forward(Xb, train=True, labels=yb if sparse_out else None)
    loss, grad, ok = model.loss(logits, yb)
    model.backward(grad)
    clock.push("update")
    opt.step()
    clock.pop()
    for layer in model.layers:
        layer.after_step()
    return loss, ok
