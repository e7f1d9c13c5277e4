"""Calls in flight, once they settle: reads the server's metrics until
every call in flight is stalled on its client (the never-reading attack's
calls have all found their place), and has been for --hold seconds, and
prints the count of calls in flight then, as JSON. (The two figures are
read one after the other: while calls still come and go, they can agree
for a moment by chance.)

A full server that makes room by ending a stalled call counts the
newcomer before the ended call leaves; once every call is stalled, none is
leaving, so the count is the calls it holds. It must not be over
--max-calls.

With --expect N, only a settled count of N counts as settled: a test
that has just filled a place waits for the count to reach it, and fails
after --within seconds if it settles anywhere else.

Usage: settled_calls.py METRICS_PORT [--within SECONDS] [--hold SECONDS]
                        [--expect N]
"""

import argparse
import json
import time
import urllib.request


def read(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("assistant_calls_in_flight", "assistant_calls_stalled"):
            values[name] = int(float(value))
    return values.get("assistant_calls_in_flight", -1), values.get("assistant_calls_stalled", -1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--within", type=float, default=10.0)
    parser.add_argument("--hold", type=float, default=0.3)
    parser.add_argument("--expect", type=int, help="settled only at this many calls")
    args = parser.parse_args()
    started = time.monotonic()
    since, last = None, None
    while True:
        now = time.monotonic()
        in_flight, stalled = read(args.port)
        if in_flight != stalled or (in_flight, stalled) != last:
            since, last = now, (in_flight, stalled)
        settled = (in_flight == stalled and now - since >= args.hold
                   and args.expect in (None, in_flight))
        if settled or now - started >= args.within:
            break
        time.sleep(0.05)
    print(json.dumps({
        "settled": settled,
        "in_flight": in_flight,
        "stalled": stalled,
        "after_seconds": round(time.monotonic() - started, 2),
    }))


if __name__ == "__main__":
    main()
