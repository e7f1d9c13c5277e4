// A stock grpc-js story server: the tutorial's server, on Node.
//
// Usage: node server.js PROTO_FILE HOST:PORT STORY_FILE
//
// PROTO_FILE is the tutorial's two-field assistant.proto, loaded at run
// time by @grpc/proto-loader. TellStory sends the greeting, the story in
// 1024-byte chunks and the ending, setting only text_chunk (no offset, no
// story_version), then ends the call with status CANCELLED "story
// finished", as the tutorial does. Logs "Server started on port N" to
// stderr when ready.
'use strict';

const fs = require('fs');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const [protoFile, address, storyFile] = process.argv.slice(2);
const { assistant } = grpc.loadPackageDefinition(
  protoLoader.loadSync(protoFile, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true }),
);
const story = fs.readFileSync(storyFile);

function tellStory(call) {
  const { user_name: user, institution } = call.request;
  console.error(`Received story-telling request from ${user}, ${institution}.`);
  call.write({ text_chunk: Buffer.from(`Hi ${user} from ${institution}! Here's your story:\n\n`) });
  for (let start = 0; start < story.length; start += 1024) {
    call.write({ text_chunk: story.subarray(start, start + 1024) });
  }
  call.write({ text_chunk: Buffer.from("\nThat's it! Hope you like the story~\n") });
  console.error(`Finishes streaming for ${user} from ${institution}.`);
  call.emit('error', { code: grpc.status.CANCELLED, details: 'story finished' });
}

const server = new grpc.Server();
server.addService(assistant.AssistantService.service, { TellStory: tellStory });
server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) {
    console.error(error.message);
    process.exit(1);
  }
  console.error(`Server started on port ${port}`);
});
