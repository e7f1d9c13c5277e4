# client.py
import grpc
import messages_pb2
import messages_pb2_grpc

def generate_messages():
    messages = ["msg1", "msg2", "msg3"] 
    for msg in messages:
        yield messages_pb2.ChatMessage(message_text=msg)

def run():
    with grpc.insecure_channel("localhost:50051") as channel:
        stub = messages_pb2_grpc.ChatServiceStub(channel)
        response = stub.ChatStream(generate_messages())
        print(response.message_text)

if __name__ == "__main__":
    run()
