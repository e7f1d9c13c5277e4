// A stock grpc-go client for assistant-server, on stubs that protoc-gen-go
// and protoc-gen-go-grpc generate from proto/*.proto at run time
// (scripts/interop.sh does it, into a GOPATH beside Debian's).
//
// Usage: client HOST:PORT COMMAND
//
// Commands (stdout is what the suite compares, stderr has notes; exit 0
// only if the call ended as expected):
//
//	story        TellStory for Peter S from SUSTech, every text_chunk to
//	             stdout; exit 0 if the call ends CANCELLED.
//	cancel       TellStory, cancelled after 3 messages; prints the bytes.
//	hello | chat-stream | collect | chat    the four call shapes.
//	health       Check: SERVING for "" and the three services, NOT_FOUND
//	             for an unknown one.
//	reflect      v1alpha reflection (grpc-go's own client stubs): list the
//	             services, fetch their files, build descriptors with
//	             protodesc, check each method's shape, and call SayHello
//	             with dynamicpb messages built from those descriptors.
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"interop/assistantpb"
	"interop/chatpb"
	"interop/hellopb"
)

const cancelAfter = 3

var chatTexts = []string{"Hello grpc!", "This is Bidirectional Streaming RPC!", "Is it working good?"}

type shape struct{ client, server bool }

var expected = map[string]map[string]shape{
	"assistant.AssistantService": {"TellStory": {false, true}, "ListStories": {false, false}},
	"Greeter":                    {"SayHello": {false, false}},
	"ChatService":                {"ChatStream": {false, true}, "CollectStream": {true, false}, "Chat": {true, true}},
}

var out = bufio.NewWriter(os.Stdout)

func note(format string, args ...interface{}) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func line(format string, args ...interface{}) { fmt.Fprintf(out, format+"\n", args...); out.Flush() }

func main() {
	if len(os.Args) != 3 {
		note("usage: client HOST:PORT COMMAND")
		os.Exit(2)
	}
	ctx, stop := context.WithTimeout(context.Background(), 60*time.Second)
	defer stop()
	conn, err := grpc.DialContext(ctx, os.Args[1], grpc.WithInsecure(), grpc.WithBlock())
	if err != nil {
		note("dial: %v", err)
		os.Exit(1)
	}
	defer conn.Close()
	commands := map[string]func(context.Context, *grpc.ClientConn) error{
		"story": story, "cancel": cancel, "hello": hello, "chat-stream": chatStream,
		"collect": collect, "chat": chat, "health": health, "reflect": reflect,
	}
	command, ok := commands[os.Args[2]]
	if !ok {
		note("unknown command %s", os.Args[2])
		os.Exit(2)
	}
	err = command(ctx, conn)
	out.Flush()
	if err != nil {
		note("%v", err)
		os.Exit(1)
	}
}

func story(ctx context.Context, conn *grpc.ClientConn) error {
	stream, err := assistantpb.NewAssistantServiceClient(conn).TellStory(ctx,
		&assistantpb.TellStoryRequest{UserName: "Peter S", Institution: "SUSTech"})
	if err != nil {
		return err
	}
	messages, bytes := 0, 0
	for {
		response, err := stream.Recv()
		if err != nil {
			code := codes.OK
			if err != io.EOF {
				code = status.Code(err)
			}
			note("status=%v details=%q messages=%d bytes=%d", code, status.Convert(err).Message(), messages, bytes)
			if code != codes.Canceled {
				return fmt.Errorf("the story ended with %v, not CANCELLED", code)
			}
			return nil
		}
		messages++
		bytes += len(response.TextChunk)
		out.Write(response.TextChunk)
	}
}

func cancel(ctx context.Context, conn *grpc.ClientConn) error {
	ctx, cancelCall := context.WithCancel(ctx)
	defer cancelCall()
	stream, err := assistantpb.NewAssistantServiceClient(conn).TellStory(ctx,
		&assistantpb.TellStoryRequest{UserName: "Peter S", Institution: "SUSTech"})
	if err != nil {
		return err
	}
	bytes := 0
	for i := 0; i < cancelAfter; i++ {
		response, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("message %d: %v", i+1, err)
		}
		bytes += len(response.TextChunk)
	}
	cancelCall()
	// Messages that arrived before the cancel may still be read; then the
	// stream ends with CANCELLED.
	for err == nil {
		_, err = stream.Recv()
	}
	note("cancelled after %d messages; code=%v", cancelAfter, status.Code(err))
	line("%d", bytes)
	if status.Code(err) != codes.Canceled {
		return fmt.Errorf("after the cancel: %v", err)
	}
	return nil
}

func hello(ctx context.Context, conn *grpc.ClientConn) error {
	response, err := hellopb.NewGreeterClient(conn).SayHello(ctx, &hellopb.HelloRequest{Name: "Hyeonghwan"})
	if err != nil {
		return err
	}
	line("%s", response.ResponseText)
	return nil
}

func chatStream(ctx context.Context, conn *grpc.ClientConn) error {
	stream, err := chatpb.NewChatServiceClient(conn).ChatStream(ctx, &chatpb.ChatMessage{MessageText: "start"})
	if err != nil {
		return err
	}
	for {
		message, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		line("Received message: %s", message.MessageText)
	}
}

func collect(ctx context.Context, conn *grpc.ClientConn) error {
	stream, err := chatpb.NewChatServiceClient(conn).CollectStream(ctx)
	if err != nil {
		return err
	}
	for _, text := range []string{"msg1", "msg2", "msg3"} {
		if err := stream.Send(&chatpb.ChatMessage{MessageText: text}); err != nil {
			return err
		}
	}
	answer, err := stream.CloseAndRecv()
	if err != nil {
		return err
	}
	line("%s", answer.MessageText)
	return nil
}

