"""A stock grpcio client for assistant-server, sync or asyncio (`--aio`).

Usage: client.py [--aio] HOST:PORT COMMAND

Stubs come from proto/*.proto, generated at run time by scripts/interop.sh
with grpcio-tools into a directory on PYTHONPATH. Health and reflection use
grpcio-health-checking's and grpcio-reflection's own stubs.

Commands (each prints what the suite compares on stdout, notes on stderr,
and exits 0 only if the call ended as expected):
  story        TellStory for Peter S from SUSTech: every text_chunk to stdout
               as it arrives; exits 0 if the call ends CANCELLED.
  cancel       TellStory, cancels after 3 messages; prints the bytes received.
  hello        SayHello(name="Hyeonghwan"): prints the answer.
  chat-stream  ChatStream("start"): prints "Received message: {text}" lines.
  collect      CollectStream(msg1, msg2, msg3): prints the answer.
  chat         Chat, the tutorial's three texts, each sent after the reply
               to the one before: prints the tutorial's lines.
  health       Check: SERVING for "", the three services; NOT_FOUND for an
               unknown service.
  reflect      lists and describes the services through reflection
               (v1alpha), then calls SayHello with messages built only
               from the descriptors the server sent.
"""

import asyncio
import queue
import sys

import grpc
from google.protobuf import descriptor_pb2, message_factory
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import assistant_pb2
import assistant_pb2_grpc
import hello_world_pb2
import hello_world_pb2_grpc
import messages_pb2
import messages_pb2_grpc

REQUEST = assistant_pb2.TellStoryRequest(user_name="Peter S", institution="SUSTech")
CHAT_TEXTS = ["Hello grpc!", "This is Bidirectional Streaming RPC!", "Is it working good?"]
CANCEL_AFTER = 3

# service -> {method: (client_streaming, server_streaming)}
EXPECTED = {
    "assistant.AssistantService": {"TellStory": (False, True), "ListStories": (False, False)},
    "Greeter": {"SayHello": (False, False)},
    "ChatService": {
        "ChatStream": (False, True),
        "CollectStream": (True, False),
        "Chat": (True, True),
    },
}
HEALTH_EXPECTED = {"": "SERVING", **{name: "SERVING" for name in EXPECTED}, "no.such.Service": "NOT_FOUND"}


def note(text):
    print(text, file=sys.stderr, flush=True)


def out(text):
    print(text, flush=True)


def check_story_status(code, details, messages, received):
    note(f"status={code.name} details={details!r} messages={messages} bytes={received}")
    return 0 if code == grpc.StatusCode.CANCELLED else 1


def check_shapes(pool):
    """Describes every expected method from `pool`; returns the failures."""
    failures = []
    for service_name, methods in EXPECTED.items():
        service = pool.FindServiceByName(service_name)
        for method_name, shape in methods.items():
            method = service.methods_by_name.get(method_name)
            if method is None:
                failures.append(f"{service_name}/{method_name} is not described")
                continue
            got = (method.client_streaming, method.server_streaming)
            status = "ok" if got == shape else f"WRONG SHAPE, expected {shape}"
            out(f"{service_name}/{method_name}({method.input_type.full_name}) -> {method.output_type.full_name} "
                f"client_streaming={got[0]} server_streaming={got[1]} {status}")
            if got != shape:
                failures.append(f"{service_name}/{method_name} has shape {got}")
    return failures


def check_services(services):
    out("services: " + " ".join(sorted(services)))
    missing = (set(EXPECTED) | {"grpc.health.v1.Health"}) - set(services)
    return [f"reflection does not list {sorted(missing)}"] if missing else []


def dynamic_hello(pool):
    """SayHello's request and response classes, from reflected descriptors only."""
    request_class = message_factory.GetMessageClass(pool.FindMessageTypeByName("HelloRequest"))
    response_class = message_factory.GetMessageClass(pool.FindMessageTypeByName("HelloResponse"))
    return request_class(name="reflection"), request_class.SerializeToString, response_class.FromString


