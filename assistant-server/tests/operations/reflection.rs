//! Reflection v1 and v1alpha list and describe every service.

use super::*;

async fn reflect_v1(
    channel: Channel,
    request: tonic_reflection::pb::v1::server_reflection_request::MessageRequest,
) -> tonic_reflection::pb::v1::server_reflection_response::MessageResponse {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    };
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    responses
        .message()
        .await
        .unwrap()
        .unwrap()
        .message_response
        .unwrap()
}

#[tokio::test]
async fn reflection_v1_lists_and_describes_every_service() {
    use prost::Message;
    use tonic_reflection::pb::v1::{
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };

    let server = TestServer::start(fast_config()).await.unwrap();
    let MessageResponse::ListServicesResponse(list) = reflect_v1(
        server.channel().await,
        MessageRequest::ListServices(String::new()),
    )
    .await
    else {
        panic!("expected a list of services");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ChatService",
            "Greeter",
            "assistant.AssistantService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
        ]
    );

    for (symbol, method, server_streaming, client_streaming) in [
        ("assistant.AssistantService", "TellStory", true, false),
        ("Greeter", "SayHello", false, false),
        ("ChatService", "CollectStream", false, true),
        ("ChatService", "Chat", true, true),
        ("grpc.health.v1.Health", "Watch", true, false),
    ] {
        let MessageResponse::FileDescriptorResponse(files) = reflect_v1(
            server.channel().await,
            MessageRequest::FileContainingSymbol(symbol.into()),
        )
        .await
        else {
            panic!("expected descriptors for {symbol}");
        };
        let described = files.file_descriptor_proto.iter().any(|bytes| {
            let file = prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap();
            file.service.iter().flat_map(|s| &s.method).any(|m| {
                m.name() == method
                    && m.server_streaming() == server_streaming
                    && m.client_streaming() == client_streaming
            })
        });
        assert!(described, "{symbol}/{method} is not described");
    }
}

#[tokio::test]
async fn reflection_v1alpha_lists_every_service_too() {
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let server = TestServer::start(fast_config()).await.unwrap();
    let mut client = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a list of services");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in SERVICES.iter().chain(&["grpc.health.v1.Health"]) {
        assert!(
            names.iter().any(|n| n == service),
            "{service} missing from {names:?}"
        );
    }
}
