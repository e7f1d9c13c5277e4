"""Checks reflection and health with grpcio's own clients, no .proto files.

Lists the services through server reflection, describes every method of
the assistant's services from the descriptors the server sends, and checks
that health reports SERVING for the server and for each service.
"""

import sys

import grpc
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

EXPECTED = {
    "assistant.AssistantService": {"TellStory": (False, True)},
    "Greeter": {"SayHello": (False, False)},
    "ChatService": {
        "ChatStream": (False, True),
        "CollectStream": (True, False),
        "Chat": (True, True),
    },
}


def main(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        missing = set(EXPECTED) | {"grpc.health.v1.Health"}
        missing -= services
        if missing:
            print(f"reflection does not list {sorted(missing)}; it lists {sorted(services)}")
            return 1
        pool = DescriptorPool(database)
        for service_name, methods in EXPECTED.items():
            service = pool.FindServiceByName(service_name)
            for method_name, (client_streaming, server_streaming) in methods.items():
                method = service.methods_by_name[method_name]
                if (method.client_streaming, method.server_streaming) != (client_streaming, server_streaming):
                    print(f"{service_name}/{method_name} is described with the wrong shape")
                    return 1
                print(f"described {service_name}/{method_name}: {method.input_type.full_name} -> {method.output_type.full_name}")

        health = health_pb2_grpc.HealthStub(channel)
        for service_name in ["", *EXPECTED]:
            response = health.Check(health_pb2.HealthCheckRequest(service=service_name))
            if response.status != health_pb2.HealthCheckResponse.SERVING:
                print(f"health of {service_name!r} is {response.status}")
                return 1
        print("health: SERVING for the server and every service")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
