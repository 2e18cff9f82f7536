//! The protocol-neutral request and response models that every front end
//! (daemon, CGI, FastCGI) translates to and from, with the small pieces of
//! HTTP they need: query strings, `Accept`, JSONP names, HTML escaping.

use std::borrow::Cow;
use std::io::Read;

/// A request as the core sees it, whatever carried it.
pub struct Request<'a> {
    /// `GET`, `POST`, … (upper case).
    pub method: String,
    /// The path, without the query string, not percent-decoded.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// Header names (any case) and values.
    pub headers: Vec<(String, String)>,
    /// The body's length when the client declared one (`None` when chunked).
    pub content_length: Option<u64>,
    /// The body.
    pub body: &'a mut dyn Read,
    /// Wakes a read of `body` blocked on a silent client, from another
    /// thread: the read then ends (as at the end of input). The core calls
    /// it when another request takes over the tus upload this request
    /// writes (see the pool's `resumable` module). `None` where the front end
    /// has no such way: the request then stops at its next read that
    /// returns.
    pub interrupt: Option<&'a (dyn Fn() + Sync)>,
}

impl Request<'_> {
    /// The first header of this name (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The query string's parameters, percent-decoded.
    pub(crate) fn params(&self) -> Vec<(String, String)> {
        parse_query(&self.query)
    }
}

/// Why a header name or value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidHeader {
    /// A name that is empty or has a byte that is not a token character
    /// (RFC 9110 section 5.1).
    Name,
    /// A value with CR, LF or NUL, which would end the field or the head
    /// early (RFC 9110 section 5.5).
    Value,
}

impl std::fmt::Display for InvalidHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InvalidHeader::Name => "a header name that is not a token",
            InvalidHeader::Value => "a header value with CR, LF or NUL",
        })
    }
}

impl std::error::Error for InvalidHeader {}

/// A header the program itself built that fails the check is its own
/// fault: 500.
impl From<InvalidHeader> for crate::model::error::Error {
    fn from(e: InvalidHeader) -> Self {
        crate::model::error::Error::internal(format!("cannot answer with {e}"))
    }
}

/// Whether `b` may stand in a header name: RFC 9110's `tchar`.
const fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

const fn valid_name(name: &[u8]) -> bool {
    if name.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < name.len() {
        if !is_token_byte(name[i]) {
            return false;
        }
        i += 1;
    }
    true
}

const fn valid_value(value: &[u8]) -> bool {
    let mut i = 0;
    while i < value.len() {
        if matches!(value[i], b'\r' | b'\n' | 0) {
            return false;
        }
        i += 1;
    }
    true
}

