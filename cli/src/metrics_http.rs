//! `serve --metrics ADDR`: the Prometheus endpoint, `GET /metrics` on a
//! plain HTTP/1.1 listener of its own.
//!
//! One request per connection (answered with `Connection: close`), at most
//! [`MAX_SCRAPES`] at once (more are closed at once), each bounded to a
//! request head of [`MAX_HEAD`] bytes and [`SCRAPE_TIMEOUT`] in all: a
//! scraper is a trusted, simple client, and nothing here may grow with
//! what an untrusted one sends. The request head is parsed by `httparse`
//! (the crate the core's RTSP parser uses); a whole HTTP server crate would
//! be more code in the build than this endpoint.

use std::sync::Arc;
use std::time::Duration;

use rtsp_toolkit_media::serving::metrics::Metrics;
use rtsp_toolkit_media::serving::ServerState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Scrapes answered at once.
const MAX_SCRAPES: usize = 16;
/// Largest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// A scrape's whole time, read to write.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers scrapes on `listener` until the process ends. `states`: the
/// servers whose open connections the `connections` gauge sums.
pub(crate) async fn serve(listener: TcpListener, metrics: Arc<Metrics>, states: Vec<Arc<ServerState>>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPES));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors and the like: wait a little rather than spin.
                eprintln!("warning: --metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let (metrics, states) = (metrics.clone(), states.clone());
        tokio::spawn(async move {
            let _ = tokio::time::timeout(SCRAPE_TIMEOUT, answer(stream, &metrics, &states)).await;
            drop(permit);
        });
    }
}

/// Reads one request head and answers it.
async fn answer(mut stream: TcpStream, metrics: &Metrics, states: &[Arc<ServerState>]) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let (status, body, is_head) = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {
                let method = req.method.unwrap_or("");
                let path = req.path.unwrap_or("").split('?').next().unwrap_or("");
                break match (method, path) {
                    ("GET" | "HEAD", "/metrics") => {
                        let connections: usize = states.iter().map(|s| s.connections()).sum();
                        let live_paths: usize = states.iter().map(|s| s.live_paths()).sum();
                        let written: u64 = states.iter().map(|s| s.live_packets_written()).sum();
                        // The main listener's (a TLS listener of its own keeps its own).
                        let latency = |q| {
                            states
                                .first()
                                .and_then(|s| s.live_latency(q))
                                .map_or(0.0, |d| d.as_secs_f64())
                        };
                        let text = metrics.render(&[
                            (
                                "connections",
                                "Connections the server holds now: open RTSP connections (TLS and tunnels included), and UDP sessions playing on after theirs closed.",
                                connections as f64,
                            ),
                            ("live_paths", "Paths live now (published or relayed).", live_paths as f64),
                            (
                                "live_packets_written",
                                "Live packets written to readers so far (one per packet and reader).",
                                written as f64,
                            ),
                            (
                                "live_latency_p50_seconds",
                                "Median time from a live packet's arrival (publisher or relay upstream) to its write to a reader (within 9 %).",
                                latency(0.5),
                            ),
                            (
                                "live_latency_p99_seconds",
                                "99th percentile of the same.",
                                latency(0.99),
                            ),
                        ]);
                        ("200 OK", text, method == "HEAD")
                    }
                    (_, "/metrics") => ("405 Method Not Allowed", "GET or HEAD only\n".into(), false),
                    _ => (
                        "404 Not Found",
                        "the metrics are at /metrics\n".into(),
                        method == "HEAD",
                    ),
                };
            }
            Ok(httparse::Status::Partial) if head.len() < MAX_HEAD => continue,
            Ok(httparse::Status::Partial) => break ("431 Request Header Fields Too Large", String::new(), false),
            Err(e) => break ("400 Bad Request", format!("{e}\n"), false),
        }
    };
    let content_type = if status.starts_with("200") {
        "text/plain; version=0.0.4; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !is_head {
        out.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&out).await?;
    stream.shutdown().await
}
