"""mmneuro.allocator: inside reuse_freed_memory a freed large tensor's memory is reused (no page
faults on the next allocation of its size); outside, glibc maps and faults it anew every time."""

import resource

import pytest
import torch

from mmneuro.allocator import _glibc, reuse_freed_memory

pytestmark = pytest.mark.skipif(_glibc() is None, reason="glibc malloc only (Linux)")
PAGES = 16 * 2**20 * 4 // 4096  # a 64 MiB float32 tensor in 4 KiB pages


def _faults_of_a_large_tensor() -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(16 * 2**20)  # written, so every page is touched, then freed
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_freed_memory_is_reused_inside_and_returned_outside():
    _faults_of_a_large_tensor()
    assert _faults_of_a_large_tensor() > PAGES // 2  # glibc's default: a fresh mmap each time
    with reuse_freed_memory() as applies:
        assert applies
        _faults_of_a_large_tensor()
        assert _faults_of_a_large_tensor() < PAGES // 20  # the freed heap block again
    assert _faults_of_a_large_tensor() > PAGES // 2  # defaults restored
