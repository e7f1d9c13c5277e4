//! `ListStories`: the stories the server can tell.

use std::future::Future;

use assistant_proto::assistant::{
    ListStoriesRequest, assistant_service_client::AssistantServiceClient,
};
use tokio::io::AsyncWrite;

use crate::{
    ClientError,
    call::{self, CallArgs, Ending, print_line},
    connect::Connection,
};

/// Lists the server's stories to `out`, one per line: name, size in bytes,
/// and title, separated by tabs.
pub async fn list_stories<W: AsyncWrite + Unpin>(
    connection: Connection,
    options: &CallArgs,
    mut out: W,
    interrupt: impl Future<Output = ()>,
) -> Result<Ending, ClientError> {
    let mut client = call::compressed!(AssistantServiceClient::new(connection.channel), options);
    let timeout = options.timeout;
    let list = async {
        let stories = client
            .list_stories(call::request(ListStoriesRequest {}, timeout))
            .await?
            .into_inner()
            .stories;
        for story in stories {
            let line = format!("{}\t{}\t{}", story.name, story.size, story.title);
            print_line(&mut out, &line).await?;
        }
        Ok(())
    };
    call::run_reported(list, interrupt, timeout).await
}
