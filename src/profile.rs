//! HTTP header profiles: the request headers a polling client sends and the response headers
//! the embedded hub answers with. Header bytes are most of what polling costs, so they are
//! data chosen by the scenario, not an accident of the HTTP library.

use std::time::SystemTime;

/// Request line path of the article's example poll; the hub serves it as channel `0`.
pub const ARTICLE_POLL_PATH: &str = "/PollingStock//PollingStock";

/// The article's example request headers, in order, exactly as printed (websocket.org, ~2010).
const ARTICLE_REQUEST: &[(&str, &str)] = &[
    ("Host", "localhost:8080"),
    (
        "User-Agent",
        "Mozilla/5.0 (Windows; U; Windows NT 5.1; en-US; rv:1.9.1.5) Gecko/20091102 Firefox/3.5.5",
    ),
    (
        "Accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
    ("Accept-Language", "en-us"),
    ("Accept-Encoding", "gzip,deflate"),
    ("Accept-Charset", "ISO-8859-1,utf-8;q=0.7,*;q=0.7"),
    ("Keep-Alive", "300"),
    ("Connection", "keep-alive"),
    ("Referer", "http://www.example.com/PollingStock/"),
    (
        "Cookie",
        "showInheritedConstant=false; showInheritedProtectedConstant=false; \
         showInheritedProperty=false; showInheritedProtectedProperty=false; \
         showInheritedMethod=false; showInheritedProtectedMethod=false; \
         showInheritedEvent=false; showInheritedStyle=false; showInheritedEffect=false",
    ),
];

/// Request headers of a current desktop Chrome doing a same-origin `fetch()`.
const BROWSER_REQUEST: &[(&str, &str)] = &[
    ("Connection", "keep-alive"),
    (
        "sec-ch-ua",
        "\"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\", \"Google Chrome\";v=\"131\"",
    ),
    ("sec-ch-ua-mobile", "?0"),
    ("sec-ch-ua-platform", "\"Windows\""),
    (
        "User-Agent",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
         Chrome/131.0.0.0 Safari/537.36",
    ),
    ("Accept", "*/*"),
    ("Sec-Fetch-Site", "same-origin"),
    ("Sec-Fetch-Mode", "cors"),
    ("Sec-Fetch-Dest", "empty"),
    ("Accept-Encoding", "gzip, deflate, br, zstd"),
    ("Accept-Language", "en-US,en;q=0.9"),
];

/// Header fields that HTTP/2 forbids (RFC 9113 §8.2.2): they describe one HTTP/1.1 connection.
const CONNECTION_SPECIFIC: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// Turns HTTP/1.1 request headers into an HTTP/2 request's: drops the connection-specific
/// fields, as a browser does when it speaks HTTP/2 (the article profile's `Keep-Alive` and
/// `Connection`, the browser profile's `Connection`; hyper would drop them too, with a
/// warning), and takes `Host` out to become `:authority`. Returns `Host`'s value.
pub fn into_http2(headers: &mut Vec<(String, String)>) -> Option<String> {
    headers.retain(|(name, _)| {
        !CONNECTION_SPECIFIC
            .iter()
            .any(|c| name.eq_ignore_ascii_case(c))
    });
    let host = headers
        .iter()
        .position(|(name, _)| name.eq_ignore_ascii_case("host"))?;
    Some(headers.remove(host).1)
}

/// Which headers a polling client sends, and which the hub answers with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HeaderProfile {
    /// Only what HTTP/1.1 needs: `Host`, plus the cache validators.
    Minimal,
    /// A current desktop browser's request headers; a typical web server's response headers.
    Browser,
    /// Exactly the article's example request and response (no cache validators: the hub
    /// remembers each connection's position instead).
    WebsocketOrg2010,
    /// `Host` plus the scenario's own headers; the hub answers as for `Minimal`.
    Custom(Vec<(String, String)>),
}

/// A response's status as the hub sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200 with one message of `body_len` bytes.
    Message { body_len: usize },
    /// 304: nothing newer than the client's position.
    NotModified,
}

impl HeaderProfile {
    /// The profiles a name alone chooses (every one but `Custom`), in the order help and
    /// error texts list them: the one list that scenario files and `serve --headers` accept.
    pub const NAMED: [HeaderProfile; 3] = [
        HeaderProfile::Minimal,
        HeaderProfile::Browser,
        HeaderProfile::WebsocketOrg2010,
    ];

