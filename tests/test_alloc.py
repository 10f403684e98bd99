"""The allocator controls: a fixed mmap threshold hands a freed large block back at once."""

import multiprocessing as mp

import pytest

from wxmodels import alloc


def _rss_after_free(q, fixed: bool = True) -> None:
    import numpy as np
    import psutil

    ok = alloc.mmap_large(1 << 20) if fixed else False
    p = psutil.Process()
    # glibc raises its dynamic threshold on the first free of a mapped block: without a fixed
    # threshold, the next 16 MiB blocks would come from the heap and stay resident
    for _ in range(2):
        a = np.ones(16 * 2**20 // 8)
        del a
    a = np.ones(16 * 2**20 // 8)
    held = p.memory_info().rss
    del a
    q.put((ok, (held - p.memory_info().rss) / 2**20))


@pytest.mark.skipif(alloc._LIBC is None, reason="not glibc")
def test_a_freed_large_block_leaves_the_process():
    ctx = mp.get_context("spawn")  # the setting lasts for the process: not this one's
    q = ctx.Queue()
    p = ctx.Process(target=_rss_after_free, args=(q,))
    p.start()
    ok, returned = q.get(timeout=120)
    p.join(timeout=60)
    assert ok
    # the whole block left the process when freed (with glibc's dynamic threshold it stays
    # in the heap: 0 MiB returned)
    assert returned > 15, returned
