"""Running many (setting, seed) jobs, ``parallel`` at a time, each in its own thread driving one subprocess."""

from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Callable, Sequence, TypeVar

Job = TypeVar("Job")


def run_pool(jobs: Sequence[Job], run_one: Callable[[Job], None], parallel: int) -> None:
    """Run every job, ``parallel`` at a time; ``run_one`` stores its own result as it finishes.

    On a failure no new job starts; the ones under way finish (and are stored),
    then the first error is raised.
    """
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = [pool.submit(run_one, job) for job in jobs]
        finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in finished if f.exception() is not None]
        if failed:
            for future in futures:
                future.cancel()
            raise failed[0].exception()
