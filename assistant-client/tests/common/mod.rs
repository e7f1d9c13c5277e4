//! What the client's end-to-end tests share, beyond the workspace's test
//! support.

use assistant_client::connect::{ConnectArgs, Connection};
use assistant_test_support::TestServer;

/// A connection to `server`, with the client's default settings.
pub(crate) async fn connect(server: &TestServer) -> Connection {
    assistant_client::connect::connect(&ConnectArgs::to(server.url()), None)
        .await
        .unwrap()
}
