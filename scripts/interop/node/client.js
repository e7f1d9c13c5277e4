// A stock grpc-js client for assistant-server, with stubs loaded from the
// .proto files at run time by @grpc/proto-loader (no generated code).
//
// Usage: node client.js PROTO_DIR HOST:PORT COMMAND [ARG]
//
// PROTO_DIR holds assistant.proto, hello_world.proto and messages.proto.
// Health uses grpc-health-check's health.proto; reflection uses the
// reflection.proto files (v1 and v1alpha) that @grpc/reflection ships.
//
// Commands (stdout is what the suite compares, stderr has notes; exit 0
// only if the call ended as expected):
//   story            TellStory for Peter S from SUSTech, read as fast as
//                    grpc-js delivers: every text_chunk to stdout. Exit 0
//                    if the call ends with status CANCELLED, or with the
//                    status named by EXPECT_STATUS (for example OK).
//   slow-story [MS]  the same, but a slow reader: after each message the
//                    stream is paused and resumed MS ms later (default 5).
//                    stderr ends with "messages=N bytes=B status=CODE".
//   cancel           TellStory, cancelled after 3 messages; prints the
//                    bytes received.
//   hello | chat-stream | collect | chat    the four call shapes
//   health           Check: SERVING for "" and the three services,
//                    NOT_FOUND for an unknown one.
//   reflect          v1 and v1alpha: list the services, fetch their files,
//                    load them with proto-loader, check each method's
//                    shape, and call SayHello through those descriptors.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const health = require('grpc-health-check');

const LOADER_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
const CHAT_TEXTS = ['Hello grpc!', 'This is Bidirectional Streaming RPC!', 'Is it working good?'];
const CANCEL_AFTER = 3;
const EXPECTED = {
  'assistant.AssistantService': { TellStory: [false, true], ListStories: [false, false] },
  Greeter: { SayHello: [false, false] },
  ChatService: { ChatStream: [false, true], CollectStream: [true, false], Chat: [true, true] },
};

const [protoDir, target, command, arg] = process.argv.slice(2);
if (!command) {
  console.error('usage: node client.js PROTO_DIR HOST:PORT COMMAND [ARG]');
  process.exit(2);
}
const credentials = grpc.credentials.createInsecure();
const note = (text) => process.stderr.write(text + '\n');
const out = (text) => process.stdout.write(text + '\n');
const statusName = (code) => Object.keys(grpc.status).find((name) => grpc.status[name] === code);

function load(file, includeDirs) {
  return grpc.loadPackageDefinition(protoLoader.loadSync(file, { ...LOADER_OPTIONS, includeDirs }));
}

function project(file) {
  return load(file, [protoDir]);
}

function fail(error) {
  note(`error: ${error.code !== undefined ? statusName(error.code) : ''} ${error.details || error.message}`);
  process.exitCode = 1;
}

// Reads the story; `delayMs` null reads as fast as grpc-js delivers.
function story(delayMs) {
  const { assistant } = project('assistant.proto');
  const client = new assistant.AssistantService(target, credentials);
  const call = client.TellStory({ user_name: 'Peter S', institution: 'SUSTech' });
  let messages = 0;
  let bytes = 0;
  call.on('data', (response) => {
    messages += 1;
    bytes += response.text_chunk.length;
    process.stdout.write(response.text_chunk);
    if (delayMs !== null) {
      call.pause();
      setTimeout(() => call.resume(), delayMs);
    }
  });
  let status = null;
  call.on('error', () => {}); // the status event below reports it
  call.on('status', (received) => {
    status = received;
    client.close();
  });
  // Messages grpc-js pushed before the status may still be in the stream's
  // buffer when 'status' fires, and are delivered after it: count at exit.
  process.on('exit', () => {
    const expected = process.env.EXPECT_STATUS || 'CANCELLED';
    const code = status ? statusName(status.code) : 'NONE';
    note(`messages=${messages} bytes=${bytes} status=${code} details=${JSON.stringify(status && status.details)}`);
    process.exitCode = code === expected ? 0 : 1;
  });
}

function cancel() {
  const { assistant } = project('assistant.proto');
  const client = new assistant.AssistantService(target, credentials);
  const call = client.TellStory({ user_name: 'Peter S', institution: 'SUSTech' });
  let messages = 0;
  let bytes = 0;
  call.on('data', (response) => {
    messages += 1;
    bytes += response.text_chunk.length;
    if (messages === CANCEL_AFTER) call.cancel();
  });
  call.on('error', () => {}); // the status event below reports it
  call.on('status', (status) => {
    // "Cancelled on client" tells our cancel from the server's own ending.
    note(`after ${messages} messages: status=${statusName(status.code)} details=${JSON.stringify(status.details)}`);
    out(String(bytes));
    process.exitCode = status.code === grpc.status.CANCELLED && status.details === 'Cancelled on client' ? 0 : 1;
    client.close();
  });
}

function hello() {
  const { Greeter } = project('hello_world.proto');
  const client = new Greeter(target, credentials);
  client.SayHello({ name: 'Hyeonghwan' }, (error, response) => {
    if (error) return fail(error);
    out(response.response_text);
    client.close();
  });
}

function chatStream() {
  const { ChatService } = project('messages.proto');
  const client = new ChatService(target, credentials);
  const call = client.ChatStream({ message_text: 'start' });
  call.on('data', (message) => out(`Received message: ${message.message_text}`));
  call.on('error', fail);
  call.on('end', () => client.close());
}

