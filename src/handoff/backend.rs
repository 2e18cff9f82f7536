//! `--backend`: the application is an HTTP application at a URL; the
//! description is `POST`ed to it with `ureq`, and its answer relayed.

use std::time::Duration;

use super::{MAX_ANSWER, relayed_header};
use crate::model::error::{Error, ErrorKind, Result};
use crate::model::http::{Request, Response};

/// How long an application may take to connect and to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(600);

/// Headers of a connection, not of a message: never relayed.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
];

/// An HTTP application at a URL, reached with `ureq`.
#[derive(Debug)]
pub struct Backend {
    url: String,
    agent: ureq::Agent,
}

impl Backend {
    /// A backend at `url` (`http://…`).
    pub fn new(url: &str) -> std::result::Result<Backend, String> {
        if !url.starts_with("http://") {
            return Err(format!("--backend {url}: only http:// URLs are supported"));
        }
        url.parse::<ureq::http::Uri>()
            .map_err(|e| format!("--backend {url}: {e}"))?;
        let config = ureq::Agent::config_builder()
            // The application's answer, whatever its status, is relayed.
            .http_status_as_error(false)
            // Under CGI, HTTP_PROXY is the client's `Proxy:` header
            // (httpoxy, CVE-2016-5385): never take a proxy from the
            // environment.
            .proxy(None)
            // A redirect is for the browser to follow, not for us.
            .max_redirects(0)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(ANSWER_TIMEOUT))
            .build();
        Ok(Backend {
            url: url.to_owned(),
            agent: config.into(),
        })
    }

    /// Gives the application a request as it came, body and all, but for
    /// the headers of the connection.
    pub(crate) fn pass(&self, request: Request<'_>) -> Result<Response> {
        let mut headers: Vec<(String, String)> = request
            .headers
            .iter()
            .filter(|(n, _)| !HOP_BY_HOP.contains(&n.to_ascii_lowercase().as_str()))
            .cloned()
            .collect();
        if let Some(length) = request.content_length {
            headers.push(("Content-Length".into(), length.to_string()));
        }
        self.post(&headers, ureq::SendBody::from_reader(request.body))
    }

    pub(crate) fn post(
        &self,
        headers: &[(String, String)],
        body: impl ureq::AsSendBody,
    ) -> Result<Response> {
        let mut request = self.agent.post(&self.url);
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let answer = request
            .send(body)
            .map_err(|e| unreachable_app(&self.url, &e))?;
        let status = answer.status().as_u16();
        let headers = answer
            .headers()
            .iter()
            .filter(|(n, _)| !HOP_BY_HOP.contains(&n.as_str()))
            .filter_map(|(n, v)| relayed_header(n.as_str(), &String::from_utf8_lossy(v.as_bytes())))
            .collect();
        let body = answer
            .into_body()
            .into_with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(|e| unreachable_app(&self.url, &e))?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// The client learns that the application failed; where it is and why
/// go only to the log.
fn unreachable_app(url: &str, e: &dyn std::fmt::Display) -> Error {
    crate::log::say!("the application at {url} failed: {e}");
    Error::new(ErrorKind::BadGateway, "the application cannot be reached")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_urls() {
        assert!(Backend::new("http://127.0.0.1:1/x").is_ok());
        assert!(Backend::new("https://example.invalid/").is_err());
        assert!(Backend::new("ftp://x").is_err());
    }
}
