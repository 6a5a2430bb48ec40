"""The CPU benches' timer: the machine is shared, so the fastest of a few runs is the least disturbed."""
import time


def best_seconds(work, repeat: int = 3) -> float:
    """Seconds of the fastest of `repeat` runs of work()."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best
