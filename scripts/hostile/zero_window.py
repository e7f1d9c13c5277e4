"""Zero-window streams: TellStory calls whose client never lets a byte through.

Each connection opens with SETTINGS_INITIAL_WINDOW_SIZE 0 and never sends a
WINDOW_UPDATE, so the server may send headers but no DATA on any of its
streams. Otherwise the client is attentive: it reads its socket, and
acknowledges SETTINGS and PING, so nothing but flow control holds the calls.
The streams are spread evenly over --connections connections, and go out
in --waves waves, --wave-pause seconds apart (one wave by default).

With --chat the streams are Chat calls instead, opened with their headers
and nothing more: Chat answers before it reads, so each waits to send and
never reads its request, and a full server must end it all the same when
it takes its place.

Once every stream is sent it writes the --ready file, holds them for --hold
seconds (or until the --release file appears), closes the connections, and
prints a JSON summary.

Usage: zero_window.py --port PORT [--streams 10000] [--connections 10]
                      [--waves 1] [--wave-pause 0] [--chat]
                      [--hold 6] [--ready FILE] [--release FILE]
"""

import argparse
import asyncio
import os
import time

import h2raw


async def attack(args):
    authority = f"127.0.0.1:{args.port}"
    if args.chat:
        block = h2raw.request_block(authority, path=h2raw.CHAT)

        def call(stream_id):
            return h2raw.frame(h2raw.HEADERS, h2raw.END_HEADERS, stream_id, block)
    else:
        block = h2raw.request_block(authority)
        message = h2raw.grpc_message(h2raw.tell_story_request())

        def call(stream_id):
            return h2raw.story_call(stream_id, block, message)
    opening = h2raw.client_opening([(h2raw.SETTINGS_ENABLE_PUSH, 0), (h2raw.SETTINGS_INITIAL_WINDOW_SIZE, 0)])
    conns = [h2raw.Attentive() for _ in range(args.connections)]
    await asyncio.gather(*(c.connect(args.port, opening) for c in conns))
    readers = [asyncio.create_task(c.read_loop()) for c in conns]
    started = time.monotonic()
    counts = [args.streams // args.connections + (1 if i < args.streams % args.connections else 0)
              for i in range(args.connections)]
    sent = [0] * len(conns)
    for wave in range(args.waves):
        for i, (conn, count) in enumerate(zip(conns, counts)):
            upto = count * (wave + 1) // args.waves
            conn.write(b"".join(call(1 + 2 * k) for k in range(sent[i], upto)))
            sent[i] = upto
        await asyncio.gather(*(c.drain() for c in conns))
        if wave + 1 < args.waves:
            await asyncio.sleep(args.wave_pause)
    send_seconds = time.monotonic() - started
    h2raw.mark_ready(args.ready)
    until = time.monotonic() + args.hold
    while time.monotonic() < until and not (args.release and os.path.exists(args.release)):
        await asyncio.sleep(0.05)
    # How the server had answered by the end of the hold.
    responded = sum(c.headers_seen for c in conns)
    ended = {}
    for c in conns:
        for _, how, _ in c.ended.values():
            ended[how] = ended.get(how, 0) + 1
    goaways = sum(1 for c in conns if c.goaway)
    closed = sum(1 for c in conns if c.closed_at is not None)
    for c in conns:
        c.close()
    for r in readers:
        r.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return {
        "connections": len(conns),
        "streams_sent": sum(counts),
        "send_seconds": round(send_seconds, 3),
        "header_blocks_received": responded,
        "streams_ended_by_server": ended,
        "goaways": goaways,
        "connections_closed_by_server": closed,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--streams", type=int, default=10000, help="in all")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--waves", type=int, default=1)
    parser.add_argument("--wave-pause", type=float, default=0.0)
    parser.add_argument("--chat", action="store_true", help="headers-only Chat calls")
    parser.add_argument("--hold", type=float, default=6.0)
    parser.add_argument("--ready")
    parser.add_argument("--release")
    args = parser.parse_args()
    h2raw.raise_nofile()
    h2raw.report(asyncio.run(attack(args)))


if __name__ == "__main__":
    main()
