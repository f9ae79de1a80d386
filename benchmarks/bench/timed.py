"""`python timed.py <result.json> cmd...`: run cmd, write its wall seconds, exit code and peak RSS.

A separate small process does the fork: a child's ru_maxrss starts from its parent's RSS at fork
time, so forking from the (large) benchmark process would inflate the number.
"""

import json
import os
import subprocess
import sys
import time


def main() -> None:
    result_path, cmd = sys.argv[1], sys.argv[2:]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    with open(result_path, "w") as fh:
        json.dump(
            {
                "seconds": seconds,
                "returncode": os.waitstatus_to_exitcode(status),
                "peak_mb": usage.ru_maxrss / 1024,
            },
            fh,
        )


if __name__ == "__main__":
    main()
