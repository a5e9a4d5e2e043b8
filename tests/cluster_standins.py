"""Stand-ins for the real task function in tests/test_grading_cluster.py (not a test module): the Dask
workers import them by name, so the test's workers get this folder on their PYTHONPATH."""
import os
import time

from course_utils.authoring import grading_cluster


def slow(task):
    """The real grade, 4 s late: time for the test to kill the worker mid-grade."""
    time.sleep(4)
    return grading_cluster.grade_task(task)


def bomb(task):
    """Kills its worker process every time it is given the student ``one_bug`` (its nanny starts a new one)."""
    if task["student"] == "one_bug":
        os._exit(1)
    return grading_cluster.grade_task(task)


def orphan_maker(task):
    """Starts a long process in a session of its own that names the worker's folder (as nbgrader's does),
    writes its pid to $ORPHAN_PIDS, then grades 4 s late: time to kill the worker and leave it orphaned."""
    import subprocess
    import sys
    folder = grading_cluster._worker_folder()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", str(folder / "x")],
                            start_new_session=True)
    with open(os.environ["ORPHAN_PIDS"], "a") as fh:
        fh.write(f"{proc.pid} {folder.name}\n")
    return slow(task)
