//! [`PlainHttp`]: the blocking HTTP/1.1 client the OTLP exporters post
//! through — `http://` only, one connection per request, bounded in time
//! and in what it reads back, and quick to give up on a collector that is
//! not there.
//!
//! The exporters run on the SDK's own threads (the batch span processor,
//! the periodic metric reader), which block on each export: a plain
//! `TcpStream` serves them without an async runtime or a TLS stack.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};

/// The most a response may hold (OTLP answers are a few bytes).
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// How long a failed connection keeps later requests from trying again:
/// a collector that is down costs one connection attempt per this time.
const BACKOFF: Duration = Duration::from_secs(5);

/// A blocking HTTP/1.1 client for OTLP/HTTP, counting what it sent and
/// what failed.
#[derive(Debug)]
pub(crate) struct PlainHttp {
    timeout: Duration,
    state: Mutex<ExportHealth>,
}

/// What a [`PlainHttp`] client has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportHealth {
    /// Requests the collector accepted (a 2xx answer).
    pub delivered: u64,
    /// Requests that failed: no connection, a timeout, or an answer other
    /// than 2xx.
    pub failed: u64,
    /// The first failure, in words.
    pub first_failure: Option<String>,
    /// Until when new requests fail at once (after a failed connection).
    unreachable_until: Option<Instant>,
}

impl PlainHttp {
    /// A client whose requests each take at most `timeout` (connecting
    /// takes at most 2 s of it).
    pub(crate) fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            state: Mutex::new(ExportHealth::default()),
        }
    }

    /// What it has done so far.
    pub(crate) fn health(&self) -> ExportHealth {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn record(&self, outcome: &Result<u16, String>, connection_failed: bool) {
        let mut health = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(status) if (200..300).contains(status) => health.delivered += 1,
            Ok(status) => {
                health.failed += 1;
                health
                    .first_failure
                    .get_or_insert_with(|| format!("the collector answered HTTP {status}"));
            }
            Err(why) => {
                health.failed += 1;
                health.first_failure.get_or_insert_with(|| why.clone());
            }
        }
        if connection_failed {
            health.unreachable_until = Some(Instant::now() + BACKOFF);
        }
    }

    /// Posts `request` and reads the whole answer.
    fn post(&self, request: &Request<Bytes>) -> Result<Response<Bytes>, PostError> {
        let uri = request.uri();
        if uri.scheme_str() != Some("http") {
            return Err(PostError::Request(format!(
                "{uri}: only http:// endpoints are supported"
            )));
        }
        let host = uri
            .host()
            .ok_or_else(|| PostError::Request(format!("{uri}: no host")))?;
        let port = uri.port_u16().unwrap_or(80);
        let started = Instant::now();
        let mut stream = connect(host, port, self.timeout.min(Duration::from_secs(2)))
            .map_err(|e| PostError::Connect(format!("cannot connect to {host}:{port}: {e}")))?;
        let left = self.timeout.saturating_sub(started.elapsed());
        let io = |e: std::io::Error| PostError::Exchange(format!("{uri}: {e}"));
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .map_err(io)?;
        stream
            .set_write_timeout(Some(left.max(Duration::from_millis(1))))
            .map_err(io)?;
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            uri.path_and_query().map_or("/", |p| p.as_str()),
            uri.authority().map_or(host, |a| a.as_str()),
            request.body().len()
        );
        for (name, value) in request.headers() {
            if let Ok(value) = value.to_str() {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).map_err(io)?;
        stream.write_all(request.body()).map_err(io)?;
        let mut answer = Vec::new();
        (&mut stream)
            .take(MAX_RESPONSE_BYTES as u64 + 1)
            .read_to_end(&mut answer)
            .map_err(io)?;
        if answer.len() > MAX_RESPONSE_BYTES {
            return Err(PostError::Exchange(format!(
                "{uri}: the answer is over {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        parse_response(&answer).map_err(|why| PostError::Exchange(format!("{uri}: {why}")))
    }
}

/// Why a post failed.
#[derive(Debug)]
enum PostError {
    /// The request cannot be sent (a bad endpoint).
    Request(String),
    /// No connection to the collector.
    Connect(String),
    /// Connected, but the exchange failed.
    Exchange(String),
}

impl std::fmt::Display for PostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Request(s) | Self::Connect(s) | Self::Exchange(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for PostError {}

/// A connection to the first address of `host:port` that answers.
fn connect(host: &str, port: u16, timeout: Duration) -> std::io::Result<TcpStream> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut last = None;
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("the host has no address")))
}

/// An HTTP/1.x response: status, headers, and the body (a chunked one
/// decoded).
fn parse_response(raw: &[u8]) -> Result<Response<Bytes>, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the answer has no end of headers")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "the answer's headers are not text")?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("the answer has no status line")?;
    let mut response = Response::builder().status(status);
    let mut chunked = false;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let (name, value) = (name.trim(), value.trim());
            chunked |= name.eq_ignore_ascii_case("transfer-encoding")
                && value.eq_ignore_ascii_case("chunked");
            response = response.header(name, value);
        }
    }
    let body = &raw[end + 4..];
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    response
        .body(Bytes::from(body))
        .map_err(|e| format!("a malformed answer: {e}"))
}

