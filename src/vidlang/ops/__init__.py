"""The ground floor: small numeric helpers every other package imports *down* from.

* :mod:`vidlang.ops.windows`: temporal IoU of ``[start, end]`` windows (NumPy and torch);
* :mod:`vidlang.ops.nms`: greedy temporal NMS (hard, Gaussian soft, batched over queries);
* :mod:`vidlang.ops.padding`: ragged rows -> one zero-padded batch and its validity mask;
* :mod:`vidlang.ops.distributed`: collectives that are identities on a single process.

Nothing here imports another ``vidlang`` package except :mod:`vidlang.errors`.
"""
