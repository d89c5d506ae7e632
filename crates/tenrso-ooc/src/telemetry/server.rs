//! [`MetricsServer`]: Prometheus text on `GET /metrics` while a run lasts.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::core::{Error, Result};
use crate::telemetry::Metrics;

/// A minimal HTTP server answering `GET /metrics` with the session's
/// counters in the Prometheus text format (version 0.0.4), on a background
/// thread, until dropped.
///
/// ```
/// use std::sync::Arc;
/// use tenrso_ooc::telemetry::{Metrics, MetricsServer};
/// let metrics = Arc::new(Metrics::default());
/// let server = MetricsServer::start("127.0.0.1:0", metrics.clone())?;
/// metrics.tasks_done.add(3);
/// let body = tenrso_ooc::telemetry::scrape(server.addr())?;
/// assert!(body.contains("tenrso_tasks_completed_total 3"));
/// # Ok::<(), tenrso_ooc::Error>(())
/// ```
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Listens on `addr` (`HOST:PORT`; port 0 picks a free one).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the address cannot be bound.
    pub fn start(addr: &str, metrics: Arc<Metrics>) -> Result<Self> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| Error::invalid(format!("cannot serve metrics on {addr}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::invalid(format!("metrics address: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let _ = answer(stream, &metrics);
                    }
                }
            })
            .map_err(|e| Error::invalid(format!("cannot start the metrics thread: {e}")))?;
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address listened on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(&stream);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Skip the headers.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let mut out = &stream;
    let path = request.split_whitespace().nth(1).unwrap_or("");
    if request.starts_with("GET ") && (path == "/metrics" || path.starts_with("/metrics?")) {
        let body = metrics.prometheus_text();
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    } else {
        let body = "not found: try GET /metrics\n";
        write!(
            out,
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }
}

/// Fetches `/metrics` from `addr` (a tiny client, for tests and tools).
///
/// # Errors
/// [`Error::Io`] when the server cannot be reached.
pub fn scrape(addr: SocketAddr) -> Result<String> {
    use std::io::Read;
    let io = |e| Error::io(format!("http://{addr}/metrics"), e);
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(io)?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(io)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(io)?;
    Ok(response
        .split_once("\r\n\r\n")
        .map_or(response.clone(), |(_, body)| body.to_string()))
}
