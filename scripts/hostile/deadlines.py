"""Deadlines (grpc-timeout) on TellStory, seen from an h2 client.

  --mode short    one call without a deadline (the baseline: the whole
                  story), then --trials calls with grpc-timeout 1m (one
                  millisecond), each read as fast as it arrives through
                  windows of 2^31-1. Reports how each ended and how many
                  bytes it got.
  --mode stalled  --trials calls with grpc-timeout 1S on a connection whose
                  streams have window 0: the server cannot send the story,
                  nor trailers after it. Reports, per call, how long after
                  the request went out it ended (RST_STREAM or trailers).
  --mode slow     as stalled, but the client reads a little now and then:
                  windows start at 4096 bytes and grow by --slow-bytes
                  every 100 ms once data has come.

Usage: deadlines.py --port PORT --mode short|stalled|slow [--trials N]
"""

import argparse
import asyncio
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
from h2.settings import SettingCodes

import h2raw


class Call:
    def __init__(self, stream_id, sent_at):
        self.stream_id = stream_id
        self.sent_at = sent_at
        self.ended_at = None
        self.how = None
        self.status = None
        self.message = None
        self.data_bytes = 0
        self.rst_code = None

    def summary(self):
        return {
            "how": self.how,
            "grpc_status": self.status,
            "grpc_message": self.message,
            "rst_code": self.rst_code,
            "data_bytes": self.data_bytes,
            "delay_ms": None if self.ended_at is None else round((self.ended_at - self.sent_at) * 1000, 1),
        }


class Client:
    def __init__(self, port, initial_window):
        self.port = port
        self.initial_window = initial_window
        self.calls = {}
        self.changed = asyncio.Event()

    async def connect(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                SettingCodes.INITIAL_WINDOW_SIZE: self.initial_window,
                SettingCodes.ENABLE_PUSH: 0,
                SettingCodes.MAX_CONCURRENT_STREAMS: 100,
            },
        )
        self.conn.initiate_connection()
        if self.initial_window > h2raw.DEFAULT_WINDOW:
            self.conn.increment_flow_control_window(h2raw.MAX_WINDOW - h2raw.DEFAULT_WINDOW)
        await self.flush()
        self.reading = asyncio.create_task(self.read_loop())

    async def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def call(self, timeout=None):
        stream_id = self.conn.get_next_available_stream_id()
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", h2raw.TELL_STORY.decode()),
            (":authority", f"127.0.0.1:{self.port}"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
        if timeout:
            headers.append(("grpc-timeout", timeout))
        self.conn.send_headers(stream_id, headers)
        self.conn.send_data(stream_id, h2raw.grpc_message(h2raw.tell_story_request()), end_stream=True)
        await self.flush()
        call = Call(stream_id, time.monotonic())
        self.calls[stream_id] = call
        return call

    def _end(self, stream_id, how):
        call = self.calls.get(stream_id)
        if call and call.ended_at is None:
            call.ended_at = time.monotonic()
            call.how = how

    async def read_loop(self):
        while True:
            data = await self.reader.read(1 << 16)
            if not data:
                return
            now = time.monotonic()
            for event in self.conn.receive_data(data):
                call = self.calls.get(getattr(event, "stream_id", None))
                if isinstance(event, h2.events.DataReceived) and call:
                    call.data_bytes += len(event.data)
                elif isinstance(event, (h2.events.TrailersReceived, h2.events.ResponseReceived)) and call:
                    fields = dict(event.headers)
                    if "grpc-status" in fields:
                        call.status = int(fields["grpc-status"])
                        call.message = fields.get("grpc-message")
                elif isinstance(event, h2.events.StreamEnded) and call:
                    if call.ended_at is None:
                        call.ended_at, call.how = now, "trailers"
                elif isinstance(event, h2.events.StreamReset) and call:
                    call.rst_code = int(event.error_code)
                    if call.ended_at is None:
                        call.ended_at, call.how = now, "rst"
            await self.flush()
            self.changed.set()

    async def wait(self, calls, seconds):
        deadline = time.monotonic() + seconds
        while any(c.ended_at is None for c in calls) and time.monotonic() < deadline:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), max(0.01, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                pass

    def close(self):
        self.reading.cancel()
        self.writer.close()


async def short(args):
    client = Client(args.port, h2raw.MAX_WINDOW)
    await client.connect()
    baseline = await client.call()
    await client.wait([baseline], 10)
    trials = []
    for _ in range(args.trials):
        call = await client.call("1m")
        await client.wait([call], 10)
        trials.append(call)
    client.close()
    return {"baseline": baseline.summary(), "trials": [c.summary() for c in trials]}


async def stalled(args, slow):
    client = Client(args.port, 4096 if slow else 0)
    await client.connect()
    calls = []
    for _ in range(args.trials):
        calls.append(await client.call("1S"))
        await asyncio.sleep(0.05)
    if slow:
        # Reads a little now and then: every 100 ms, room for a few more
        # bytes on each stream that has had some, and on the connection.
        async def reader():
            while True:
                await asyncio.sleep(0.1)
                for call in calls:
                    if call.ended_at is None and call.data_bytes:
                        try:
                            client.conn.increment_flow_control_window(args.slow_bytes, call.stream_id)
                            client.conn.increment_flow_control_window(args.slow_bytes)
                        except Exception:  # the stream closed meanwhile
                            pass
                await client.flush()

        feeding = asyncio.create_task(reader())
    await client.wait(calls, 5)
    if slow:
        feeding.cancel()
    client.close()
    return {"trials": [c.summary() for c in calls]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=["short", "stalled", "slow"], required=True)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--slow-bytes", type=int, default=1024)
    args = parser.parse_args()
    runner = short(args) if args.mode == "short" else stalled(args, args.mode == "slow")
    h2raw.report(asyncio.run(runner))


if __name__ == "__main__":
    main()
