"""Lanes: sets of MTCNN's three networks, each set run on a thread of its own.

Two single-threaded interpreters working side by side on different pieces of
a frame keep two cores busier than one two-threaded interpreter: that one
splits every layer between its threads and waits for both at the layer's
end, and the pyramid's resizing, the crops and the Python work between calls
run on one core while it waits. LiteRT lets go of the GIL while a model runs
(as do OpenCV and the numba kernels), so plain Python threads are enough.

The gain needs the cores to be free: when other processes keep them busy, a
lane that waits for the other (or for the GIL) is not running. On 2 cores,
lanes detected 1.17x as fast as one two-threaded set on a quiet machine,
1.06x with two busy processes beside them (benchmarks/results/
detect_speed_loaded.txt, and detect_speed.txt as of revision 344189e).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Sequence
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
    One lane runs everything in the calling thread.
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

    def map(self, run: Callable[[Nets, Job], Result], jobs: Iterable[Job]) -> list[Result]:
        """``[run(nets, job) for job in jobs]``, the jobs run side by side on the lanes.

        ``jobs`` is read in the calling thread, which hands each job out as
        soon as it has it (so a generator may still be making the next ones
        while the other lanes work: the pyramid does), then takes its share.
        """
        results: dict[int, Result] = {}
        left: queue.SimpleQueue[tuple[int, Job] | None] = queue.SimpleQueue()

        def work(nets: Nets) -> None:
            while (item := left.get()) is not None:
                index, job = item
                results[index] = run(nets, job)
            left.put(None)  # the end mark stays for the next lane

        helpers = [self._pool.submit(lambda: work(self._local.nets)) for _ in self._nets[1:]] if self._pool else []
        count = 0
        try:
            for count, job in enumerate(jobs, 1):
                left.put((count - 1, job))
        finally:
            left.put(None)
            try:
                work(self._nets[0])
            finally:
                for helper in helpers:
                    helper.result()  # re-raises a helper's error; waits for it either way
        return [results[index] for index in range(count)]

    def close(self) -> None:
        """Stop the threads and release every set's interpreters."""
        if self._pool is not None:
            self._pool.shutdown()
        for nets in self._nets:
            for model in nets:
                model.close()

    def _bind(self) -> None:
        self._local.nets = self._unbound.pop()
