"""Stock grpcio calls for the hostile-traffic suite.

Stubs come from proto/assistant.proto, generated at run time by
scripts/hostile.sh into a directory on PYTHONPATH. Each command prints one
JSON summary on stdout. With `--ready FILE` first, the file is written as
the command starts (the suite starts its good client then).

  statuses PORT N                N TellStory calls, one after another, and how each ended
  fanout PORT STORY FILE N BYTES N callers ask for STORY at the same moment;
                                 each reads BYTES of it (checked against
                                 FILE), then cancels
  turns PORT BYTES STORY...      the stories one after another, each read
                                 for BYTES, then cancelled
  fifo-race PORT DIR NAME SECONDS PID
                                 for SECONDS, a thread renames a fresh
                                 regular file, then a FIFO, over DIR/NAME,
                                 again and again, while callers ask for NAME;
                                 then counts the server's threads blocked
                                 opening a FIFO (/proc/PID/task/*/wchan)
  notfound PORT NAME             TellStory for a story that is not there
  list-cpu PORT PID N            ListStories once, then N times, with the
                                 server's CPU time (/proc/PID/stat) for each
  greetings PORT FILE N          N callers at once, each with a greeting of
                                 its own length, read the whole story; each
                                 call's bytes and offsets are checked
                                 against FILE (the story told)
"""

import json
import os
import re
import sys
import threading
import time

import grpc

import assistant_pb2
import assistant_pb2_grpc

GREETING = b"Hi Peter S from SUSTech! Here's your story:\n\n"


def stub(port):
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return channel, assistant_pb2_grpc.AssistantServiceStub(channel)


def request(story=""):
    return assistant_pb2.TellStoryRequest(user_name="Peter S", institution="SUSTech", story=story)