    /// The profile's name as written in scenario files.
    pub fn name(&self) -> &'static str {
        match self {
            HeaderProfile::Minimal => "minimal",
            HeaderProfile::Browser => "browser",
            HeaderProfile::WebsocketOrg2010 => "websocket-org-2010",
            HeaderProfile::Custom(_) => "custom",
        }
    }

    /// Whether the client echoes `Etag`/`Last-Modified` as `If-None-Match`/`If-Modified-Since`.
    pub fn sends_validators(&self) -> bool {
        !matches!(self, HeaderProfile::WebsocketOrg2010)
    }

    /// The request path of a poll whose adapter asks for `path`: the article's own path for
    /// its profile, so that its bytes are the article's.
    pub fn poll_path(&self, path: String) -> String {
        match self {
            HeaderProfile::WebsocketOrg2010 => ARTICLE_POLL_PATH.to_string(),
            _ => path,
        }
    }

    /// Request headers in order, without the cache validators. `host` is the target's
    /// `host:port`; the article profile keeps its own `Host` value so its bytes are the
    /// article's.
    pub fn request_headers(&self, host: &str) -> Vec<(String, String)> {
        let owned = |list: &[(&str, &str)]| {
            list.iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let host_header = ("Host".to_string(), host.to_string());
        match self {
            HeaderProfile::Minimal => vec![host_header],
            HeaderProfile::WebsocketOrg2010 => owned(ARTICLE_REQUEST),
            HeaderProfile::Browser => {
                let mut headers = vec![host_header];
                headers.extend(owned(BROWSER_REQUEST));
                headers.push(("Referer".to_string(), format!("http://{host}/")));
                headers
            }
            HeaderProfile::Custom(extra) => {
                let mut headers = vec![host_header];
                headers.extend(extra.iter().cloned());
                headers
            }
        }
    }

    /// Response headers in order. `position` is the message id the client is now at
    /// (sent as `Etag` where the profile has validators), `modified` its publish time.
    /// `Date` is included: every profile has one, and the hub sets it so that its place is
    /// the profile's.
    pub fn response_headers(
        &self,
        answer: Answer,
        position: u64,
        modified: SystemTime,
        now: SystemTime,
    ) -> Vec<(&'static str, String)> {
        let date = httpdate::fmt_http_date(now);
        let mut headers: Vec<(&'static str, String)> = Vec::new();
        match self {
            HeaderProfile::WebsocketOrg2010 => {
                headers.push(("X-Powered-By", "Servlet/2.5".to_string()));
                headers.push((
                    "Server",
                    "Sun Java System Application Server 9.1_02".to_string(),
                ));
                if let Answer::Message { body_len } = answer {
                    headers.push(("Content-Type", "text/html;charset=UTF-8".to_string()));
                    headers.push(("Content-Length", body_len.to_string()));
                }
                headers.push(("Date", date));
                return headers;
            }
            HeaderProfile::Browser => {
                headers.push(("Server", "pushbench".to_string()));
                headers.push(("Cache-Control", "no-cache".to_string()));
                headers.push(("Access-Control-Allow-Origin", "*".to_string()));
                if let Answer::Message { .. } = answer {
                    headers.push(("Content-Type", "application/octet-stream".to_string()));
                }
            }
            HeaderProfile::Minimal | HeaderProfile::Custom(_) => {}
        }
        headers.push(("Last-Modified", httpdate::fmt_http_date(modified)));
        headers.push(("Etag", position.to_string()));
        if let Answer::Message { body_len } = answer {
            headers.push(("Content-Length", body_len.to_string()));
        }
        headers.push(("Date", date));
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes of a header block on the wire: each line plus CRLF, and the closing CRLF.
    fn block_len(first_line: &str, headers: &[(impl AsRef<str>, String)]) -> usize {
        first_line.len()
            + 2
            + headers
                .iter()
                .map(|(n, v)| n.as_ref().len() + 2 + v.len() + 2)
                .sum::<usize>()
            + 2
    }

    #[test]
    fn http2_requests_carry_no_connection_headers_and_host_as_authority() {
        let mut headers = HeaderProfile::WebsocketOrg2010.request_headers("127.0.0.1:1");
        assert_eq!(into_http2(&mut headers).as_deref(), Some("localhost:8080"));
        let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "User-Agent",
                "Accept",
                "Accept-Language",
                "Accept-Encoding",
                "Accept-Charset",
                "Referer",
                "Cookie"
            ]
        );
    }

    #[test]
    fn article_request_is_716_bytes_on_the_wire() {
        let headers = HeaderProfile::WebsocketOrg2010.request_headers("127.0.0.1:1");
        let line = format!("GET {ARTICLE_POLL_PATH} HTTP/1.1");
        assert_eq!(block_len(&line, &headers), 716);
    }

    #[test]
    fn article_response_is_193_bytes_on_the_wire_for_a_21_byte_body() {
        let headers = HeaderProfile::WebsocketOrg2010.response_headers(
            Answer::Message { body_len: 21 },
            1,
            SystemTime::UNIX_EPOCH,
            SystemTime::now(),
        );
        assert_eq!(block_len("HTTP/1.1 200 OK", &headers), 193);
    }
}
