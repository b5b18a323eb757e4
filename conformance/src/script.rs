//! A loopback RTSP server that plays back what a capture recorded.
//!
//! The capture's received bytes are split into *groups*: each RTSP response
//! with the interleaved frames that followed it. The server answers the
//! client's n-th request with the n-th group, whatever the request says; it
//! keeps the connection open until the client's TEARDOWN (answered with the
//! next group), then closes. A client that behaves like the recorded one
//! therefore sees exactly the recorded bytes, in the recorded order.
//! Interleaved frames the client sends (its RTCP receiver reports) are
//! read and skipped.
//!
//! It serves one connection and gives up after [`SERVE_LIMIT`]; it is for
//! tests, so it panics on setup errors.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtsp_toolkit_core::capture::Capture;
use rtsp_toolkit_core::message::{Decoder, Message};

/// Longest the server waits for a connection, and serves it.
pub const SERVE_LIMIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(10);

/// The responses to play, one group per request.
#[derive(Debug, Clone)]
pub struct Script {
    /// What answers each request, in order.
    pub groups: Vec<Group>,
    /// Interleaved frames in the whole script.
    pub frames: usize,
    /// How long the server waits between a response and the frames after
    /// it (zero: written together).
    pub pause: Duration,
}

/// One response, raw, and the interleaved frames that followed it, raw.
#[derive(Debug, Clone)]
pub struct Group {
    pub response: Bytes,
    pub frames: Bytes,
}

impl Script {
    /// Splits what `capture` received into groups.
    pub fn from_capture(capture: &Capture) -> Result<Script, String> {
        let all = capture.received().freeze();
        let mut decoder = Decoder::new(capture.header.limits);
        decoder.extend(&all);
        // (response start, response end, frames end)
        let mut groups: Vec<(usize, usize, usize)> = Vec::new();
        let mut frames = 0;
        let mut at = 0;
        loop {
            let before = decoder.buffered();
            let message = decoder
                .decode()
                .map_err(|e| format!("capture input at byte {at}: {e}"))?;
            let Some(message) = message else { break };
            let end = at + (before - decoder.buffered());
            match message {
                Message::Response(_) => groups.push((at, end, end)),
                Message::Interleaved { .. } => {
                    frames += 1;
                    match groups.last_mut() {
                        Some(g) => g.2 = end,
                        None => return Err("interleaved data before the first response".into()),
                    }
                }
                Message::Request(_) => return Err("the capture has a server request; not supported".into()),
            }
            at = end;
        }
        Ok(Script {
            groups: groups
                .into_iter()
                .map(|(a, b, c)| Group {
                    response: all.slice(a..b),
                    frames: all.slice(b..c),
                })
                .collect(),
            frames,
            pause: Duration::ZERO,
        })
    }

    /// The same script, with `pause` between each response and its frames.
    pub fn paced(self, pause: Duration) -> Script {
        Script { pause, ..self }
    }
}

/// The server; stopped (and its thread joined) on drop or [`ScriptedServer::finish`].
#[derive(Debug)]
pub struct ScriptedServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<String>>>,
}

impl ScriptedServer {
    /// Listens on a free 127.0.0.1 port and serves one connection with `script`.
    pub fn start(script: Script) -> ScriptedServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || serve(listener, script, &flag).unwrap_or_default());
        ScriptedServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`, for [`ClientOptions::forward_address`](rtsp_toolkit_core::ClientOptions::forward_address).
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Stops serving (if still) and returns the request lines received.
    /// Waits up to about 1 s for the connection to end by itself first.
    pub fn finish(mut self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.thread.as_ref().is_some_and(|t| !t.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        self.join()
    }

    fn join(&mut self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .map(|t| t.join().expect("scripted server thread"))
            .unwrap_or_default()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.join();
    }
}

fn serve(listener: TcpListener, script: Script, stop: &AtomicBool) -> io::Result<Vec<String>> {
    let deadline = Instant::now() + SERVE_LIMIT;
    listener.set_nonblocking(true)?;
    let mut conn = loop {
        if stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
            return Ok(Vec::new());
        }
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) => return Err(e),
        }
    };
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(POLL))?;
    let mut requests = Vec::new();
    let mut groups = script.groups.iter();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        skip_interleaved(&mut buf);
        // Client requests have no body: a request ends at the blank line.
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = buf.drain(..end + 4).collect();
            let line = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_owned();
            let teardown = line.starts_with("TEARDOWN ");
            requests.push(line);
            if let Some(group) = groups.next() {
                conn.write_all(&group.response)?;
                if !script.pause.is_zero() && !group.frames.is_empty() {
                    std::thread::sleep(script.pause);
                }
                conn.write_all(&group.frames)?;
            }
            if teardown {
                close(conn);
                return Ok(requests);
            }
            skip_interleaved(&mut buf);
        }
        match conn.read(&mut chunk) {
            Ok(0) => return Ok(requests),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Ok(requests),
        }
    }
    Ok(requests)
}

/// Drops the whole interleaved frames (`$`, channel, 16-bit length,
/// payload) at the start of `buf`: what the client sends on its RTCP
/// channels.
fn skip_interleaved(buf: &mut Vec<u8>) {
    while buf.len() >= 4 && buf[0] == b'$' {
        let end = 4 + usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        if buf.len() < end {
            return;
        }
        buf.drain(..end);
    }
}

/// Half-closes, then waits briefly for the client to close, so nothing the
/// client still sends turns the close into a reset.
fn close(mut conn: TcpStream) {
    let _ = conn.shutdown(std::net::Shutdown::Write);
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut sink = [0u8; 1024];
    while Instant::now() < deadline {
        match conn.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
}
