"""``retain_freed_memory``: a thread running forward-pass-sized allocations stops faulting
pages back in once the process called it (counted with the thread's own ``ru_minflt``).

Each case runs in a fresh interpreter: the thresholds are process-wide and glibc also moves them
on its own once a large mapped block is freed, so only a new process starts from the defaults.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from node.serving.allocator import retain_freed_memory

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)

# Activations of an encoder layer for a batch of 16 texts (3 MiB each), made and freed 25 times
# on a new thread (a thread arena, like a serving lane); prints the page faults of the last 20.
PROBE = """
import resource, sys, threading
import torch
from node.serving.allocator import retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory()
def run(out):
    torch.set_num_threads(1)
    x, w = torch.randn(16, 32, 384), torch.randn(384, 1536)
    for i in range(25):
        if i == 5:
            start = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        h = torch.nn.functional.gelu(x @ w)
        y = h @ w.T
        del h, y
    out.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - start)
out = []
t = threading.Thread(target=run, args=(out,))
t.start()
t.join()
print(out[0])
"""


def _faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=120, check=True
    )
    return int(done.stdout.split()[-1])


@pytest.mark.integration  # each probe is a fresh Python process
def test_freed_activations_stay_mapped_once_retained() -> None:
    default = _faults("default")
    # glibc's defaults hand each batch's freed top back to the kernel: hundreds of faults on the
    # machines this was measured on. Some machines' glibc keeps it mapped by itself (2 faults on
    # 2026-12-07, glibc 2.36, same torch): there the probe cannot tell the setting's effect.
    if default <= 200:
        pytest.skip(f"glibc here keeps the freed top mapped by itself ({default} faults)")
    retained = _faults("retain")
    assert retained < 20, f"{retained} page faults with the thresholds raised"


def test_it_reports_that_the_thresholds_were_set() -> None:
    assert retain_freed_memory() is True
