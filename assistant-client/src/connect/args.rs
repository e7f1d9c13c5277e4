//! `--server` and the flags about trusting it, and where they point.

use std::{path::PathBuf, time::Duration};

use http::uri::{Authority, Scheme};

use super::DEFAULT_SERVER;
use crate::ClientError;

/// Where the server is, and how to trust it: flags every subcommand takes.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Connecting (any command)")]
pub struct ConnectArgs {
    /// The server: a URL such as http://127.0.0.1:50051 (https:// for
    /// TLS), or a bare host:port.
    #[arg(
        long,
        global = true,
        default_value = DEFAULT_SERVER,
        value_name = "URL"
    )]
    pub server: String,

    /// For an https:// server: trust only this PEM CA, instead of the
    /// system's roots.
    #[arg(long, global = true, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,

    /// For mutual TLS: this PEM client certificate; needs --key.
    #[arg(long, global = true, value_name = "PEM", requires = "key")]
    pub cert: Option<PathBuf>,

    /// The PEM private key of --cert.
    #[arg(long, global = true, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,

    /// Give up connecting after this long: TCP, TLS, and the server's
    /// first HTTP/2 answer.
    #[arg(long, allow_negative_numbers = true, global = true, default_value = "5", value_name = "SECONDS",
          value_parser = assistant_proto::seconds::parse)]
    pub connect_timeout: Duration,

    /// While a call waits on a silent server, ping it (HTTP/2 PING) after
    /// this long; 0 never pings. A dead server is noticed within about
    /// --keepalive-interval + --keepalive-timeout.
    #[arg(long, allow_negative_numbers = true, global = true, default_value = "10", value_name = "SECONDS",
          value_parser = assistant_proto::seconds::parse)]
    pub keepalive_interval: Duration,

    /// Close the connection when a ping gets no answer in this long.
    #[arg(long, allow_negative_numbers = true, global = true, default_value = "10", value_name = "SECONDS",
          value_parser = assistant_proto::seconds::parse)]
    pub keepalive_timeout: Duration,
}

/// The defaults of the flags about connecting.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(10);

impl Default for ConnectArgs {
    fn default() -> Self {
        Self {
            server: DEFAULT_SERVER.into(),
            ca_cert: None,
            cert: None,
            key: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            keepalive_interval: DEFAULT_KEEPALIVE,
            keepalive_timeout: DEFAULT_KEEPALIVE,
        }
    }
}

impl ConnectArgs {
    /// The flags for `server`, with no TLS files.
    pub fn to(server: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            ..Self::default()
        }
    }

    fn any_tls(&self) -> bool {
        self.ca_cert.is_some() || self.cert.is_some()
    }

    /// `--server` as a URL: a bare `host:port` gets `http://` in front.
    fn url(&self) -> String {
        if self.server.contains("://") {
            self.server.clone()
        } else {
            format!("http://{}", self.server)
        }
    }

    /// Parses `--server`: a URL such as `http://127.0.0.1:50051` or
    /// `https://assistant.example:443`, or a bare `host:port` as the
    /// tutorial writes it, taken as plaintext HTTP/2.
    pub fn target(&self) -> Result<Target, ClientError> {
        let bad = |reason: String| ClientError::BadAddress {
            server: self.server.clone(),
            reason,
        };
        let uri: http::Uri = self.url().parse().map_err(|err| bad(format!("{err}")))?;
        let scheme = match uri.scheme_str() {
            Some("http") if self.any_tls() => {
                return Err(bad(
                    "TLS flags (--ca-cert, --cert) need an https:// server".into()
                ));
            }
            Some("http") => Scheme::HTTP,
            Some("https") => Scheme::HTTPS,
            Some(other) => {
                return Err(bad(format!(
                    "the scheme `{other}` is not supported; use http:// or https://"
                )));
            }
            None => return Err(bad("it has no scheme".into())),
        };
        let authority = match uri.authority() {
            Some(authority) if !authority.host().is_empty() => authority.clone(),
            _ => return Err(bad("it has no host".into())),
        };
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(bad(format!(
                "the path `{}` means nothing here; give only the scheme, host and port",
                uri.path()
            )));
        }
        let port = authority
            .port_u16()
            .unwrap_or(if scheme == Scheme::HTTPS { 443 } else { 80 });
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok(Target {
            url: format!("{scheme}://{authority}"),
            scheme,
            authority,
            host,
            port,
        })
    }
}

/// Where `--server` points.
#[derive(Debug, Clone)]
pub struct Target {
    /// As the user would write it: `http://host:port`.
    pub url: String,
    pub(super) scheme: Scheme,
    pub(super) authority: Authority,
    pub(super) host: String,
    pub(super) port: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_host_and_port_means_plaintext() {
        let bare = ConnectArgs::to("localhost:50051").target().unwrap();
        assert_eq!(bare.url, "http://localhost:50051");
        assert_eq!((bare.host.as_str(), bare.port), ("localhost", 50051));
        let full = ConnectArgs::to("https://[::1]").target().unwrap();
        assert_eq!((full.host.as_str(), full.port), ("::1", 443));
    }

    #[test]
    fn unusable_addresses_are_rejected_clearly() {
        let with_ca = ConnectArgs {
            ca_cert: Some("ca.pem".into()),
            ..ConnectArgs::to("http://localhost:1")
        };
        for args in [
            ConnectArgs::to(""),
            ConnectArgs::to("ftp://host:1"),
            ConnectArgs::to("http://"),
            ConnectArgs::to("exa mple:1"),
            ConnectArgs::to("http://localhost:1/some/path"),
            with_ca,
        ] {
            let err = args.target().unwrap_err();
            assert!(
                matches!(err, ClientError::BadAddress { .. }),
                "{:?}: {err}",
                args.server
            );
        }
    }
}
