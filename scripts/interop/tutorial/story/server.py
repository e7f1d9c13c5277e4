"""The story tutorial's server.py, written as its README describes it.

An `Assistant` implements `AssistantServiceServicer` from stubs generated
from the tutorial's own two-field assistant.proto (beside this file). The
server uses a thread pool of 10 workers and listens on port 50051 (the
suite rewrites the port at run time). TellStory yields the greeting, then
alice.txt (read from the working directory) in 1024-byte chunks, then the
ending, logging the tutorial's lines, and finally cancels the call, as the
tutorial's server does, so the client sees status CANCELLED.

The pauses (3 s after the greeting, 0.05 s after each chunk, the defaults
that assistant-server keeps from the tutorial) can be shortened with
TUTORIAL_THINK_TIME and TUTORIAL_CHUNK_DELAY; scripts/interop.sh sets both
to 0 so that a whole story takes milliseconds.
"""

import logging
import os
import time
from concurrent import futures

import grpc

import assistant_pb2
import assistant_pb2_grpc

THINK_TIME = float(os.environ.get("TUTORIAL_THINK_TIME", "3"))
CHUNK_DELAY = float(os.environ.get("TUTORIAL_CHUNK_DELAY", "0.05"))


class Assistant(assistant_pb2_grpc.AssistantServiceServicer):
    def TellStory(self, request, context):
        logging.info("Received story-telling request from %s, %s.", request.user_name, request.institution)
        yield assistant_pb2.TellStoryResponse(
            text_chunk=f"Hi {request.user_name} from {request.institution}! Here's your story:\n\n".encode()
        )
        time.sleep(THINK_TIME)
        logging.info("Start streaming alice.txt")
        with open("alice.txt", "rb") as f:
            while True:
                chunk = f.read(1024)
                if not chunk:
                    logging.info("[EOF]")
                    break
                logging.info("Read %d bytes: %s ...", len(chunk), chunk[:10].decode("utf-8", errors="replace"))
                yield assistant_pb2.TellStoryResponse(text_chunk=chunk)
                time.sleep(CHUNK_DELAY)
        yield assistant_pb2.TellStoryResponse(text_chunk=b"\nThat's it! Hope you like the story~\n")
        logging.info("Finishes streaming alice.txt for %s from %s.", request.user_name, request.institution)
        context.cancel()


def serve():
    port = 50051
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=10))
    assistant_pb2_grpc.add_AssistantServiceServicer_to_server(Assistant(), server)
    server.add_insecure_port(f"[::]:{port}")
    server.start()
    logging.info("Server started on port %d", port)
    server.wait_for_termination()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    serve()