/// The data of a `Transfer-Encoding: chunked` body.
fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunked answer ends early")?;
        let size = std::str::from_utf8(&body[..line_end])
            .ok()
            .and_then(|l| usize::from_str_radix(l.split(';').next()?.trim(), 16).ok())
            .ok_or("a chunked answer has a bad chunk size")?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size.saturating_add(2) {
            return Err("a chunked answer ends early".into());
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

#[async_trait::async_trait]
impl HttpClient for PlainHttp {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let unreachable = self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unreachable_until
            .is_some_and(|until| Instant::now() < until);
        if unreachable {
            let why = format!(
                "{}: the collector was unreachable moments ago",
                request.uri()
            );
            self.record(&Err(why.clone()), false);
            return Err(why.into());
        }
        let result = self.post(&request);
        let connection_failed = matches!(result, Err(PostError::Connect(_)));
        self.record(
            &result
                .as_ref()
                .map(|r| r.status().as_u16())
                .map_err(ToString::to_string),
            connection_failed,
        );
        Ok(result?)
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    fn request(uri: &str, body: &'static [u8]) -> Request<Bytes> {
        Request::builder()
            .method("POST")
            .uri(uri)
            .header("content-type", "application/x-protobuf")
            .body(Bytes::from_static(body))
            .unwrap()
    }

    /// A server that answers one request with `answer` and hands back what
    /// it received.
    fn serve_once(answer: &'static [u8]) -> (u16, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut received = Vec::new();
            let mut buf = [0u8; 4096];
            // Headers, then the 5-byte body.
            while !received.windows(4).any(|w| w == b"\r\n\r\n") || !received.ends_with(b"hello") {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0, "the client closed early");
                received.extend_from_slice(&buf[..n]);
            }
            stream.write_all(answer).unwrap();
            received
        });
        (port, handle)
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        // The client never awaits anything: one poll completes it.
        let mut f = std::pin::pin!(f);
        let waker = std::task::Waker::noop();
        match f.as_mut().poll(&mut std::task::Context::from_waker(waker)) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => panic!("the client awaited"),
        }
    }

    #[test]
    fn posts_the_body_and_reads_the_answer() {
        let (port, server) =
            serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: b\r\n\r\nabc");
        let client = PlainHttp::new(Duration::from_secs(5));
        let url = format!("http://127.0.0.1:{port}/v1/traces");
        let response = block_on(client.send_bytes(request(&url, b"hello"))).unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.body().as_ref(), b"abc");
        assert_eq!(response.headers()["x-a"], "b");
        let received = String::from_utf8(server.join().unwrap()).unwrap();
        assert!(
            received.starts_with("POST /v1/traces HTTP/1.1\r\n"),
            "{received}"
        );
        assert!(received.contains("content-type: application/x-protobuf\r\n"));
        assert!(received.contains("Content-Length: 5\r\n"));
        assert_eq!(client.health().delivered, 1);
    }

    #[test]
    fn a_chunked_answer_is_decoded() {
        let (port, server) = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        );
        let client = PlainHttp::new(Duration::from_secs(5));
        let url = format!("http://127.0.0.1:{port}/v1/metrics");
        let response = block_on(client.send_bytes(request(&url, b"hello"))).unwrap();
        assert_eq!(response.body().as_ref(), b"abcde");
        server.join().unwrap();
        assert_eq!(
            dechunk(b"5\r\nab"),
            Err("a chunked answer ends early".into())
        );
        // A chunk size beyond memory is an error, not an overflow.
        assert_eq!(
            dechunk(b"ffffffffffffffff\r\nab\r\n0\r\n\r\n"),
            Err("a chunked answer ends early".into())
        );
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn an_error_status_and_an_absent_collector_are_counted() {
        let (port, server) = serve_once(b"HTTP/1.0 503 Busy\r\n\r\n");
        let client = PlainHttp::new(Duration::from_secs(5));
        let url = format!("http://127.0.0.1:{port}/v1/traces");
        let response = block_on(client.send_bytes(request(&url, b"hello"))).unwrap();
        assert_eq!(response.status(), 503);
        server.join().unwrap();
        let health = client.health();
        assert_eq!((health.delivered, health.failed), (0, 1));
        assert_eq!(
            health.first_failure.as_deref(),
            Some("the collector answered HTTP 503")
        );

        // Nothing listens there any more: refused, and the next request
        // fails without trying.
        let client = PlainHttp::new(Duration::from_secs(5));
        assert!(block_on(client.send_bytes(request(&url, b"hello"))).is_err());
        let started = Instant::now();
        let second = block_on(client.send_bytes(request(&url, b"hello")));
        assert!(second.unwrap_err().to_string().contains("unreachable"));
        assert!(started.elapsed() < Duration::from_millis(100));
        let health = client.health();
        assert_eq!(health.failed, 2);
        assert!(
            health
                .first_failure
                .as_deref()
                .is_some_and(|f| f.contains("cannot connect to 127.0.0.1")),
            "{health:?}"
        );
        let client = PlainHttp::new(Duration::from_secs(5));
        let https = block_on(client.send_bytes(request("https://example.org/v1/traces", b"x")));
        assert!(https.unwrap_err().to_string().contains("only http://"));
    }
}