# ---------------------------------------------------------------- sync

def run_sync(target, command):
    with grpc.insecure_channel(target) as channel:
        story = assistant_pb2_grpc.AssistantServiceStub(channel)
        chat = messages_pb2_grpc.ChatServiceStub(channel)
        if command == "story":
            messages = received = 0
            call = story.TellStory(REQUEST)
            try:
                for response in call:
                    sys.stdout.buffer.write(response.text_chunk)
                    sys.stdout.flush()
                    messages += 1
                    received += len(response.text_chunk)
            except grpc.RpcError:
                pass
            return check_story_status(call.code(), call.details(), messages, received)
        if command == "cancel":
            call = story.TellStory(REQUEST)
            received = 0
            for index, response in enumerate(call):
                received += len(response.text_chunk)
                if index + 1 == CANCEL_AFTER:
                    break
            call.cancel()
            note(f"cancelled after {CANCEL_AFTER} messages; code={call.code().name}")
            out(received)
            return 0 if call.code() == grpc.StatusCode.CANCELLED else 1
        if command == "hello":
            out(hello_world_pb2_grpc.GreeterStub(channel).SayHello(
                hello_world_pb2.HelloRequest(name="Hyeonghwan")).response_text)
            return 0
        if command == "chat-stream":
            for message in chat.ChatStream(messages_pb2.ChatMessage(message_text="start")):
                out(f"Received message: {message.message_text}")
            return 0
        if command == "collect":
            answer = chat.CollectStream(iter(messages_pb2.ChatMessage(message_text=t) for t in ["msg1", "msg2", "msg3"]))
            out(answer.message_text)
            return 0
        if command == "chat":
            replied = queue.Queue()

            def requests():
                for text in CHAT_TEXTS:
                    out(f"Client Message: {text}")
                    yield messages_pb2.ChatMessage(message_text=text)
                    replied.get(timeout=10)

            for reply in chat.Chat(requests()):
                out(f"Received message: {reply.message_text}")
                replied.put(None)
            return 0
        if command == "health":
            stub = health_pb2_grpc.HealthStub(channel)
            failures = 0
            for service, expected in HEALTH_EXPECTED.items():
                try:
                    got = health_pb2.HealthCheckResponse.ServingStatus.Name(
                        stub.Check(health_pb2.HealthCheckRequest(service=service)).status)
                except grpc.RpcError as error:
                    got = error.code().name
                out(f"health {service!r}: {got}")
                failures += got != expected
            return 1 if failures else 0
        if command == "reflect":
            from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
                ProtoReflectionDescriptorDatabase,
            )
            database = ProtoReflectionDescriptorDatabase(channel)
            failures = check_services(database.get_services())
            pool = DescriptorPool(database)
            failures += check_shapes(pool)
            request, serialize, deserialize = dynamic_hello(pool)
            say_hello = channel.unary_unary("/Greeter/SayHello", request_serializer=serialize,
                                            response_deserializer=deserialize)
            out(f"SayHello through reflected descriptors: {say_hello(request).response_text}")
            for failure in failures:
                note(failure)
            return 1 if failures else 0
    raise SystemExit(f"unknown command {command}")


# ---------------------------------------------------------------- asyncio

