"""``compiled``: the learner's hot loops as machine code (Numba), for the sum-tree's walks
(``trainer.per``) and the update's element-wise work on the CPU (``trainer.dqn_kernels``)."""

from __future__ import annotations

import numba


def compiled(function=None, *, reassociate: bool = False):
    """``numba.njit`` (releasing the GIL): machine code cached beside the module (or in
    ``NUMBA_CACHE_DIR``) where one of them is writable, else compiled afresh in each process (about a
    second per function, once). ``reassociate``: sums may be reordered (LLVM's ``reassoc`` flag alone,
    so NaN and infinity still propagate), which lets a long reduction run on vector registers."""
    if function is None:
        return lambda f: compiled(f, reassociate=reassociate)
    options = {"nogil": True, **({"fastmath": {"reassoc"}} if reassociate else {})}
    try:
        return numba.njit(cache=True, **options)(function)
    except RuntimeError:  # "no locator available": a read-only install and no writable cache folder
        return numba.njit(**options)(function)
