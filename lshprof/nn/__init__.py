"""The model layer: active sets (``active``), the layers (``layers``: the baselines;
``lsh``: the hash-selected layer, its families, transforms, tables and schedules),
optimizers (``optim``), the network (``mlp``), training (``training``, ``step``) and
lock-free asynchronous training (``hogwild``)."""
