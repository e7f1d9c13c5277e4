# server.py

from concurrent import futures

import grpc
import time
import messages_pb2
import messages_pb2_grpc

class ChatService(messages_pb2_grpc.ChatServiceServicer):
    def Chat(self, request_iterator, context):
        for message in request_iterator:
            print(f"Client Message: {message.message_text}")
            received_message = messages_pb2.ChatMessage(message_text=f"Received: {message.message_text}")
            yield received_message
            time.sleep(1)

def serve():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=10))
    messages_pb2_grpc.add_ChatServiceServicer_to_server(ChatService(), server)
    server.add_insecure_port("[::]:50051")
    server.start()
    server.wait_for_termination()

if __name__ == "__main__":
    serve()
