"""Half-open connections: one byte, or half the HTTP/2 preface, then nothing.

Connections alternate between sending b"P" and b"PRI * HTTP/2.0\\r\\n" (the
first 16 of the preface's 24 bytes); neither ever sends more, and each reads
only to notice that the server closed it.

  --mode close-times  opens --connections connections, waits (at most
                      --wait seconds) for the server to close each, and
                      reports how long each stayed open.
  --mode hold         keeps --connections connections open for --hold
                      seconds: one the server closes is opened again (at
                      most --reopen-rate a second), as an attacker keeping
                      its connections up would. Reports how many the server
                      closed, and how many opens failed.

Writes the --ready file once the first --connections are open.

Usage: half_open.py --port PORT --mode close-times|hold [--connections N]
                    [--wait S] [--hold S] [--reopen-rate R] [--ready FILE]
"""

import argparse
import asyncio
import time

import h2raw

OPENINGS = [b"P", h2raw.PREFACE[:16]]


class Stats:
    def __init__(self):
        self.opened = 0
        self.open_failures = 0
        self.failure_kinds = {}
        self.closed_by_server = []  # seconds each stayed open
        self.first_error = None


async def one(port, index, stats, connected):
    """Opens one half-open connection; returns when the server closes it
    (or it is cancelled)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    except (OSError, asyncio.TimeoutError) as err:
        stats.open_failures += 1
        kind = type(err).__name__
        stats.failure_kinds[kind] = stats.failure_kinds.get(kind, 0) + 1
        stats.first_error = stats.first_error or repr(err)
        connected.set_result(False) if not connected.done() else None
        return None
    opened = time.monotonic()
    stats.opened += 1
    try:
        writer.write(OPENINGS[index % 2])
        await writer.drain()
        if not connected.done():
            connected.set_result(True)
        while await reader.read(4096):
            pass  # a GOAWAY saying why, before the close
    except (ConnectionError, OSError):
        pass
    except asyncio.CancelledError:
        writer.close()
        raise
    finally:
        if not connected.done():
            connected.set_result(False)
    stayed = time.monotonic() - opened
    stats.closed_by_server.append(stayed)
    writer.close()
    return stayed


async def close_times(args, stats):
    sem = asyncio.Semaphore(256)  # connects in flight at once
    tasks = []

    async def limited(i):
        connected = asyncio.get_running_loop().create_future()
        async with sem:
            task = asyncio.create_task(one(args.port, i, stats, connected))
            await connected
        return await task

    started = time.monotonic()
    for i in range(args.connections):
        tasks.append(asyncio.create_task(limited(i)))
    # All open (or failed) before the ready mark.
    while stats.opened + stats.open_failures < args.connections and time.monotonic() - started < 30:
        await asyncio.sleep(0.01)
    open_seconds = time.monotonic() - started
    h2raw.mark_ready(args.ready)
    done, pending = await asyncio.wait(tasks, timeout=args.wait)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    stayed = stats.closed_by_server
    return {
        "connections": args.connections,
        "opened": stats.opened,
        "open_failures": stats.open_failures,
        "open_failure_kinds": stats.failure_kinds,
        "first_error": stats.first_error,
        "open_seconds": round(open_seconds, 3),
        "closed_by_server": len(stayed),
        "still_open_after_wait": len(pending),
        "max_open_s": round(max(stayed), 3) if stayed else None,
        "median_open_s": round(h2raw.percentile(stayed, 0.5), 3) if stayed else None,
        "p99_open_s": round(h2raw.percentile(stayed, 0.99), 3) if stayed else None,
    }


async def hold(args, stats):
    loop = asyncio.get_running_loop()
    live = set()
    reopen_budget = [0.0]
    index = [0]

    def start():
        connected = loop.create_future()
        task = asyncio.create_task(one(args.port, index[0], stats, connected))
        index[0] += 1
        live.add(task)
        task.add_done_callback(live.discard)
        return connected

    firsts = [start() for _ in range(args.connections)]
    await asyncio.gather(*firsts)
    h2raw.mark_ready(args.ready)
    started = time.monotonic()
    reopened = 0
    last = started
    while time.monotonic() - started < args.hold:
        await asyncio.sleep(0.05)
        now = time.monotonic()
        reopen_budget[0] = min(args.reopen_rate, reopen_budget[0] + (now - last) * args.reopen_rate)
        last = now
        while len(live) < args.connections and reopen_budget[0] >= 1:
            reopen_budget[0] -= 1
            start()
            reopened += 1
    still = len(live)
    for task in list(live):
        task.cancel()
    await asyncio.gather(*list(live), return_exceptions=True)
    stayed = stats.closed_by_server
    return {
        "connections": args.connections,
        "opened": stats.opened,
        "reopened": reopened,
        "open_failures": stats.open_failures,
        "open_failure_kinds": stats.failure_kinds,
        "first_error": stats.first_error,
        "closed_by_server": len(stayed),
        "open_at_end": still,
        "median_open_s": round(h2raw.percentile(stayed, 0.5), 3) if stayed else None,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=["close-times", "hold"], required=True)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--wait", type=float, default=10.0)
    parser.add_argument("--hold", type=float, default=10.0)
    parser.add_argument("--reopen-rate", type=float, default=200.0)
    parser.add_argument("--ready")
    args = parser.parse_args()
    h2raw.raise_nofile()
    stats = Stats()
    runner = close_times if args.mode == "close-times" else hold
    h2raw.report(asyncio.run(runner(args, stats)))


if __name__ == "__main__":
    main()
