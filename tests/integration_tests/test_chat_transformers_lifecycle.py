"""A process that used ChatTransformers exits cleanly: worker stopped, no loading noise."""

import subprocess
import sys

import pytest

from tests.support.quiet import assert_quiet

# Registered before langchain_hybrid is imported, so it runs after the package's
# own exit handler (atexit runs handlers last-in, first-out).
_PROBE = """
import atexit, threading
def report():
    alive = [t.name for t in threading.enumerate() if t.name.startswith("langchain-hybrid")]
    print("workers alive at exit:", alive)
atexit.register(report)
from langchain_hybrid import ChatTransformers
llm = ChatTransformers(max_tokens={max_tokens})
"""

_SCRIPTS = {
    # The worker is idle, waiting for the next request, when the script ends.
    "after invoke": _PROBE.format(max_tokens=4) + "print(llm.invoke('Hi').content)\n",
    # The worker is generating for a stream the script never closed.
    "stream left open": _PROBE.format(max_tokens=200)
    + "chunks = llm.stream('Write a long story.')\nprint(next(iter(chunks)).content)\n",
}


@pytest.mark.parametrize("case", sorted(_SCRIPTS))
def test_process_exits_with_the_worker_stopped(case: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPTS[case]], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "workers alive at exit: []"
    # Loading is quiet by default: no progress bar, no torchao import noise on stderr
    # (torchao is installed here: transformers imports it whenever it is).
    assert_quiet(out.stderr)