/// A header's text type: the text checked by `$valid` (refused as
/// `$invalid`), from a `const` (checked when the program is compiled) or at
/// run time; read as a `str`.
macro_rules! header_text {
    ($(#[$doc:meta])* $name:ident, $valid:ident, $invalid:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(Cow<'static, str>);

        impl $name {
            /// Text known when the program is compiled. Meant for `const`
            /// items, where invalid text stops the build.
            pub const fn from_static(text: &'static str) -> $name {
                assert!($valid(text.as_bytes()), "invalid header text");
                $name(Cow::Borrowed(text))
            }

            /// Checks text received or built at run time.
            pub fn new(text: impl Into<String>) -> Result<$name, InvalidHeader> {
                let text = text.into();
                if $valid(text.as_bytes()) {
                    Ok($name(Cow::Owned(text)))
                } else {
                    Err($invalid)
                }
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

header_text!(
    /// A response header's name: a non-empty token, so that writing it can
    /// never break a response's head.
    ///
    /// ```
    /// use fileupload::model::http::HeaderName;
    /// assert!(HeaderName::new("X-Progress-ID").is_ok());
    /// assert!(HeaderName::new("X-A: b").is_err());
    /// assert!(HeaderName::new("").is_err());
    /// ```
    HeaderName,
    valid_name,
    InvalidHeader::Name
);

header_text!(
    /// A response header's value: without CR, LF or NUL, so that no value,
    /// a client-supplied one included, can end the field and start another.
    ///
    /// ```
    /// use fileupload::model::http::HeaderValue;
    /// assert!(HeaderValue::new("text/plain; charset=utf-8").is_ok());
    /// assert!(HeaderValue::new("x\r\nSet-Cookie: a=b").is_err());
    /// assert!(HeaderValue::new("a\0b").is_err());
    /// ```
    HeaderValue,
    valid_value,
    InvalidHeader::Value
);

/// The header names the core answers with.
pub(crate) mod header {
    use super::HeaderName;

    /// Declares header names, each documented by its spelling.
    macro_rules! header_names {
        ($($name:ident = $text:literal,)*) => {
            $(#[doc = concat!("`", $text, "`.")]
            pub const $name: HeaderName = HeaderName::from_static($text);)*
        };
    }

    header_names! {
        ACCESS_CONTROL_ALLOW_HEADERS = "Access-Control-Allow-Headers",
        ACCESS_CONTROL_ALLOW_METHODS = "Access-Control-Allow-Methods",
        ACCESS_CONTROL_ALLOW_ORIGIN = "Access-Control-Allow-Origin",
        ACCESS_CONTROL_EXPOSE_HEADERS = "Access-Control-Expose-Headers",
        ACCESS_CONTROL_MAX_AGE = "Access-Control-Max-Age",
        ALLOW = "Allow",
        CACHE_CONTROL = "Cache-Control",
        CONTENT_SECURITY_POLICY = "Content-Security-Policy",
        CONTENT_TYPE = "Content-Type",
        LOCATION = "Location",
        REFERRER_POLICY = "Referrer-Policy",
        RETRY_AFTER = "Retry-After",
        TUS_CHECKSUM_ALGORITHM = "Tus-Checksum-Algorithm",
        TUS_EXTENSION = "Tus-Extension",
        TUS_MAX_SIZE = "Tus-Max-Size",
        TUS_RESUMABLE = "Tus-Resumable",
        TUS_VERSION = "Tus-Version",
        UPLOAD_CONCAT = "Upload-Concat",
        UPLOAD_DEFER_LENGTH = "Upload-Defer-Length",
        UPLOAD_EXPIRES = "Upload-Expires",
        UPLOAD_LENGTH = "Upload-Length",
        UPLOAD_METADATA = "Upload-Metadata",
        UPLOAD_OFFSET = "Upload-Offset",
        VARY = "Vary",
        X_CONTENT_TYPE_OPTIONS = "X-Content-Type-Options",
    }
}

/// Checks an origin given to `--cors-origin`: a serialized origin as a
/// browser sends it in `Origin` (RFC 6454 section 6.1), `http://` or
/// `https://`, a host, perhaps a port, and nothing after (no path, no
/// slash, no `*`), so that it can only be matched exactly and answered as
/// a header value.
///
/// ```
/// use fileupload::model::http::parse_origin;
/// assert_eq!(parse_origin("https://app.example:8443").unwrap().as_str(), "https://app.example:8443");
/// assert!(parse_origin("https://app.example/").is_err());
/// assert!(parse_origin("*").is_err());
/// assert!(parse_origin("https://a.example\r\nX: y").is_err());
/// ```
pub fn parse_origin(text: &str) -> Result<HeaderValue, String> {
    let host = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .unwrap_or("");
    let fits = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']');
    if host.is_empty() || !host.bytes().all(fits) {
        return Err(format!(
            "{text:?} is not an origin: give scheme://host[:port], e.g. https://app.example"
        ));
    }
    HeaderValue::new(text).map_err(|e| e.to_string())
}

/// A response as every front end writes it: the core's answer rendered
/// (see [`crate::app::render`]), or an application's relayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// Headers, `Content-Type` among them; typed, so none can break the
    /// head it is written in.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a body of the given content type, never cached.
    pub fn new(status: u16, content_type: HeaderValue, body: Vec<u8>) -> Response {
        const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
        Response {
            status,
            headers: vec![
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, NO_STORE),
            ],
            body,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Response {
        self.headers.push((name, value));
        self
    }

    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Whether an answer of this status has no content: neither a body nor
/// `Content-Length` (RFC 9110 sections 8.6 and 15.3.5: 1xx and 204 must
/// not send one), whatever an application gave with it.
pub(crate) fn without_content(status: u16) -> bool {
    matches!(status, 100..=199 | 204)
}

/// The reason phrase of a status code: the core's own, and those only an
/// application answers with.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        423 => "Locked",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        460 => "Checksum Mismatch",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "Unknown",
    }
}

/// Splits a query string into decoded name/value pairs; a name without `=`
/// has an empty value.
///
/// ```
/// use fileupload::model::http::parse_query;
/// assert_eq!(
///     parse_query("X-Progress-ID=a%2Db&status&x=1+2"),
///     vec![("X-Progress-ID".into(), "a-b".into()), ("status".into(), "".into()), ("x".into(), "1 2".into())]
/// );
/// ```
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(n), percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+`; a malformed escape is kept as it is.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(h << 4 | l);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    // The decoded bytes become the string as they are when they are UTF-8
    // (a status request decodes its query on every poll): no second copy.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The value of one hex digit.
pub(crate) fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Whether the client, by its `Accept` header, prefers `text/html` over
/// `application/json` (a browser posting a plain form does; `curl` and
/// `fetch` do not).
///
/// ```
/// use fileupload::model::http::prefers_html;
/// assert!(prefers_html("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"));
/// assert!(!prefers_html("*/*"));
/// assert!(!prefers_html("application/json, text/html;q=0.5"));
/// ```
pub fn prefers_html(accept: &str) -> bool {
    quality(accept, "text", "html") > quality(accept, "application", "json")
}

/// The quality the `Accept` header gives a media type: its most specific
/// matching range decides.
fn quality(accept: &str, kind: &str, sub: &str) -> f32 {
    let mut best: Option<(u8, f32)> = None;
    for range in accept.split(',') {
        let mut params = range.split(';');
        let media = params.next().unwrap_or("").trim();
        let Some((k, s)) = media.split_once('/') else {
            continue;
        };
        let specificity = match (k.trim(), s.trim()) {
            (k, s) if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(sub) => 3,
            (k, "*") if k.eq_ignore_ascii_case(kind) => 2,
            ("*", "*") => 1,
            _ => continue,
        };
        let q = params
            .filter_map(|p| p.trim().strip_prefix("q="))
            .filter_map(|q| q.trim().parse::<f32>().ok())
            .next()
            .unwrap_or(1.0);
        if best.is_none_or(|(sp, _)| specificity > sp) {
            best = Some((specificity, q));
        }
    }
    best.map(|(_, q)| q).unwrap_or(0.0)
}

/// Whether a JSONP callback name is acceptable:
/// `^[A-Za-z_$][A-Za-z0-9_$.]{0,63}$`.
///
/// ```
/// use fileupload::model::http::valid_callback;
/// assert!(valid_callback("jQuery123_456.cb"));
/// assert!(!valid_callback("alert(1)//"));
/// assert!(!valid_callback("1abc"));
/// ```
pub fn valid_callback(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b'$')
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'.')
}

/// Escapes text for an HTML attribute value in double quotes (and for text).
///
/// ```
/// use fileupload::model::http::escape_html;
/// assert_eq!(escape_html(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
/// ```
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        for (encoded, decoded) in [
            ("%2e%2E", ".."),
            ("a%", "a%"),
            ("a%2", "a%2"),
            ("a%zz", "a%zz"),
            ("%00", "\0"),
            ("%C3%A9", "é"),
            // Not UTF-8: replaced, the rest kept.
            ("a%FFb%C3", "a\u{FFFD}b\u{FFFD}"),
        ] {
            assert_eq!(percent_decode(encoded), decoded, "{encoded}");
        }
    }

    #[test]
    fn header_names_are_tokens() {
        for bad in ["", "A B", "A:B", "A\r", "\u{e9}", "A\0"] {
            assert_eq!(HeaderName::new(bad), Err(InvalidHeader::Name), "{bad:?}");
        }
        assert_eq!(HeaderName::new("X-Ok_1").unwrap().as_str(), "X-Ok_1");
    }

    #[test]
    fn header_values_cannot_split() {
        for bad in ["a\rb", "a\nb", "a\0b", "\r\n", "x\r\nSet-Cookie: a=b"] {
            assert_eq!(HeaderValue::new(bad), Err(InvalidHeader::Value), "{bad:?}");
        }
        // What a value may hold: tabs, spaces, text beyond ASCII.
        assert_eq!(&*HeaderValue::new("a\tb \u{e9}").unwrap(), "a\tb \u{e9}");
    }

    #[test]
    fn accept() {
        assert!(prefers_html("text/html"));
        assert!(prefers_html("text/*, application/json;q=0.9"));
        assert!(!prefers_html(""));
        assert!(!prefers_html("application/json"));
        assert!(!prefers_html("text/html;q=0.5, */*"));
    }
}
