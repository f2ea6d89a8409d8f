"""How many CPU threads torch uses: ``--threads N``, else ``ZOO_THREADS``, else the zoo's default.

The default keeps torch's own count (one per core) but makes idle OpenMP workers sleep
(``OMP_WAIT_POLICY=PASSIVE``) instead of spinning for their next parallel region: with the active
policy, two jobs sharing the cores spend their slices spinning against each other (measured in
``benchmarks/results/oversubscription.json``). This module imports torch only inside
:func:`apply_threads`, because the wait policy is read once, when torch loads libgomp.
"""

from __future__ import annotations

import os

from zoo_core.errors import UsageError

ENV = "ZOO_THREADS"
MAX_THREADS = 1024
WAIT_POLICY = "OMP_WAIT_POLICY"


def passive_openmp_wait() -> None:
    """Let idle OpenMP workers sleep, unless the user chose a policy; call before torch is imported."""
    os.environ.setdefault(WAIT_POLICY, "PASSIVE")


def check_threads(count: int, where: str) -> int:
    """``count`` if it lies in 1..MAX_THREADS, else one clear UsageError naming ``where`` it came from."""
    if not 1 <= count <= MAX_THREADS:
        raise UsageError(f"{where} must be a whole number of threads from 1 to {MAX_THREADS}, got {count}")
    return count


def requested_threads(option: int | None) -> int | None:
    """``--threads`` when given, else ``ZOO_THREADS`` when set, else None (the default)."""
    if option is not None:
        return check_threads(option, "--threads")
    text = os.environ.get(ENV, "").strip()
    if not text:
        return None
    try:
        count = int(text)
    except ValueError:
        raise UsageError(f"{ENV} must be a whole number of threads from 1 to {MAX_THREADS}, got {text!r}") from None
    return check_threads(count, ENV)


def apply_threads(option: int | None = None) -> int:
    """Set torch's intra-op threads (and inter-op threads, while torch still allows it); returns the count used."""
    import torch

    count = requested_threads(option)
    if count is None:
        return torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        torch.set_num_interop_threads(count)
    except RuntimeError:  # only settable before the first inter-op work; the intra-op count is what matters here
        pass
    return count
