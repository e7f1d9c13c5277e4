// The floor's work on grpc-go, as a baseline: a grpc-go server whose
// TellStory sends the greeting, alice.txt in 1024-byte chunks and the
// ending, with each message's offset and the story's version on the first,
// then ends the call with CANCELLED
// "story finished", byte for byte what the floor and
// `assistant-server --think-time 0 --chunk-delay 0` send.
//
// It has no generated code, so that it builds from Debian's grpc-go
// package alone (no protoc): the service is described by hand, and a
// codec registered under the name "proto" passes messages as bytes that
// this file encodes itself. The story is preloaded, as in the floor; each
// call encodes its messages, as generated code would.
//
// Build and run (bench/run.sh does both):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o server bench/go/server.go
//	./server -addr 127.0.0.1:50054 stories/alice.txt
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
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
)

const ending = "\nThat's it! Hope you like the story~\n"

// rawCodec replaces grpc-go's proto codec: messages are *[]byte.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) {
	return *v.(*[]byte), nil
}

func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	*v.(*[]byte) = append((*v.(*[]byte))[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// response encodes TellStoryResponse{text_chunk: text, offset: offset,
// story_version: version}.
func response(text []byte, offset uint64, version string) []byte {
	b := make([]byte, 0, len(text)+16+len(version))
	b = append(b, 0x0a)
	b = appendVarint(b, uint64(len(text)))
	b = append(b, text...)
	if offset != 0 {
		b = append(b, 0x10)
		b = appendVarint(b, offset)
	}
	if version != "" {
		b = append(b, 0x1a)
		b = appendVarint(b, uint64(len(version)))
		b = append(b, version...)
	}
	return b
}

// request decodes TellStoryRequest's user_name (1) and institution (2),
// skipping any other field.
func request(b []byte) (user, institution string, err error) {
	for len(b) > 0 {
		key, n := varint(b)
		if n == 0 {
			return "", "", fmt.Errorf("bad key")
		}
		b = b[n:]
		switch key & 7 {
		case 0:
			_, n = varint(b)
			if n == 0 {
				return "", "", fmt.Errorf("bad varint")
			}
			b = b[n:]
		case 2:
			l, n := varint(b)
			if n == 0 || uint64(len(b)-n) < l {
				return "", "", fmt.Errorf("bad length")
			}
			value := string(b[n : n+int(l)])
			b = b[n+int(l):]
			switch key >> 3 {
			case 1:
				user = value
			case 2:
				institution = value
			}
		default:
			return "", "", fmt.Errorf("unexpected wire type %d", key&7)
		}
	}
	return user, institution, nil
}

func varint(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}

type teller struct {
	chunks  [][]byte
	version string
}

func (t *teller) tellStory(_ interface{}, stream grpc.ServerStream) error {
	var in []byte
	if err := stream.RecvMsg(&in); err != nil {
		return err
	}
	user, institution, err := request(in)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	var offset uint64
	version := t.version
	send := func(text []byte) error {
		msg := response(text, offset, version)
		offset += uint64(len(text))
		version = ""
		return stream.SendMsg(&msg)
	}
	greeting := fmt.Sprintf("Hi %s from %s! Here's your story:\n\n", user, institution)
	if err := send([]byte(greeting)); err != nil {
		return err
	}
	for _, chunk := range t.chunks {
		if err := send(chunk); err != nil {
			return err
		}
	}
	if err := send([]byte(ending)); err != nil {
		return err
	}
	return status.Error(codes.Canceled, "story finished")
}

func main() {
	addr := flag.String("addr", "127.0.0.1:50054", "address to listen on")
	flag.Parse()
	if flag.NArg() != 1 {
		log.Fatal("usage: server [-addr HOST:PORT] STORY")
	}
	story, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		log.Fatal(err)
	}
	digest := sha256.Sum256(story)
	t := &teller{version: "sha256:" + hex.EncodeToString(digest[:16])}
	for start := 0; start < len(story); start += 1024 {
		end := start + 1024
		if end > len(story) {
			end = len(story)
		}
		t.chunks = append(t.chunks, story[start:end])
	}

	encoding.RegisterCodec(rawCodec{})
	server := grpc.NewServer()
	server.RegisterService(&grpc.ServiceDesc{
		ServiceName: "assistant.AssistantService",
		HandlerType: (*interface{})(nil),
		Streams: []grpc.StreamDesc{{
			StreamName:    "TellStory",
			Handler:       t.tellStory,
			ServerStreams: true,
		}},
		Metadata: "assistant.proto",
	}, struct{}{})
	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(server.Serve(listener))
}
