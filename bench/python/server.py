"""The tutorial's Python server, rebuilt from its description, as a baseline.

A grpcio server with a pool of 10 threads, as in the tutorial. TellStory
greets the user, waits the think-time, then yields alice.txt in 1024-byte
chunks, waiting the chunk delay after each, and ends the call with status
CANCELLED, as the tutorial's server does. The pauses are flags, as
assistant-server's are, so both can run at zero for benchmarks.

Needs stubs generated from proto/assistant.proto (bench/run.sh makes them):
    python -m grpc_tools.protoc -I proto --python_out=DIR --grpc_python_out=DIR proto/assistant.proto
Usage: server.py [--port 50053] [--think-time 3] [--chunk-delay 0.05] [--quiet] STORY
"""

import argparse
import logging
import time
from concurrent import futures

import grpc

import assistant_pb2
import assistant_pb2_grpc


class Assistant(assistant_pb2_grpc.AssistantServiceServicer):
    def __init__(self, story_path, think_time, chunk_delay):
        self.story_path = story_path
        self.think_time = think_time
        self.chunk_delay = chunk_delay

    def TellStory(self, request, context):
        logging.info("Received story-telling request from %s, %s.", request.user_name, request.institution)
        greeting = f"Hi {request.user_name} from {request.institution}! Here's your story:\n\n".encode()
        yield assistant_pb2.TellStoryResponse(text_chunk=greeting)
        if self.think_time:
            time.sleep(self.think_time)
        logging.info("Start streaming alice.txt")
        with open(self.story_path, "rb") as story:
            while chunk := story.read(1024):
                logging.info("Read %d bytes: %s ...", len(chunk), chunk[:10].decode(errors="replace"))
                yield assistant_pb2.TellStoryResponse(text_chunk=chunk)
                if self.chunk_delay:
                    time.sleep(self.chunk_delay)
        logging.info("[EOF]")
        yield assistant_pb2.TellStoryResponse(text_chunk=b"\nThat's it! Hope you like the story~\n")
        logging.info("Finishes streaming alice.txt for %s from %s.", request.user_name, request.institution)
        context.cancel()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("story")
    parser.add_argument("--port", type=int, default=50053)
    parser.add_argument("--think-time", type=float, default=3.0)
    parser.add_argument("--chunk-delay", type=float, default=0.05)
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=10))
    assistant_pb2_grpc.add_AssistantServiceServicer_to_server(
        Assistant(args.story, args.think_time, args.chunk_delay), server
    )
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    logging.warning("Server started on port %d", args.port)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
