//! The `Greeter` service: the unary call shape.

use assistant_proto::hello_world::{HelloRequest, HelloResponse, greeter_server::Greeter};
use tonic::{Request, Response, Status};

use super::validate;

/// Answers `SayHello` with `Hello, {name}!`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Greeting;

#[tonic::async_trait]
impl Greeter for Greeting {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloResponse>, Status> {
        let HelloRequest { name } = request.into_inner();
        validate::name("name", &name)?;
        Ok(Response::new(HelloResponse {
            response_text: format!("Hello, {name}!"),
        }))
    }
}
