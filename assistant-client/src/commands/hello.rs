//! `SayHello`: the tutorial's unary call shape.

use std::future::Future;

use assistant_proto::hello_world::{HelloRequest, greeter_client::GreeterClient};
use tokio::io::AsyncWrite;

use crate::{
    ClientError,
    call::{self, CallArgs, Ending, print_line},
    connect::Connection,
};

/// Asks the server to greet `name`, and prints its answer to `out`:
/// `Hello, {name}!`.
pub async fn say_hello<W: AsyncWrite + Unpin>(
    connection: Connection,
    name: String,
    options: &CallArgs,
    mut out: W,
    interrupt: impl Future<Output = ()>,
) -> Result<Ending, ClientError> {
    let mut client = call::compressed!(GreeterClient::new(connection.channel), options);
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