// chat sends each text after the reply to the one before.
func chat(ctx context.Context, conn *grpc.ClientConn) error {
	stream, err := chatpb.NewChatServiceClient(conn).Chat(ctx)
	if err != nil {
		return err
	}
	for _, text := range chatTexts {
		line("Client Message: %s", text)
		if err := stream.Send(&chatpb.ChatMessage{MessageText: text}); err != nil {
			return err
		}
		reply, err := stream.Recv()
		if err != nil {
			return err
		}
		line("Received message: %s", reply.MessageText)
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	if extra, err := stream.Recv(); err != io.EOF {
		return fmt.Errorf("after the last reply: %v %v", extra, err)
	}
	return nil
}

func health(ctx context.Context, conn *grpc.ClientConn) error {
	client := healthpb.NewHealthClient(conn)
	failures := 0
	check := func(service, want string) {
		got := ""
		response, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			got = strings.ToUpper(status.Code(err).String())
			if status.Code(err) == codes.NotFound {
				got = "NOT_FOUND"
			}
		} else {
			got = response.Status.String()
		}
		line("health %q: %s", service, got)
		if got != want {
			failures++
		}
	}
	check("", "SERVING")
	for _, service := range []string{"assistant.AssistantService", "Greeter", "ChatService"} {
		check(service, "SERVING")
	}
	check("no.such.Service", "NOT_FOUND")
	if failures > 0 {
		return fmt.Errorf("%d health answers were wrong", failures)
	}
	return nil
}

func reflect(ctx context.Context, conn *grpc.ClientConn) error {
	stream, err := rpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return err
	}
	ask := func(request *rpb.ServerReflectionRequest) (*rpb.ServerReflectionResponse, error) {
		if err := stream.Send(request); err != nil {
			return nil, err
		}
		return stream.Recv()
	}
	listed, err := ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}})
	if err != nil {
		return err
	}
	var services []string
	listedSet := map[string]bool{}
	for _, service := range listed.GetListServicesResponse().GetService() {
		services = append(services, service.Name)
		listedSet[service.Name] = true
	}
	sort.Strings(services)
	line("services: %s", strings.Join(services, " "))
	failures := 0
	for _, want := range []string{"assistant.AssistantService", "Greeter", "ChatService", "grpc.health.v1.Health"} {
		if !listedSet[want] {
			note("%s is not listed", want)
			failures++
		}
	}
	// Every file that defines one of our services, once each.
	files := map[string]*descriptorpb.FileDescriptorProto{}
	for _, symbol := range []string{"assistant.AssistantService", "Greeter", "ChatService"} {
		response, err := ask(&rpb.ServerReflectionRequest{
			MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: symbol}})
		if err != nil {
			return err
		}
		if e := response.GetErrorResponse(); e != nil {
			return fmt.Errorf("reflection of %s: %d %s", symbol, e.ErrorCode, e.ErrorMessage)
		}
		for _, raw := range response.GetFileDescriptorResponse().GetFileDescriptorProto() {
			file := &descriptorpb.FileDescriptorProto{}
			if err := proto.Unmarshal(raw, file); err != nil {
				return err
			}
			files[file.GetName()] = file
		}
	}
	stream.CloseSend()
	set := &descriptorpb.FileDescriptorSet{}
	for _, file := range files {
		set.File = append(set.File, file)
	}
	registry, err := protodesc.NewFiles(set)
	if err != nil {
		return fmt.Errorf("the reflected files do not build descriptors: %v", err)
	}
	for _, name := range []string{"assistant.AssistantService", "Greeter", "ChatService"} {
		found, err := registry.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			return err
		}
		methods := found.(protoreflect.ServiceDescriptor).Methods()
		var names []string
		for method := range expected[name] {
			names = append(names, method)
		}
		sort.Strings(names)
		for _, method := range names {
			want := expected[name][method]
			m := methods.ByName(protoreflect.Name(method))
			if m == nil {
				note("%s/%s is not described", name, method)
				failures++
				continue
			}
			got := shape{m.IsStreamingClient(), m.IsStreamingServer()}
			verdict := "ok"
			if got != want {
				verdict = "WRONG"
				failures++
			}
			line("%s/%s(%s) -> %s client_streaming=%v server_streaming=%v %s",
				name, method, m.Input().FullName(), m.Output().FullName(), got.client, got.server, verdict)
		}
	}
	sayHello := mustMethod(registry, "Greeter", "SayHello")
	request := dynamicpb.NewMessage(sayHello.Input())
	request.Set(sayHello.Input().Fields().ByName("name"), protoreflect.ValueOfString("reflection"))
	response := dynamicpb.NewMessage(sayHello.Output())
	if err := conn.Invoke(ctx, "/Greeter/SayHello", request, response); err != nil {
		return fmt.Errorf("SayHello through reflected descriptors: %v", err)
	}
	line("SayHello through reflected descriptors: %s",
		response.Get(sayHello.Output().Fields().ByName("response_text")).String())
	if failures > 0 {
		return fmt.Errorf("%d reflection answers were wrong", failures)
	}
	return nil
}

func mustMethod(registry interface {
	FindDescriptorByName(protoreflect.FullName) (protoreflect.Descriptor, error)
}, service, method string) protoreflect.MethodDescriptor {
	found, err := registry.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		panic(err)
	}
	return found.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(method))
}
