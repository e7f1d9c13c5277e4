//! Why the client could not do what it was asked.

/// Why the client could not do what it was asked. Each one displays as a
/// single line for the user.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `--server` is not an address we can use.
    #[error("invalid --server `{server}`: {reason}")]
    BadAddress {
        /// What the user gave.
        server: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing answered at the server's address.
    #[error(
        "cannot reach the server at {server}: {reason}. Is it running? Start it with `assistant-server`."
    )]
    Unreachable {
        /// The address tried.
        server: String,
        /// The underlying cause, such as "Connection refused".
        reason: String,
    },
    /// The server's name does not resolve to an address.
    #[error("cannot reach the server at {server}: the name `{host}` does not resolve ({reason}).")]
    Unresolved {
        /// The address given.
        server: String,
        /// The name that does not resolve.
        host: String,
        /// What the resolver said.
        reason: String,
    },
    /// Something accepted the connection, but did not answer HTTP/2.
    #[error(
        "the server at {server} accepted the connection but did not answer as a gRPC server: \
         {reason}. Check that --server names a gRPC server, and http:// or https:// as it expects."
    )]
    NotHttp2 {
        /// The address tried.
        server: String,
        /// What went wrong.
        reason: String,
    },
    /// The TLS handshake failed: the server's certificate is not trusted,
    /// is for another host, or has expired; or the server refused ours.
    #[error(
        "TLS with {server} failed: {reason}. Check the server's certificate and --ca-cert (--cert, --key)."
    )]
    Tls {
        /// The address tried.
        server: String,
        /// What TLS said.
        reason: String,
    },
    /// A file the flags name cannot be used.
    #[error("{0}")]
    Setup(String),
    /// The `--timeline` chart could not be written.
    #[error("cannot write the timeline {}: {reason}", path.display())]
    Timeline {
        /// Where it was to go.
        path: std::path::PathBuf,
        /// Why it could not.
        reason: String,
    },
    /// Writing to stdout failed for a reason other than it closing.
    #[error("cannot write the story: {0}")]
    Output(#[source] std::io::Error),
}
