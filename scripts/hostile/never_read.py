"""Never-reading clients: TellStory streams whose bytes are never read.

Each connection advertises the largest windows HTTP/2 allows (stream:
SETTINGS_INITIAL_WINDOW_SIZE 2^31-1; connection: a WINDOW_UPDATE to
2^31-1), opens its streams (HEADERS, then the whole request with
END_STREAM), and never reads its socket again: flow control lets the server
send everything, and nothing is taken off the wire. The streams go out in
--waves waves, --wave-pause seconds apart (one wave by default).

Once every stream is sent it writes the --ready file, holds the connections
for --hold seconds (or until the --release file appears), closes them, and
prints a JSON summary.

While it holds, it tops up: whenever the number in the --top-up file goes
up, it opens that many more such streams on its first connection, so that
a test can fill again a place that a call left.

Usage: never_read.py --port PORT [--connections 20] [--streams 1000]
                     [--waves 1] [--wave-pause 0] [--hold 8] [--ready FILE]
                     [--release FILE] [--top-up FILE]
"""

import argparse
import os
import socket
import threading
import time

import h2raw


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--streams", type=int, default=1000, help="per connection")
    parser.add_argument("--waves", type=int, default=1)
    parser.add_argument("--wave-pause", type=float, default=0.0)
    parser.add_argument("--hold", type=float, default=8.0)
    parser.add_argument("--ready")
    parser.add_argument("--release")
    parser.add_argument("--top-up")
    args = parser.parse_args()
    h2raw.raise_nofile()

    authority = f"127.0.0.1:{args.port}"
    block = h2raw.request_block(authority)
    message = h2raw.grpc_message(h2raw.tell_story_request())
    opening = h2raw.client_opening(
        [(h2raw.SETTINGS_ENABLE_PUSH, 0), (h2raw.SETTINGS_INITIAL_WINDOW_SIZE, h2raw.MAX_WINDOW)],
        connection_window=h2raw.MAX_WINDOW,
    )

    sockets = []
    for _ in range(args.connections):
        sock = socket.create_connection(("127.0.0.1", args.port), timeout=10)
        sock.sendall(opening)
        sockets.append(sock)

    sent = [0] * len(sockets)
    errors = []
    started = time.monotonic()
    per_wave = [args.streams // args.waves + (1 if w < args.streams % args.waves else 0) for w in range(args.waves)]

    def send_wave(index, count):
        sock = sockets[index]
        first = 1 + 2 * sent[index]
        data = b"".join(h2raw.story_call(first + 2 * k, block, message) for k in range(count))
        try:
            sock.sendall(data)
            sent[index] += count
        except OSError as err:
            errors.append(f"connection {index}: {err}")

    for wave, count in enumerate(per_wave):
        threads = [threading.Thread(target=send_wave, args=(i, count)) for i in range(len(sockets))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if wave + 1 < len(per_wave):
            time.sleep(args.wave_pause)
    send_seconds = time.monotonic() - started
    h2raw.mark_ready(args.ready)
    topped_up = 0
    until = time.monotonic() + args.hold
    while time.monotonic() < until and not (args.release and os.path.exists(args.release)):
        wanted = topped_up
        if args.top_up:
            try:
                with open(args.top_up) as f:
                    wanted = int(f.read().strip() or 0)
            except (OSError, ValueError):
                pass
        if wanted > topped_up:
            send_wave(0, wanted - topped_up)
            topped_up = wanted
        time.sleep(0.02)
    for sock in sockets:
        sock.close()
    h2raw.report({
        "connections": len(sockets),
        "streams_sent": sum(sent),
        "topped_up": topped_up,
        "send_seconds": round(send_seconds, 3),
        "errors": errors[:5],
    })


if __name__ == "__main__":
    main()
