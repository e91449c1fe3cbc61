"""K-means over rows sharded across processes (``torch.distributed``; docs/scale.md).

- ``collectives``: the collective operations Lloyd needs and the farthest rows over every process;
- ``sharded``: :func:`~.sharded.sharded_kmeans` (float32, or the exact 16-bit path per shard), int64
  fixed-point cluster sums so that any number of processes gives the same labels;
- ``exact``: the single-device exact 16-bit Lloyd on one shard;
- ``run``: the ``torchrun`` launcher (``python -m qrprobe.engine.kmeans.distributed.run``).
"""