async def reflected_pool(channel):
    """Services and a DescriptorPool, over the raw v1alpha stream."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    services = [s.name for s in (await call.read()).list_services_response.service]
    files = {}
    wanted = list(EXPECTED)
    while wanted:
        await call.write(reflection_pb2.ServerReflectionRequest(file_containing_symbol=wanted.pop()))
        response = await call.read()
        if response.HasField("error_response"):
            raise RuntimeError(f"reflection error: {response.error_response}")
        for raw in response.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files[proto.name] = proto
            for dependency in proto.dependency:
                if dependency not in files:
                    await call.write(reflection_pb2.ServerReflectionRequest(file_by_filename=dependency))
                    for dep_raw in (await call.read()).file_descriptor_response.file_descriptor_proto:
                        dep = descriptor_pb2.FileDescriptorProto.FromString(dep_raw)
                        files[dep.name] = dep
    await call.done_writing()
    pool = DescriptorPool()
    added = set()

    def add(name):
        if name in added:
            return
        for dependency in files[name].dependency:
            add(dependency)
        pool.Add(files[name])
        added.add(name)

    for name in files:
        add(name)
    return services, pool


async def run_aio(target, command):
    async with grpc.aio.insecure_channel(target) as channel:
        story = assistant_pb2_grpc.AssistantServiceStub(channel)
        chat = messages_pb2_grpc.ChatServiceStub(channel)
        if command == "story":
            messages = received = 0
            call = story.TellStory(REQUEST)
            try:
                async for response in call:
                    sys.stdout.buffer.write(response.text_chunk)
                    sys.stdout.flush()
                    messages += 1
                    received += len(response.text_chunk)
            except grpc.RpcError:
                pass
            return check_story_status(await call.code(), await call.details(), messages, received)
        if command == "cancel":
            call = story.TellStory(REQUEST)
            received = 0
            for _ in range(CANCEL_AFTER):
                received += len((await call.read()).text_chunk)
            call.cancel()
            code = await call.code()
            note(f"cancelled after {CANCEL_AFTER} messages; code={code.name}")
            out(received)
            return 0 if code == grpc.StatusCode.CANCELLED else 1
        if command == "hello":
            response = await hello_world_pb2_grpc.GreeterStub(channel).SayHello(
                hello_world_pb2.HelloRequest(name="Hyeonghwan"))
            out(response.response_text)
            return 0
        if command == "chat-stream":
            async for message in chat.ChatStream(messages_pb2.ChatMessage(message_text="start")):
                out(f"Received message: {message.message_text}")
            return 0
        if command == "collect":
            call = chat.CollectStream()
            for text in ["msg1", "msg2", "msg3"]:
                await call.write(messages_pb2.ChatMessage(message_text=text))
            await call.done_writing()
            out((await call).message_text)
            return 0
        if command == "chat":
            call = chat.Chat()
            for text in CHAT_TEXTS:
                out(f"Client Message: {text}")
                await call.write(messages_pb2.ChatMessage(message_text=text))
                out(f"Received message: {(await call.read()).message_text}")
            await call.done_writing()
            extra = await call.read()
            if extra is not grpc.aio.EOF:
                note(f"unexpected extra reply {extra}")
                return 1
            return 0 if await call.code() == grpc.StatusCode.OK else 1
        if command == "health":
            stub = health_pb2_grpc.HealthStub(channel)
            failures = 0
            for service, expected in HEALTH_EXPECTED.items():
                try:
                    response = await stub.Check(health_pb2.HealthCheckRequest(service=service))
                    got = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
                except grpc.RpcError as error:
                    got = error.code().name
                out(f"health {service!r}: {got}")
                failures += got != expected
            return 1 if failures else 0
        if command == "reflect":
            services, pool = await reflected_pool(channel)
            failures = check_services(services) + check_shapes(pool)
            request, serialize, deserialize = dynamic_hello(pool)
            say_hello = channel.unary_unary("/Greeter/SayHello", request_serializer=serialize,
                                            response_deserializer=deserialize)
            out(f"SayHello through reflected descriptors: {(await say_hello(request)).response_text}")
            for failure in failures:
                note(failure)
            return 1 if failures else 0
    raise SystemExit(f"unknown command {command}")


def main(argv):
    aio = argv[:1] == ["--aio"]
    if aio:
        argv = argv[1:]
    if len(argv) != 2:
        raise SystemExit(__doc__)
    target, command = argv
    if aio:
        return asyncio.run(run_aio(target, command))
    return run_sync(target, command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
