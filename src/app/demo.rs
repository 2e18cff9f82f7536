//! The demo pages that `fileupload serve` shows at `/`, `/iframe` and
//! `/resumable`: the reference browser client of the protocol, the
//! original's iframe transport, and a resumable (tus) upload with
//! tus-js-client's browser build. They are compiled into the binary so that they work offline
//! and always match the server they ship with.
//!
//! The pages use relative URLs only (`upload`, `upload/status`, `demo/…`),
//! so they keep working wherever the daemon's root is mounted.

use crate::model::http::HeaderValue;

/// What the demo responses allow the browser to load: this origin only.
/// Nothing is fetched from elsewhere, and no inline script or style is
/// needed, so a page that someone managed to inject markup into still could
/// not run it.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; frame-src 'self'; \
     form-action 'self'; base-uri 'none'; frame-ancestors 'self'";

/// One file of the demo, served from the binary (rendered by
/// [`crate::app::render::render`]).
#[derive(Debug)]
pub struct Page {
    pub(crate) path: &'static str,
    pub(crate) content_type: HeaderValue,
    pub(crate) body: &'static str,
}

const HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
const CSS: HeaderValue = HeaderValue::from_static("text/css; charset=utf-8");
const JS: HeaderValue = HeaderValue::from_static("text/javascript; charset=utf-8");

/// A page of the demo: its path, type, and the file under `assets/demo/`.
macro_rules! asset {
    ($path:literal, $type:expr, $file:literal) => {
        Page {
            path: $path,
            content_type: $type,
            body: include_str!(concat!("../../assets/demo/", $file)),
        }
    };
}

static ASSETS: &[Page] = &[
    asset!("/", HTML, "index.html"),
    asset!("/iframe", HTML, "iframe.html"),
    asset!("/demo/demo.css", CSS, "demo.css"),
    asset!(
        "/demo/icon.svg",
        HeaderValue::from_static("image/svg+xml"),
        "icon.svg"
    ),
    asset!("/demo/common.js", JS, "common.js"),
    asset!("/demo/page.js", JS, "page.js"),
    asset!("/demo/iframe.js", JS, "iframe.js"),
    asset!("/resumable", HTML, "resumable.html"),
    asset!("/demo/resumable.js", JS, "resumable.js"),
    // tus-js-client's browser build as its npm package ships it (the
    // version `tests/tus-clients/package-lock.json` locks, which
    // scripts/test-tus-clients.sh checks), under its MIT license
    // (`assets/demo/vendor/tus-js-client.LICENSE`).
    asset!("/demo/tus.min.js", JS, "vendor/tus.min.js"),
];

/// The demo's page for a request, or `None` when the request is not for
/// one of its pages (the core then answers as usual).
///
/// Only exact paths that the protocol's routes never take are served, so
/// the demo can neither shadow nor change the protocol.
pub(crate) fn page(method: &str, path: &str) -> Option<&'static Page> {
    if !matches!(method, "GET" | "HEAD") {
        return None;
    }
    ASSETS.iter().find(|a| a.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::render::render;
    use crate::app::{Answer, Outcome, Route, route};

    fn serve(method: &str, path: &str) -> Option<crate::model::http::Response> {
        let mut outcome = Outcome::new(Route::NotFound);
        outcome.answer = Ok(Answer::Page(page(method, path)?));
        Some(render(outcome))
    }

    #[test]
    fn index() {
        let index = serve("GET", "/").unwrap();
        assert_eq!(index.status, 200);
        assert_eq!(
            index.header("Content-Type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(index.header("Cache-Control"), Some("no-store"));
        assert_eq!(index.header("X-Content-Type-Options"), Some("nosniff"));
        assert_eq!(index.header("Referrer-Policy"), Some("no-referrer"));
        assert!(page("GET", "/iframe").is_some());
        assert!(page("POST", "/").is_none());
        assert!(page("GET", "/upload").is_none());
    }

    #[test]
    fn never_takes_a_protocol_route() {
        for asset in ASSETS {
            assert_eq!(
                route("GET", asset.path, ""),
                Route::NotFound,
                "{}",
                asset.path
            );
        }
    }

    #[test]
    fn serves_every_asset_with_its_policy() {
        for asset in ASSETS {
            for method in ["GET", "HEAD"] {
                let r = serve(method, asset.path).unwrap();
                assert_eq!(r.status, 200);
                assert_eq!(r.header("Content-Type"), Some(&*asset.content_type));
                assert_eq!(
                    r.header("Content-Security-Policy"),
                    Some(CONTENT_SECURITY_POLICY)
                );
                assert!(!r.body.is_empty());
            }
        }
        assert!(page("GET", "/index.html").is_none());
        assert!(page("GET", "/demo/").is_none());
        assert!(page("DELETE", "/iframe").is_none());
    }

    /// Every `src=` and `href=` in the pages names a file the demo serves:
    /// nothing comes from elsewhere, and nothing is missing.
    #[test]
    fn pages_load_only_their_own_files() {
        for page_path in ["/", "/iframe", "/resumable"] {
            let html = ASSETS.iter().find(|a| a.path == page_path).unwrap().body;
            let mut refs = 0;
            for attr in ["src=\"", "href=\""] {
                for (at, _) in html.match_indices(attr) {
                    let rest = &html[at + attr.len()..];
                    let target = &rest[..rest.find('"').unwrap()];
                    // Relative only, so the pages work wherever they are
                    // mounted (see the module documentation).
                    assert!(
                        !target.starts_with('/') && !target.contains("//"),
                        "{page_path} refers to {target}, which is not a relative URL"
                    );
                    let absolute = match target {
                        "." | "./" => "/".to_owned(),
                        t => format!("/{t}"),
                    };
                    assert!(
                        ASSETS.iter().any(|a| a.path == absolute),
                        "{page_path} refers to {target}, which the demo does not serve"
                    );
                    refs += 1;
                }
            }
            assert!(refs >= 3, "{page_path} loads its style and scripts");
        }
        // A third party's build, which names URL schemes in its URL parser
        // but loads nothing (the policy would refuse it).
        for asset in ASSETS.iter().filter(|a| a.path != "/demo/tus.min.js") {
            // The SVG namespace is a name, not an address; nothing else may
            // mention another host.
            let body = asset
                .body
                .replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
            for needle in ["http:", "https:", "//cdn", "@import", "url("] {
                assert!(!body.contains(needle), "{} mentions {needle}", asset.path);
            }
        }
    }
}
