//! Unary calls: `SayHello`, the tutorial's unary call shape, and the
//! standard health check.

use std::future::Future;

use assistant_proto::hello_world::{HelloRequest, greeter_client::GreeterClient};
use tokio::io::AsyncWrite;
use tonic::transport::Channel;

use crate::{
    ClientError,
    call::{self, CallOptions, Ending, print_line},
};

/// Asks the server to greet `name`, and prints its answer to `out`:
/// `Hello, {name}!`.
pub async fn say_hello<W: AsyncWrite + Unpin>(
    channel: Channel,
    name: String,
    options: &CallOptions,
    mut out: W,
    interrupt: impl Future<Output = ()>,
) -> Result<Ending, ClientError> {
    let mut client = call::compressed!(GreeterClient::new(channel), options);
    let timeout = options.timeout;
    let hello = async {
        let response = client
            .say_hello(call::request(HelloRequest { name }, timeout))
            .await?
            .into_inner();
        print_line(&mut out, &response.response_text).await?;
        Ok(())
    };
    call::run_reported(hello, interrupt, timeout).await
}

/// Asks the standard health service about `service` (the whole server if
/// empty) and prints its status, such as `SERVING`. Anything but SERVING
/// is a failure, so scripts and probes can rely on the exit code.
pub async fn check_health<W: AsyncWrite + Unpin>(
    channel: Channel,
    service: String,
    options: &CallOptions,
    mut out: W,
    interrupt: impl Future<Output = ()>,
) -> Result<Ending, ClientError> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let mut client = HealthClient::new(channel);
    let timeout = options.timeout;
    let check = async {
        let status = client
            .check(call::request(HealthCheckRequest { service }, timeout))
            .await?
            .into_inner()
            .status();
        print_line(&mut out, status.as_str_name()).await?;
        if status != ServingStatus::Serving {
            return Err(tonic::Status::unavailable(format!(
                "the server reports {}",
                status.as_str_name()
            ))
            .into());
        }
        Ok(())
    };
    call::run_reported(check, interrupt, timeout).await
}