def run_all(caller, callers):
    """Runs caller(i) for i in range(callers), each on a thread of its own,
    and waits for them all."""
    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def report(summary):
    json.dump(summary, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


def read_some(service, story, limit, timeout=60):
    """Reads up to `limit` bytes of a story call, then cancels it. Returns
    (bytes, status name)."""
    call = service.TellStory(request(story), timeout=timeout)
    got = bytearray()
    code = "OK"
    try:
        for message in call:
            got += message.text_chunk
            if len(got) >= limit:
                call.cancel()
                code = "READ_ENOUGH"
                break
    except grpc.RpcError as err:
        code = err.code().name
    return bytes(got), code


def statuses(port, count):
    channel, service = stub(port)
    codes = []
    for _ in range(int(count)):
        try:
            for _ in service.TellStory(request(), timeout=10):
                pass
            codes.append("OK")
        except grpc.RpcError as err:
            codes.append(err.code().name + ": " + (err.details() or "")[:120])
    channel.close()
    report({"codes": codes})


def fanout(port, story, path, callers, limit):
    callers, limit = int(callers), int(limit)
    with open(path, "rb") as f:
        expected = GREETING + f.read(limit)
    channel, service = stub(port)
    barrier = threading.Barrier(callers)
    results = [None] * callers

    def caller(i):
        barrier.wait()
        got, code = read_some(service, story, limit)
        n = min(len(got), len(expected))
        results[i] = (code, len(got), got[:n] == expected[:n])

    started = time.monotonic()
    run_all(caller, callers)
    channel.close()
    report({
        "callers": callers,
        "seconds": round(time.monotonic() - started, 3),
        "read_enough": sum(1 for r in results if r[0] == "READ_ENOUGH"),
        "codes": sorted({r[0] for r in results}),
        "bytes_match": all(r[2] for r in results),
        "min_bytes": min(r[1] for r in results),
    })


def turns(port, limit, *stories):
    channel, service = stub(port)
    results = []
    for story in stories:
        got, code = read_some(service, story, int(limit))
        results.append({"story": story, "code": code, "bytes": len(got)})
    channel.close()
    report({"turns": results})


def fifo_blocked_threads(pid):
    blocked = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/wchan") as f:
                wchan = f.read()
        except OSError:
            continue
        if wchan in ("wait_for_partner", "fifo_open"):
            blocked += 1
    return blocked


def fifo_race(port, directory, name, seconds, pid):
    seconds = float(seconds)
    path = os.path.join(directory, name)
    stop = threading.Event()
    swaps = [0]

    def swapper():
        i = 0
        while not stop.is_set():
            i += 1
            regular = os.path.join(directory, f".swap-{i}.tmp")
            with open(regular, "w") as f:
                f.write(f"Swapped story {i}\n" + "x" * (i % 97))
            os.rename(regular, path)
            fifo = os.path.join(directory, f".fifo-{i}.tmp")
            os.mkfifo(fifo)
            os.rename(fifo, path)
            swaps[0] += 2
        regular = os.path.join(directory, ".final.tmp")
        with open(regular, "w") as f:
            f.write("The last story\n")
        os.rename(regular, path)

    codes = {}
    lock = threading.Lock()
    channel, service = stub(port)

    def caller():
        while not stop.is_set():
            try:
                for _ in service.TellStory(request(name), timeout=2):
                    pass
                code = "OK"
            except grpc.RpcError as err:
                code = err.code().name
            with lock:
                codes[code] = codes.get(code, 0) + 1

    threads = [threading.Thread(target=swapper)] + [threading.Thread(target=caller) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    channel.close()
    report({"swaps": swaps[0], "calls": codes, "threads_blocked_on_fifo": fifo_blocked_threads(pid),
            "server_threads": len(os.listdir(f"/proc/{pid}/task"))})


def notfound(port, name):
    channel, service = stub(port)
    try:
        for _ in service.TellStory(request(name), timeout=10):
            pass
        code, details = "OK", ""
    except grpc.RpcError as err:
        code, details = err.code().name, err.details() or ""
    channel.close()
    names = [n for n in re.findall(r"[\w.-]+\.txt", details) if n != name]
    # Numbers outside the names: a count of the stories not listed.
    numbers = [int(n) for n in re.findall(r"\b\d+\b", re.sub(r"[\w.-]+\.txt", "", details))]
    report({"code": code, "message_chars": len(details), "names_listed": len(names),
            "numbers": numbers[:10], "message_start": details[:300], "message_end": details[-60:]})


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def list_cpu(port, pid, count):
    channel, service = stub(port)
    before = cpu_seconds(pid)
    started = time.monotonic()
    first = service.ListStories(assistant_pb2.ListStoriesRequest(), timeout=30)
    first_wall = time.monotonic() - started
    after_first = cpu_seconds(pid)
    started = time.monotonic()
    sizes = set()
    for _ in range(int(count)):
        sizes.add(len(service.ListStories(assistant_pb2.ListStoriesRequest(), timeout=30).stories))
    rest_wall = time.monotonic() - started
    after = cpu_seconds(pid)
    channel.close()
    report({
        "stories": len(first.stories),
        "later_sizes": sorted(sizes),
        "first_cpu_ms": round((after_first - before) * 1000, 1),
        "first_wall_ms": round(first_wall * 1000, 1),
        "calls": int(count),
        "cpu_ms_per_call": round((after - after_first) * 1000 / int(count), 2),
        "wall_ms_per_call": round(rest_wall * 1000 / int(count), 2),
    })


def greetings(port, path, callers):
    callers = int(callers)
    with open(path, "rb") as f:
        story = f.read()
    ending = b"\nThat's it! Hope you like the story~\n"
    channel, service = stub(port)
    barrier = threading.Barrier(callers)
    results = [None] * callers

    def caller(i):
        # Names of 1 to 128 characters whose lengths add up to i + 2: a
        # greeting of a length of its own for each caller.
        user_name, institution = "u" * min(i + 1, 128), "i" * max(1, i - 126)
        expected = f"Hi {user_name} from {institution}! Here's your story:\n\n".encode() + story + ending
        request = assistant_pb2.TellStoryRequest(user_name=user_name, institution=institution)
        barrier.wait()
        got, offsets_right, code = bytearray(), True, "OK"
        try:
            for message in service.TellStory(request, timeout=60):
                offsets_right &= message.offset == len(got)
                got += message.text_chunk
        except grpc.RpcError as err:
            code = err.code().name + ": " + (err.details() or "")
        results[i] = (code, bytes(got) == expected, offsets_right)

    started = time.monotonic()
    run_all(caller, callers)
    channel.close()
    report({
        "callers": callers,
        "seconds": round(time.monotonic() - started, 3),
        "codes": sorted({r[0] for r in results}),
        "bytes_match": sum(1 for r in results if r[1]),
        "offsets_match": sum(1 for r in results if r[2]),
    })


COMMANDS = {"statuses": statuses, "fanout": fanout, "turns": turns, "fifo-race": fifo_race,
            "notfound": notfound, "list-cpu": list_cpu, "greetings": greetings}

if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[0] == "--ready":
        with open(argv[1], "w") as f:
            f.write(str(time.time()))
        argv = argv[2:]
    COMMANDS[argv[0]](*argv[1:])
