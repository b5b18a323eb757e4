//! Drives the sans-IO core from a hand-written loop: a plain non-blocking
//! `std::net::TcpStream`, no runtime, no helper threads. This is the shape to
//! copy when embedding the client in an existing event loop (a game loop, a
//! GUI tick, an epoll/mio reactor): feed it bytes and time, do what
//! `poll_output` says.
//!
//! With RTP over UDP (third argument `udp`, `auto` or `multicast`), the
//! client also asks for UDP sockets (`Output::OpenUdp`), which the loop binds
//! (with `rtsp_toolkit_driver::open_pair`, the runtimes' binding rules) and
//! reads alongside the connection.
//!
//! ```sh
//! cargo run -p rtsp-toolkit-blocking --example custom_loop -- rtsp://127.0.0.1:8554/h264_aac.mp4 [seconds] [tcp|udp|auto]
//! ```

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use rtsp_toolkit_core::client::{Client, ClientOptions, Event, Input, IoFailure, Output, Transport, UdpSocketId};

/// Longest nap between two looks at the socket.
const TICK: Duration = Duration::from_millis(5);

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(url) = args.next() else {
        eprintln!("usage: custom_loop RTSP_URL [SECONDS] [tcp|udp|auto|multicast]");
        std::process::exit(2);
    };
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let transport: Transport = match args.next().map(|t| t.parse()).transpose() {
        Ok(t) => t.unwrap_or_default(),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };

    let start = Instant::now();
    let options = ClientOptions::default().with_transport(transport);
    let mut client = match Client::new(&url, options, start) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let stop_at = start + Duration::from_secs_f64(secs);

    // 1. The runtime connects (here: blocking, bounded by the timeout) and reports it.
    let mut socket = connect_and_report(&mut client);
    // The UDP sockets the client asked for, by `UdpSocketId::index()`.
    let mut udp: Vec<Option<UdpSocket>> = Vec::new();

    // 2. The loop: drain outputs, then wait for bytes or the deadline.
    let mut outgoing: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut closing = false;
    loop {
        if !closing && Instant::now() >= stop_at {
            closing = true;
            client.handle_input(Instant::now(), Input::Close); // TEARDOWN, then Closed
        }
        match client.poll_output() {
            Output::Transmit(bytes) => outgoing.extend_from_slice(&bytes),
            Output::Event(event) => print_event(&event),
            Output::Done => break,
            // UDP: bind the pair asked for (non-blocking sockets) and say which port it got.
            Output::OpenUdp(request) => {
                let pair = request.pair;
                match rtsp_toolkit_driver::open_pair(&request.bind) {
                    Ok((rtp, rtcp, port)) => {
                        let at = UdpSocketId::rtp(pair).index();
                        udp.resize_with(udp.len().max(at + 2), || None);
                        udp[at] = Some(rtp);
                        udp[at + 1] = Some(rtcp);
                        client.handle_input(Instant::now(), Input::UdpOpened { pair, result: Ok(port) });
                    }
                    Err(e) => {
                        let reason = e.to_string();
                        client.handle_input(
                            Instant::now(),
                            Input::UdpOpened {
                                pair,
                                result: Err(&reason),
                            },
                        );
                    }
                }
            }
            Output::SendDatagram { socket, to, data } => {
                if let Some(Some(s)) = udp.get(socket.index()) {
                    let _ = s.send_to(&data, to); // UDP: a lost datagram is not an error
                }
            }
            // The fallback from UDP to TCP: everything closed, a fresh connection.
            Output::Reconnect => {
                udp.clear();
                outgoing.clear();
                socket = connect_and_report(&mut client);
            }
            Output::Timeout(deadline) => {
                // Datagrams, a bounded number per socket, so that none starves the rest.
                let mut got_datagrams = false;
                for (index, s) in udp.iter().enumerate() {
                    let Some(s) = s else { continue };
                    let id = UdpSocketId {
                        pair: (index / 2) as u16,
                        rtcp: index % 2 == 1,
                    };
                    for _ in 0..64 {
                        let Ok((n, from)) = s.recv_from(&mut buf) else { break };
                        got_datagrams = true;
                        client.handle_input(
                            Instant::now(),
                            Input::Datagram {
                                socket: id,
                                from,
                                data: &buf[..n],
                            },
                        );
                    }
                }
                let Some(s) = socket.as_mut() else {
                    // No connection: only time can move the client on.
                    if !got_datagrams {
                        std::thread::sleep(deadline.saturating_duration_since(Instant::now()).min(TICK));
                    }
                    if Instant::now() >= deadline {
                        client.handle_input(Instant::now(), Input::Timeout);
                    }
                    continue;
                };
                // Write what we can without blocking; keep the rest for later.
                match s.write(&outgoing) {
                    Ok(n) => {
                        outgoing.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        let reason = format!("write failed: {e}");
                        client.handle_input(Instant::now(), Input::IoError(IoFailure::from_io(&e, &reason)));
                    }
                }
                match s.read(&mut buf) {
                    Ok(0) => client.handle_input(Instant::now(), Input::Eof),
                    Ok(n) => client.handle_input(Instant::now(), Input::Data(&buf[..n])),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        let now = Instant::now();
                        if now >= deadline {
                            client.handle_input(now, Input::Timeout);
                        } else if !got_datagrams {
                            // Nothing to read: nap until the next look (or the deadline).
                            let until = if closing { deadline } else { deadline.min(stop_at) };
                            std::thread::sleep(until.saturating_duration_since(now).min(TICK));
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let reason = format!("read failed: {e}");
                        client.handle_input(Instant::now(), Input::IoError(IoFailure::from_io(&e, &reason)));
                    }
                }
            }
        }
    }
    if let Some(s) = socket {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
}

/// Connects to the client's target (at the start, and again for a
/// reconnect) and tells the client how it went; the socket is non-blocking.
fn connect_and_report(client: &mut Client) -> Option<TcpStream> {
    let (host, port) = client.connect_target();
    match connect(&host, port, client.options().timeout) {
        Ok(s) => {
            let (local, peer) = (s.local_addr().unwrap(), s.peer_addr().unwrap());
            s.set_nonblocking(true).expect("non-blocking socket");
            client.handle_input(Instant::now(), Input::Connected { local, peer });
            Some(s)
        }
        Err(e) => {
            let reason = e.to_string();
            client.handle_input(Instant::now(), Input::ConnectFailed(IoFailure::from_io(&e, &reason)));
            None
        }
    }
}

/// Tries each resolved address until `timeout` is used up.
fn connect(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let deadline = Instant::now() + timeout;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in (host, port).to_socket_addrs()? {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn print_event(event: &Event) {
    match event {
        Event::Connect(c) => println!("connect  {} {:?}", c.target, c.result.as_ref().map(|_| "ok")),
        Event::Method(m) => println!("rtsp     {} -> {} {}", m.method, m.status, m.reason),
        Event::Rtp(r) => println!(
            "rtp      track={} seq={} len={}",
            r.track,
            r.packet.sequence_number,
            r.packet.payload.len()
        ),
        Event::Closed(c) => println!("closed   after {:?}: {:?}", c.session_elapsed, c.error),
        other => println!("other    {}", kind(other)),
    }
}

fn kind(event: &Event) -> &'static str {
    match event {
        Event::Rtcp(_) => "rtcp",
        Event::RtcpSent(_) => "rtcp sent",
        Event::Fallback(_) => "fallback",
        Event::Warning(_) => "warning",
        _ => "frame or other",
    }
}
