//! The standard gRPC server metrics, as go-grpc-middleware's Prometheus
//! provider names, labels and spells them, so that dashboards made for it
//! work unchanged.
//!
//! Series exist only for the methods the server serves, each registered at
//! start with every status code at zero (as the provider's
//! `InitializeMetrics` does): a client calling made-up paths cannot add
//! series, and `rate()` has a zero to start from.

use std::{collections::HashMap, sync::Arc, time::Duration};

use metrics::{Counter, Histogram};
use prost::Message;
use tonic::Code;

use super::Registrar;

/// Every status code, in the order of their numbers.
const CODES: [Code; 17] = [
    Code::Ok,
    Code::Cancelled,
    Code::Unknown,
    Code::InvalidArgument,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
    Code::Unauthenticated,
];

/// A status code as grpc-go's `codes.Code.String()` spells it, which is
/// what the provider puts in `grpc_code`.
pub(crate) fn go_code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// The call shape, as `grpc_type` names it.
fn grpc_type(client_streaming: bool, server_streaming: bool) -> &'static str {
    match (client_streaming, server_streaming) {
        (false, false) => "unary",
        (true, false) => "client_stream",
        (false, true) => "server_stream",
        (true, true) => "bidi_stream",
    }
}

/// The standard services the server also answers, which come from tonic's
/// crates rather than our `.proto` files: (service, method, client
/// streaming, server streaming).
const STANDARD: [(&str, &str, bool, bool); 4] = [
    ("grpc.health.v1.Health", "Check", false, false),
    ("grpc.health.v1.Health", "Watch", false, true),
    (
        "grpc.reflection.v1.ServerReflection",
        "ServerReflectionInfo",
        true,
        true,
    ),
    (
        "grpc.reflection.v1alpha.ServerReflection",
        "ServerReflectionInfo",
        true,
        true,
    ),
];

/// Every method the server serves: (service, method, client streaming,
/// server streaming). The application's come from its `.proto` files, so
/// a new RPC is counted without a change here.
fn served_methods() -> Vec<(String, String, bool, bool)> {
    let mut methods: Vec<_> = STANDARD
        .iter()
        .map(|&(service, method, cs, ss)| (service.to_owned(), method.to_owned(), cs, ss))
        .collect();
    // The descriptor set is compiled in; it always decodes.
    let files = prost_types::FileDescriptorSet::decode(assistant_proto::FILE_DESCRIPTOR_SET)
        .map(|set| set.file)
        .unwrap_or_default();
    for file in files {
        let package = file.package().to_owned();
        for service in &file.service {
            let service_name = match package.as_str() {
                "" => service.name().to_owned(),
                package => format!("{package}.{}", service.name()),
            };
            for method in &service.method {
                methods.push((
                    service_name.clone(),
                    method.name().to_owned(),
                    method.client_streaming(),
                    method.server_streaming(),
                ));
            }
        }
    }
    methods
}

/// One method's series.
#[derive(Debug)]
pub(crate) struct MethodMetrics {
    started: Counter,
    handled: [Counter; 17],
    received: Counter,
    sent: Counter,
    handling: Histogram,
}

impl MethodMetrics {
    /// A call of this method started.
    pub(crate) fn started(&self) {
        self.started.increment(1);
    }

    /// A call of this method ended with `code`, after `elapsed`.
    pub(crate) fn handled(&self, code: Code, elapsed: Duration) {
        self.handled[code as usize].increment(1);
        self.handling.record(elapsed.as_secs_f64());
    }

    /// The client sent `messages` more messages.
    pub(crate) fn received(&self, messages: u64) {
        self.received.increment(messages);
    }

    /// The server sent `messages` more messages.
    pub(crate) fn sent(&self, messages: u64) {
        self.sent.increment(messages);
    }
}

/// The series of every method served, by path (`/package.Service/Method`).
pub(super) fn register(registrar: &Registrar<'_>) -> HashMap<String, Arc<MethodMetrics>> {
    registrar.describe_counter(
        "grpc_server_started_total",
        "Total number of RPCs started on the server.",
    );
    registrar.describe_counter(
        "grpc_server_handled_total",
        "Total number of RPCs completed on the server, regardless of success or failure.",
    );
    registrar.describe_counter(
        "grpc_server_msg_received_total",
        "Total number of RPC stream messages received on the server.",
    );
    registrar.describe_counter(
        "grpc_server_msg_sent_total",
        "Total number of gRPC stream messages sent by the server.",
    );
    registrar.describe_histogram(
        "grpc_server_handling_seconds",
        "Histogram of response latency (seconds) of gRPC that had been application-level \
         handled by the server.",
    );
    served_methods()
        .into_iter()
        .map(|(service, method, client_streaming, server_streaming)| {
            let labels = [
                (
                    "grpc_type",
                    grpc_type(client_streaming, server_streaming).to_owned(),
                ),
                ("grpc_service", service.clone()),
                ("grpc_method", method.clone()),
            ];
            let with_code = |code: Code| {
                let mut labels = labels.to_vec();
                labels.push(("grpc_code", go_code_name(code).to_owned()));
                registrar.counter("grpc_server_handled_total", &labels)
            };
            let metrics = MethodMetrics {
                started: registrar.counter("grpc_server_started_total", &labels),
                handled: CODES.map(with_code),
                received: registrar.counter("grpc_server_msg_received_total", &labels),
                sent: registrar.counter("grpc_server_msg_sent_total", &labels),
                handling: registrar.histogram("grpc_server_handling_seconds", &labels),
            };
            (format!("/{service}/{method}"), Arc::new(metrics))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_in_the_order_of_their_numbers() {
        for (number, code) in CODES.iter().enumerate() {
            assert_eq!(*code as usize, number);
            assert_eq!(Code::from(number as i32), *code);
        }
    }

    #[test]
    fn codes_are_spelled_as_grpc_go_spells_them() {
        let spelled: Vec<_> = CODES.iter().map(|&code| go_code_name(code)).collect();
        assert_eq!(
            spelled,
            [
                "OK",
                "Canceled",
                "Unknown",
                "InvalidArgument",
                "DeadlineExceeded",
                "NotFound",
                "AlreadyExists",
                "PermissionDenied",
                "ResourceExhausted",
                "FailedPrecondition",
                "Aborted",
                "OutOfRange",
                "Unimplemented",
                "Internal",
                "Unavailable",
                "DataLoss",
                "Unauthenticated",
            ]
        );
    }

    #[test]
    fn every_served_method_has_its_shape() {
        let methods: HashMap<String, &str> = served_methods()
            .into_iter()
            .map(|(service, method, cs, ss)| (format!("/{service}/{method}"), grpc_type(cs, ss)))
            .collect();
        for (path, shape) in [
            ("/assistant.AssistantService/TellStory", "server_stream"),
            ("/Greeter/SayHello", "unary"),
            ("/ChatService/ChatStream", "server_stream"),
            ("/ChatService/CollectStream", "client_stream"),
            ("/ChatService/Chat", "bidi_stream"),
            ("/grpc.health.v1.Health/Watch", "server_stream"),
        ] {
            assert_eq!(methods.get(path).copied(), Some(shape), "{path}");
        }
    }
}
