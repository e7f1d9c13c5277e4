//! The page itself: three files, built into the binary so that the server
//! needs nothing beside it. Their source is in `assistant-server/web/`;
//! `app.js` is the bundle built from it (see that folder's README).

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;
use tonic::body::Body;

/// One file of the page.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: [Asset; 3] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../../web/static/index.html"),
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../web/dist/app.js"),
    },
    Asset {
        path: "/app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../web/static/app.css"),
    },
];

/// The page may load only its own files and call only its own origin; no
/// other site may frame it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Whether `path` is one of the page's files.
pub(super) fn is_page(path: &str) -> bool {
    path == "/index.html" || ASSETS.iter().any(|asset| asset.path == path)
}

/// The answer to a request for one of the page's files.
pub(super) fn answer(method: &Method, path: &str) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "Use GET.\n");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let path = if path == "/index.html" { "/" } else { path };
    let Some(asset) = ASSETS.iter().find(|asset| asset.path == path) else {
        return plain(StatusCode::NOT_FOUND, "Not found.\n");
    };
    let mut response = Response::new(Body::new(Full::new(Bytes::from_static(asset.bytes))));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // A newer server's page is fetched again, never a stale script.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// A short plain-text answer.
pub(super) fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::new(Full::new(Bytes::from_static(text.as_bytes()))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_its_script_and_style_and_has_the_ids_tests_use() {
        let html = std::str::from_utf8(ASSETS[0].bytes).unwrap();
        assert!(html.contains(r#"src="app.js""#));
        assert!(html.contains(r#"href="app.css""#));
        for id in [
            "story",
            "status",
            "start",
            "cancel",
            "buffer_size",
            "step_sec",
        ] {
            assert!(html.contains(&format!(r#"id="{id}""#)), "{id}");
        }
    }

    #[test]
    fn files_are_answered_with_their_type_and_unknown_paths_are_not() {
        let js = answer(&Method::GET, "/app.js");
        assert_eq!(js.status(), StatusCode::OK);
        assert_eq!(
            js.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(answer(&Method::GET, "/index.html").status(), StatusCode::OK);
        assert_eq!(
            answer(&Method::GET, "/nothing").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            answer(&Method::DELETE, "/").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
