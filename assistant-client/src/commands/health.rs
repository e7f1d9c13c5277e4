//! The standard health check, `grpc.health.v1.Health/Check`.

use std::future::Future;

use tokio::io::AsyncWrite;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{
    ClientError,
    call::{self, CallArgs, Ending, print_line},
    connect::Connection,
};

/// Asks the standard health service about `service` (the whole server if
/// empty) and prints its status, such as `SERVING`. Anything but SERVING
/// is a failure, so scripts and probes can rely on the exit code.
pub async fn check_health<W: AsyncWrite + Unpin>(
    connection: Connection,
    service: String,
    options: &CallArgs,
    mut out: W,
    interrupt: impl Future<Output = ()>,
) -> Result<Ending, ClientError> {
    let mut client = HealthClient::new(connection.channel);
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
