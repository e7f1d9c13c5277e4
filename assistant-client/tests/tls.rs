//! TLS end to end, with certificates made at run time (no keys are
//! committed): server TLS, mutual TLS, and the clear one-line errors for
//! an untrusted certificate, the wrong host, and an expired certificate.

use std::path::PathBuf;

use assistant_client::{Cli, ClientError, Ending};
use assistant_server::Config;
use assistant_test_support::{
    LogCapture, TestServer, WriteFile,
    fixtures::{fast_config, whole_story},
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

/// A certificate authority for one test, writing its files to a temporary
/// directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    name: &'static str,
}

impl Pki {
    fn new(name: &'static str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        dir.write("ca.pem", ca.pem());
        Self { dir, ca, name }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Issues a certificate for `hosts`, valid now unless `expired`, and
    /// returns the paths of its PEM certificate and key.
    fn issue(&self, file: &str, hosts: &[&str], expired: bool, client: bool) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(hosts.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{} {file}", self.name));
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        if expired {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        (
            self.dir.write(&format!("{file}.pem"), cert.pem()),
            self.dir
                .write(&format!("{file}-key.pem"), key.serialize_pem()),
        )
    }
}

async fn tls_server(cert: PathBuf, key: PathBuf, client_ca: Option<PathBuf>) -> TestServer {
    let config = Config {
        tls_cert: Some(cert),
        tls_key: Some(key),
        client_ca,
        ..fast_config()
    };
    TestServer::start(config).await.unwrap()
}

async fn run(server: &TestServer, flags: &[&str]) -> Result<(Vec<u8>, Ending), ClientError> {
    let url = format!("https://localhost:{}", server.addr.port());
    let argv = [
        "assistant-client",
        "--server",
        &url,
        "--buffer-size",
        "1024",
        "--step-sec",
        "0",
    ]
    .into_iter()
    .chain(flags.iter().copied());
    let mut out = Vec::new();
    let ending = assistant_client::run(
        Cli::try_parse_args(argv).unwrap(),
        &mut out,
        std::future::pending(),
    )
    .await?;
    Ok((out, ending))
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test]
async fn a_story_over_tls_arrives_whole() {
    let pki = Pki::new("tls");
    let (cert, key) = pki.issue("server", &["localhost", "127.0.0.1"], false, false);
    let server = tls_server(cert, key, None).await;
    let (out, ending) = run(&server, &["--ca-cert", path(&pki.ca())]).await.unwrap();
    assert!(matches!(ending, Ending::CancelledByServer), "{ending:?}");
    assert!(out == whole_story());
}

#[tokio::test]
async fn mutual_tls_admits_a_client_certificate_and_refuses_none() {
    let pki = Pki::new("mtls");
    let (cert, key) = pki.issue("server", &["localhost"], false, false);
    let (client_cert, client_key) = pki.issue("client", &["client"], false, true);
    let server = tls_server(cert, key, Some(pki.ca())).await;

    let ca = pki.ca();
    let (out, _) = run(
        &server,
        &[
            "--ca-cert",
            path(&ca),
            "--cert",
            path(&client_cert),
            "--key",
            path(&client_key),
        ],
    )
    .await
    .unwrap();
    assert!(out == whole_story());

    // Without a certificate, the server refuses. Under TLS 1.3 the client
    // learns it on its first call, not while connecting; either way it is
    // one clear error naming the certificate, and it is not retried.
    let (logs, _guard) = LogCapture::install();
    let refused = run(&server, &["--ca-cert", path(&ca), "--retries", "3"]).await;
    let message = match refused {
        Err(err) => err.to_string(),
        Ok((out, ending)) => {
            assert!(out.is_empty(), "no byte of the story without a certificate");
            let Ending::Failed(status) = &ending else {
                panic!("expected a failure, got {ending:?}");
            };
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
            assert_eq!(ending.exit_code(), 1);
            status.message().to_owned()
        }
    };
    assert!(!message.contains('\n'), "{message}");
    assert!(message.contains("CertificateRequired"), "{message}");
    assert!(
        !logs
            .messages()
            .iter()
            .any(|m| m.starts_with("Connection lost")),
        "a refused certificate is not a dropped connection"
    );
}

/// Connects with `--ca-cert ca` to a server showing `cert`, expecting a
/// TLS error that mentions `expected`.
async fn refused(cert: (PathBuf, PathBuf), ca: PathBuf, expected: &str) {
    let server = tls_server(cert.0, cert.1, None).await;
    let err = run(&server, &["--ca-cert", path(&ca)]).await.unwrap_err();
    assert!(matches!(err, ClientError::Tls { .. }), "{err:?}");
    let message = err.to_string();
    assert!(!message.contains('\n'), "{message}");
    assert!(message.contains(expected), "{message}");
}

#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_is_one_clear_error() {
    let theirs = Pki::new("untrusted");
    let ours = Pki::new("trusted");
    refused(
        theirs.issue("server", &["localhost"], false, false),
        ours.ca(),
        "UnknownIssuer",
    )
    .await;
}

#[tokio::test]
async fn a_certificate_for_another_host_is_one_clear_error() {
    let pki = Pki::new("wronghost");
    refused(
        pki.issue("server", &["example.com"], false, false),
        pki.ca(),
        "not valid for name",
    )
    .await;
}

#[tokio::test]
async fn an_expired_certificate_is_one_clear_error() {
    let pki = Pki::new("expired");
    refused(
        pki.issue("server", &["localhost"], true, false),
        pki.ca(),
        "expired",
    )
    .await;
}
