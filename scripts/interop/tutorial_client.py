"""The tutorial's Python client, as a stock grpcio program.

It calls TellStory on the server given as argv[1], writes every text chunk
to stdout as it arrives, and reports how the call ended on stderr, exactly
as the tutorial's client does. Used by scripts/python-interop.sh to prove
the Rust server speaks the same wire contract.
"""

import logging
import sys

import grpc

import assistant_pb2
import assistant_pb2_grpc


def run(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        stub = assistant_pb2_grpc.AssistantServiceStub(channel)
        request = assistant_pb2.TellStoryRequest(user_name="Peter S", institution="SUSTech")
        logging.info("Requesting with user_name=%s, institution=%s", request.user_name, request.institution)
        try:
            for response in stub.TellStory(request):
                sys.stdout.buffer.write(response.text_chunk)
                sys.stdout.flush()
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.CANCELLED:
                logging.info("Stream cancelled by server. Exiting gracefully.")
            else:
                logging.error("An error occurred: %s: %s", error.code(), error.details())
                return 1
        logging.info("Finished requesting.")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(run(sys.argv[1]))
