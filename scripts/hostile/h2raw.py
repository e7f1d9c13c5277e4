"""Raw HTTP/2 and gRPC bytes for the hostile-traffic suite.

The attacks open thousands of streams, faster than a full HTTP/2 library
in Python could: every frame here is built by hand. Header blocks use HPACK
literals without indexing, so each block stands alone and the same bytes can
be sent on any stream of any connection. Frames the server sends are split
by FrameReader, and Attentive answers them as a live client would.

Also here: the TellStory request (protobuf and gRPC framing by hand), the
attacker's file-descriptor limit, and small helpers shared by the programs.
"""

import asyncio
import json
import os
import resource
import struct
import sys
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4

SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5

MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW = 65535
CANCEL = 0x8

TELL_STORY = b"/assistant.AssistantService/TellStory"
CHAT = b"/ChatService/Chat"


def frame(kind, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream_id) + payload


def settings(pairs=()):
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", key, value) for key, value in pairs))


def settings_ack():
    return frame(SETTINGS, ACK, 0)


def ping_ack(payload):
    return frame(PING, ACK, 0, payload)


def window_update(stream_id, increment):
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", increment))


def rst_stream(stream_id, code=CANCEL):
    return frame(RST_STREAM, 0, stream_id, struct.pack(">I", code))


def goaway(last_stream_id=0, code=0):
    return frame(GOAWAY, 0, 0, struct.pack(">II", last_stream_id, code))


def _hpack_int(value, prefix_bits, flags=0):
    top = (1 << prefix_bits) - 1
    if value < top:
        return bytes([flags | value])
    out = [flags | top]
    value -= top
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _literal(name, value):
    """An HPACK literal without indexing, with a literal name, no Huffman."""
    return b"\x00" + _hpack_int(len(name), 7) + name + _hpack_int(len(value), 7) + value


def request_block(authority, path=TELL_STORY, timeout=None):
    """The header block of a gRPC call: stateless, valid on any stream."""
    headers = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", path),
        (b":authority", authority.encode()),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
    ]
    if timeout is not None:
        headers.append((b"grpc-timeout", timeout.encode()))
    return b"".join(_literal(name, value) for name, value in headers)


def _pb_string(field, text):
    data = text.encode()
    return bytes([field << 3 | 2]) + _varint(len(data)) + data


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tell_story_request(user="Peter S", institution="SUSTech", story=""):
    """A TellStoryRequest, encoded by hand (fields 1, 2 and 3)."""
    body = _pb_string(1, user) + _pb_string(2, institution)
    if story:
        body += _pb_string(3, story)
    return body


def grpc_message(body):
    return b"\x00" + struct.pack(">I", len(body)) + body


def story_call(stream_id, block, message):
    """HEADERS, then the whole request message with END_STREAM."""
    return frame(HEADERS, END_HEADERS, stream_id, block) + frame(DATA, END_STREAM, stream_id, message)


def client_opening(pairs=(), connection_window=None):
    """The preface and SETTINGS; a WINDOW_UPDATE on the connection that
    raises its window to `connection_window`, if given."""
    out = PREFACE + settings(pairs)
    if connection_window is not None and connection_window > DEFAULT_WINDOW:
        out += window_update(0, connection_window - DEFAULT_WINDOW)
    return out


class FrameReader:
    """Splits bytes read from a connection into frames."""

    def __init__(self):
        self.buffer = bytearray()

    def feed(self, data):
        self.buffer += data
        frames = []
        while len(self.buffer) >= 9:
            length = int.from_bytes(self.buffer[0:3], "big")
            if len(self.buffer) < 9 + length:
                break
            kind, flags = self.buffer[3], self.buffer[4]
            stream_id = int.from_bytes(self.buffer[5:9], "big") & 0x7FFFFFFF
            payload = bytes(self.buffer[9 : 9 + length])
            del self.buffer[: 9 + length]
            frames.append((kind, flags, stream_id, payload))
        return frames


class Attentive:
    """An asyncio connection that answers SETTINGS and PING as a live client
    does, and records how each of its streams ends (its header blocks are
    not decoded: only their END_STREAM flag matters here)."""

    def __init__(self):
        self.reader = None
        self.writer = None
        self.frames = FrameReader()
        self.ended = {}  # stream id -> (monotonic time, "rst"/"trailers"/"data", RST code)
        self.goaway = None
        self.closed_at = None
        self.bytes_read = 0
        self.headers_seen = 0
        self._continued = {}  # stream id -> flags of a HEADERS frame awaiting CONTINUATION

    async def connect(self, port, opening, host="127.0.0.1"):
        self.reader, self.writer = await asyncio.open_connection(host, port, limit=1 << 20)
        self.writer.write(opening)
        await self.writer.drain()

    def write(self, data):
        self.writer.write(data)

    async def drain(self):
        await self.writer.drain()

    def _end(self, stream_id, how, detail=None):
        if stream_id not in self.ended:
            self.ended[stream_id] = (time.monotonic(), how, detail)

    def _headers(self, stream_id, flags):
        self.headers_seen += 1
        if flags & END_STREAM:
            self._end(stream_id, "trailers")

    async def read_loop(self):
        try:
            while True:
                data = await self.reader.read(1 << 16)
                if not data:
                    break
                self.bytes_read += len(data)
                for kind, flags, stream_id, payload in self.frames.feed(data):
                    if kind == SETTINGS and not flags & ACK:
                        self.writer.write(settings_ack())
                    elif kind == PING and not flags & ACK:
                        self.writer.write(ping_ack(payload))
                    elif kind == HEADERS:
                        if flags & END_HEADERS:
                            self._headers(stream_id, flags)
                        else:
                            self._continued[stream_id] = flags
                    elif kind == CONTINUATION and flags & END_HEADERS:
                        self._headers(stream_id, self._continued.pop(stream_id, 0))
                    elif kind == DATA and flags & END_STREAM:
                        self._end(stream_id, "data")
                    elif kind == RST_STREAM:
                        self._end(stream_id, "rst", struct.unpack(">I", payload[:4])[0])
                    elif kind == GOAWAY:
                        self.goaway = struct.unpack(">II", payload[:8])
        except (ConnectionError, OSError):
            pass
        self.closed_at = time.monotonic()

    def close(self):
        if self.writer is not None:
            self.writer.close()


def raise_nofile():
    """Lifts this process's soft limit on open files to its hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def mark_ready(path):
    """Tells the suite the attack is in place (it polls for this file)."""
    if path:
        with open(path + ".tmp", "w") as f:
            f.write(str(time.time()))
        os.replace(path + ".tmp", path)


def report(summary):
    """The program's figures, one JSON object on stdout."""
    json.dump(summary, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    sys.stdout.flush()


def percentile(values, fraction):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(fraction * len(values)))]
