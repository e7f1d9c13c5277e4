// A stock grpc-go story server, on stubs that protoc-gen-go and
// protoc-gen-go-grpc generate from proto/assistant.proto at run time.
//
// Usage: server -addr HOST:PORT STORY_FILE
//
// TellStory sends the greeting, the story in 1024-byte chunks and the
// ending, as assistant-server does: each message carries its offset in the
// call's byte sequence, and the first one the story's version, so the
// client reads it as a server that numbers its messages (the Node and
// Python peers leave both unset, as the tutorial does). The call then ends
// with status CANCELLED "story finished", as the tutorial's does. Logs
// "Server started on port N" to stderr when ready.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"interop/assistantpb"
)

const ending = "\nThat's it! Hope you like the story~\n"

type teller struct {
	assistantpb.UnimplementedAssistantServiceServer
	story   []byte
	version string
}

func (t *teller) TellStory(request *assistantpb.TellStoryRequest, stream assistantpb.AssistantService_TellStoryServer) error {
	log.Printf("Received story-telling request from %s, %s.", request.UserName, request.Institution)
	var offset uint64
	version := t.version
	send := func(text []byte) error {
		err := stream.Send(&assistantpb.TellStoryResponse{TextChunk: text, Offset: offset, StoryVersion: version})
		offset += uint64(len(text))
		version = ""
		return err
	}
	if err := send([]byte(fmt.Sprintf("Hi %s from %s! Here's your story:\n\n", request.UserName, request.Institution))); err != nil {
		return err
	}
	for start := 0; start < len(t.story); start += 1024 {
		end := start + 1024
		if end > len(t.story) {
			end = len(t.story)
		}
		if err := send(t.story[start:end]); err != nil {
			return err
		}
	}
	if err := send([]byte(ending)); err != nil {
		return err
	}
	log.Printf("Finishes streaming for %s from %s.", request.UserName, request.Institution)
	return status.Error(codes.Canceled, "story finished")
}

func main() {
	addr := flag.String("addr", "127.0.0.1:50051", "address to listen on")
	flag.Parse()
	if flag.NArg() != 1 {
		log.Fatal("usage: server [-addr HOST:PORT] STORY_FILE")
	}
	story, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		log.Fatal(err)
	}
	digest := sha256.Sum256(story)
	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	server := grpc.NewServer()
	assistantpb.RegisterAssistantServiceServer(server, &teller{story: story, version: "sha256:" + hex.EncodeToString(digest[:16])})
	log.Printf("Server started on port %d", listener.Addr().(*net.TCPAddr).Port)
	log.Fatal(server.Serve(listener))
}
