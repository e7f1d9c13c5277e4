"""Samples a process's memory from /proc/PID/status until it is stopped.

Every --interval seconds it appends a line "SECONDS VmRSS_kB VmHWM_kB" to
OUT (SECONDS since the sampler started). It stops on SIGTERM, or when the
process is gone.

Usage: rss.py PID OUT [--interval 0.05]
"""

import argparse
import signal
import sys
import time


def sample(pid):
    rss = hwm = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("pid", type=int)
    parser.add_argument("out")
    parser.add_argument("--interval", type=float, default=0.05)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    started = time.monotonic()
    with open(args.out, "a", buffering=1) as out:
        while True:
            try:
                rss, hwm = sample(args.pid)
            except OSError:
                return
            if rss is None:  # a zombie: gone
                return
            out.write(f"{time.monotonic() - started:.3f} {rss} {hwm}\n")
            time.sleep(args.interval)


if __name__ == "__main__":
    main()
