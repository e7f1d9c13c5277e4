# client.py

import grpc
import time
import messages_pb2
import messages_pb2_grpc

def generate_messages():
    messages = [
        "Hello grpc!",
        "This is Bidirectional Streaming RPC!",
        "Is it working good?"
    ]

    for msg in messages:
        print(f"Client Message: {msg}")
        yield messages_pb2.ChatMessage(message_text=msg)
        time.sleep(2)


def run():
    with grpc.insecure_channel("localhost:50051") as channel:
        stub = messages_pb2_grpc.ChatServiceStub(channel)
        response = stub.Chat(generate_messages())

        for res in response:
            print(f"Received message: {res.message_text}")



if __name__ == "__main__":
    run()
