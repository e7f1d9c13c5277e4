# server.py
from concurrent import futures

import grpc
import time
import messages_pb2
import messages_pb2_grpc

class ChatService(messages_pb2_grpc.ChatServiceServicer):
    def ChatStream(self, request_iterator, context):
        result = ""
        for message in request_iterator:
            result += message.message_text + " "
        
        return messages_pb2.ChatMessage(message_text=result)

def serve():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=10))
    messages_pb2_grpc.add_ChatServiceServicer_to_server(ChatService(), server)
    server.add_insecure_port("[::]:50051")
    server.start()
    server.wait_for_termination()

if __name__ == "__main__":
    serve()
