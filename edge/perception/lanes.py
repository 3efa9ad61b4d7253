"""Lanes: sets of MTCNN's three networks, each set run on a thread of its own.

Two single-threaded interpreters working side by side on different pieces of
a frame keep two cores busier than one two-threaded interpreter: that one
splits every layer between its threads and waits for both at the layer's
end, and runs small layers, small pyramid levels and the Python work between
calls on one core. LiteRT lets go of the GIL while a model runs (as do
OpenCV and the numba kernels), so plain Python threads are enough.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, TypeVar

from edge.perception.litert import TfliteModel

Job = TypeVar("Job")
Result = TypeVar("Result")


class Nets(NamedTuple):
    """MTCNN's three networks."""

    pnet: TfliteModel
    rnet: TfliteModel
    onet: TfliteModel


class Lanes:
    """Runs jobs on several sets of networks side by side.

    The calling thread works with the first set; each other set belongs to
    one pool thread for good, so no two threads ever share an interpreter.
    """

    def __init__(self, nets: Sequence[Nets]) -> None:
        self._nets = list(nets)
        self._unbound = self._nets[1:]
        self._local = threading.local()
        self._pool = None
        if len(self._nets) > 1:
            self._pool = ThreadPoolExecutor(len(self._nets) - 1, "mtcnn-lane", initializer=self._bind)

    @property
    def count(self) -> int:
        """How many sets (and so threads) there are."""
        return len(self._nets)

    def map(self, run: Callable[[Nets, Job], Result], jobs: Sequence[Job]) -> list[Result]:
        """``[run(nets, job) for job in jobs]``: each lane takes the next job left until none is."""
        results: list = [None] * len(jobs)
        left: queue.SimpleQueue[int] = queue.SimpleQueue()
        for index in range(len(jobs)):
            left.put(index)

        def work(nets: Nets) -> None:
            while True:
                try:
                    index = left.get_nowait()
                except queue.Empty:
                    return
                results[index] = run(nets, jobs[index])

        helpers = []
        if self._pool is not None:
            helpers = [self._pool.submit(lambda: work(self._local.nets))
                       for _ in range(min(len(self._nets), len(jobs)) - 1)]
        try:
            work(self._nets[0])
        finally:
            for helper in helpers:
                helper.result()  # re-raises a helper's error; waits for it either way
        return results

    def close(self) -> None:
        """Stop the threads and release every set's interpreters."""
        if self._pool is not None:
            self._pool.shutdown()
        for nets in self._nets:
            for model in nets:
                model.close()

    def _bind(self) -> None:
        self._local.nets = self._unbound.pop()