function collect() {
  const { ChatService } = project('messages.proto');
  const client = new ChatService(target, credentials);
  const call = client.CollectStream((error, response) => {
    if (error) return fail(error);
    out(response.message_text);
    client.close();
  });
  for (const text of ['msg1', 'msg2', 'msg3']) call.write({ message_text: text });
  call.end();
}

// Sends each text after the reply to the one before, printing the
// tutorial's lines.
function chat() {
  const { ChatService } = project('messages.proto');
  const client = new ChatService(target, credentials);
  const call = client.Chat();
  let next = 0;
  const send = () => {
    if (next === CHAT_TEXTS.length) return call.end();
    out(`Client Message: ${CHAT_TEXTS[next]}`);
    call.write({ message_text: CHAT_TEXTS[next] });
    next += 1;
  };
  call.on('data', (reply) => {
    out(`Received message: ${reply.message_text}`);
    send();
  });
  call.on('error', fail);
  call.on('end', () => client.close());
  send();
}

async function checkHealth() {
  const { grpc: { health: { v1 } } } = load(health.protoPath, []);
  const client = new v1.Health(target, credentials);
  const expected = { '': 'SERVING' };
  for (const name of Object.keys(EXPECTED)) expected[name] = 'SERVING';
  expected['no.such.Service'] = 'NOT_FOUND';
  let failures = 0;
  for (const [service, want] of Object.entries(expected)) {
    const got = await new Promise((resolve) => {
      client.Check({ service }, (error, response) =>
        resolve(error ? statusName(error.code) : response.status));
    });
    out(`health ${JSON.stringify(service)}: ${got}`);
    if (got !== want) failures += 1;
  }
  client.close();
  process.exitCode = failures ? 1 : 0;
}

// One reflection conversation: each request gets one response, in order.
function reflectionSession(version) {
  const reflectionDir = path.join(path.dirname(require.resolve('@grpc/reflection/package.json')), 'build', 'proto');
  const pkg = load(path.join('grpc', 'reflection', version, 'reflection.proto'), [reflectionDir]);
  const client = new pkg.grpc.reflection[version].ServerReflection(target, credentials);
  const call = client.ServerReflectionInfo();
  const waiting = [];
  call.on('data', (response) => waiting.shift().resolve(response));
  call.on('error', (error) => waiting.splice(0).forEach((w) => w.reject(error)));
  const ask = (request) => new Promise((resolve, reject) => {
    waiting.push({ resolve, reject });
    call.write({ host: '', ...request });
  });
  const close = () => { call.end(); client.close(); };
  return { ask, close };
}

function encodeVarint(value) {
  const bytes = [];
  while (value >= 0x80) { bytes.push((value & 0x7f) | 0x80); value = Math.floor(value / 128); }
  bytes.push(value);
  return Buffer.from(bytes);
}

async function reflect() {
  let failures = 0;
  for (const version of ['v1', 'v1alpha']) {
    const session = reflectionSession(version);
    const listed = await session.ask({ list_services: '' });
    const services = listed.list_services_response.service.map((s) => s.name);
    out(`${version} services: ${[...services].sort().join(' ')}`);
    for (const name of [...Object.keys(EXPECTED), 'grpc.health.v1.Health']) {
      if (!services.includes(name)) { note(`${version}: ${name} is not listed`); failures += 1; }
    }
    // The files that define our services (ours import no other file).
    const files = new Map();
    const wanted = Object.keys(EXPECTED).map((symbol) => ({ file_containing_symbol: symbol }));
    while (wanted.length) {
      const response = await session.ask(wanted.pop());
      if (response.error_response) throw new Error(`${version}: ${JSON.stringify(response.error_response)}`);
      for (const raw of response.file_descriptor_response.file_descriptor_proto) {
        // The same file may come back for several symbols: keep one.
        files.set(raw.toString('base64'), raw);
      }
    }
    session.close();
    // A FileDescriptorSet is `repeated FileDescriptorProto file = 1`.
    const set = Buffer.concat([...files.values()].flatMap((raw) => [Buffer.from([0x0a]), encodeVarint(raw.length), raw]));
    const definition = protoLoader.loadFileDescriptorSetFromBuffer(set, LOADER_OPTIONS);
    for (const [service, methods] of Object.entries(EXPECTED)) {
      const described = definition[service];
      if (!described) { note(`${version}: ${service} is not described`); failures += 1; continue; }
      for (const [method, [clientStreaming, serverStreaming]] of Object.entries(methods)) {
        const m = described[method];
        const ok = m && m.requestStream === clientStreaming && m.responseStream === serverStreaming;
        out(`${version} ${m ? m.path : service + '/' + method}(${m ? m.requestType.type.name : '?'}) -> ` +
            `${m ? m.responseType.type.name : '?'} client_streaming=${m && m.requestStream} ` +
            `server_streaming=${m && m.responseStream} ${ok ? 'ok' : 'WRONG'}`);
        if (!ok) failures += 1;
      }
    }
    const { Greeter } = grpc.loadPackageDefinition(definition);
    const client = new Greeter(target, credentials);
    const answer = await new Promise((resolve, reject) =>
      client.SayHello({ name: 'reflection' }, (error, response) => (error ? reject(error) : resolve(response))));
    client.close();
    out(`${version} SayHello through reflected descriptors: ${answer.response_text}`);
  }
  process.exitCode = failures ? 1 : 0;
}

const commands = {
  story: () => story(null),
  'slow-story': () => story(Number(arg || 5)),
  cancel,
  hello,
  'chat-stream': chatStream,
  collect,
  chat,
  health: () => checkHealth().catch(fail),
  reflect: () => reflect().catch(fail),
};
if (!commands[command]) {
  console.error(`unknown command ${command}`);
  process.exit(2);
}
commands[command]();
