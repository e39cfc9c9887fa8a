"""The peer row of scripts/bench-peer: APScheduler 3.11.3 running the probe for N interval jobs.

Run with the venv's Python that scripts/bench-peer sets up:
    apscheduler_peer.py <probe> <stamp directory> <tasks> <seconds> <grace seconds> [<phases file>]

As a user would write it: a BackgroundScheduler with a ThreadPoolExecutor(20), one interval job per task
(every 1 s, the job defaults: misfire_grace_time 1 s, coalesce off, max_instances 1), each job a
subprocess.run of the probe. Job i starts at T0 + i/N, or at T0 plus the i-th line of the phases file
(milliseconds: scripts/bench-peer passes the phases keiji's tasks got from their creation times). Prints T0 (CLOCK_REALTIME seconds) on the first line of
stdout, runs until T0 + seconds + grace, then prints "<missed> <skipped>": the runs APScheduler dropped
(later than misfire_grace_time; previous run of the same job still going).
"""
import logging
import math
import subprocess
import sys
import time
from datetime import datetime, timezone

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler


def main():
    probe, directory = sys.argv[1], sys.argv[2]
    tasks, seconds, grace = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    if len(sys.argv) > 6:
        with open(sys.argv[6]) as f:
            phases = [int(line) / 1000 for line in f.read().split()[:tasks]]
    else:
        phases = [index / tasks for index in range(tasks)]
    # One warning per skipped or missed run would flood the terminal: they are counted instead.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    dropped = {EVENT_JOB_MISSED: 0, EVENT_JOB_MAX_INSTANCES: 0}

    def count(event):
        dropped[event.code] += 1

    scheduler = BackgroundScheduler(timezone=timezone.utc, executors={"default": ThreadPoolExecutor(20)})
    # Far enough ahead that adding the jobs and starting the scheduler finish before the first slot.
    start = math.ceil(time.time() + 1.0 + tasks * 0.0005)
    began = time.monotonic()
    for index in range(tasks):
        first = datetime.fromtimestamp(start + phases[index], tz=timezone.utc)
        scheduler.add_job(subprocess.run, "interval", seconds=1, start_date=first,
                          args=[[probe, f"{directory}/{index}"]], id=str(index))
    scheduler.add_listener(count, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
    scheduler.start()
    ready = time.time()
    print(f"{start}", flush=True)
    print(f"apscheduler: {tasks} jobs added and scheduler started in {time.monotonic() - began:.3f} s, "
          f"{start - ready:.3f} s before the first slot", file=sys.stderr)
    time.sleep(max(0.0, start + seconds + grace - time.time()))
    scheduler.shutdown(wait=False)
    # The second line of stdout: runs APScheduler dropped, for the table's notes.
    print(f"{dropped[EVENT_JOB_MISSED]} {dropped[EVENT_JOB_MAX_INSTANCES]}", flush=True)


if __name__ == "__main__":
    main()
