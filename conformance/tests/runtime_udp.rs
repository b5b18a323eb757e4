//! Every runtime's client (tokio, smol, blocking) with RTP over UDP, against
//! a small fake RTSP server on loopback written here: frames arrive over UDP
//! and the session ends cleanly at the stop with every socket closed; a
//! datagram from another local port is dropped; with `Transport::Auto` a
//! server that refuses UDP (461), and one that accepts it but never sends,
//! both end up playing over TCP; multicast (each in a network namespace of
//! its own, `conformance::netns`). The three runtimes of a case run at once, each
//! against a server of its own. Last, a whole file from GStreamer's
//! rtsp-server over UDP.
//!
//! The server plays G.711 A-law (every RTP packet is a frame) and answers
//! requests by method alone; it serves at most two connections (the
//! fallback reconnects once) and gives up after [`SERVE_LIMIT`].

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rtsp_toolkit_conformance::events::{closed_error, kind, methods, setup_transport_names};
use rtsp_toolkit_conformance::runtimes::{self, Control, Run, Runtime, StopWhen};
use rtsp_toolkit_core::client::{ClientOptions, Event, Transport, TransportKind, UdpBind, Warning};
use rtsp_toolkit_driver::udp::open_pair;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Bound on one session.
const LIMIT: Duration = Duration::from_secs(30);
/// Longest a fake server waits for and serves its connections.
const SERVE_LIMIT: Duration = Duration::from_secs(30);
/// Time between two RTP packets the server sends.
const PACKET_EVERY: Duration = Duration::from_millis(5);
/// The SSRC of the server's stream, and of the datagrams from elsewhere.
const SSRC: u32 = 0x1234_5678;
const FOREIGN_SSRC: u32 = 0x0bad_0bad;
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// How the fake server answers a SETUP asking for UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Server ports, RTP from them to the client's ports (and two datagrams
    /// from another local port).
    Udp,
    /// 461 Unsupported Transport.
    Refuse,
    /// Server ports, and not one datagram.
    Silent,
    /// A multicast group (to a client asking for multicast).
    Multicast,
}

/// The group of [`Mode::Multicast`].
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 42, 11);

/// What a fake server saw.
#[derive(Debug, Default)]
struct Log {
    connections: usize,
    /// Request lines, in order, over all connections.
    requests: Vec<String>,
    /// The client's RTP port of each UDP SETUP.
    client_ports: Vec<u16>,
    /// Datagrams received on the server's RTP and RTCP sockets: (to RTCP?, from, bytes).
    datagrams: Vec<(bool, SocketAddr, Vec<u8>)>,
    /// Where the datagrams from another port came from.
    foreign_from: Option<SocketAddr>,
}

/// The fake server: a thread serving at most two connections in turn.
struct FakeServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Log>>,
}

impl FakeServer {
    fn start(mode: Mode) -> FakeServer {
        let listener = TcpListener::bind((LOCALHOST, 0)).expect("bind the fake server");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let theirs = stop.clone();
        let thread = thread::spawn(move || serve(listener, mode, &theirs));
        FakeServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("rtsp://{}/fake", self.addr)
    }

    /// Stops the server and returns what it saw.
    fn finish(mut self) -> Log {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().expect("the fake server ran")
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: TcpListener, mode: Mode, stop: &AtomicBool) -> Log {
    let deadline = Instant::now() + SERVE_LIMIT;
    let mut log = Log::default();
    listener.set_nonblocking(true).unwrap();
    while log.connections < 2 && !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        match listener.accept() {
            Ok((conn, _)) => {
                log.connections += 1;
                let _ = Connection::new(conn, mode).run(&mut log, stop, deadline);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(2)),
            Err(e) => panic!("accept: {e}"),
        }
    }
    log
}

/// Where the stream goes once PLAY is answered.
enum Route {
    None,
    Interleaved(u8),
    Udp {
        rtp: UdpSocket,
        rtcp: UdpSocket,
        to: SocketAddr,
    },
}

/// A socket sending to [`GROUP`] (through `lo`: the namespace routes the
/// multicast range there).
fn group_sender() -> io::Result<UdpSocket> {
    let s = UdpSocket::bind((LOCALHOST, 0))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

struct Connection {
    conn: TcpStream,
    mode: Mode,
    route: Route,
    playing: bool,
    seq: u16,
    next_send: Instant,
    sent: u32,
    buf: Vec<u8>,
}

impl Connection {
    fn new(conn: TcpStream, mode: Mode) -> Connection {
        conn.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        Connection {
            conn,
            mode,
            route: Route::None,
            playing: false,
            seq: 1000,
            next_send: Instant::now(),
            sent: 0,
            buf: Vec::new(),
        }
    }

    /// Serves until TEARDOWN, the client's close, the stop or `deadline`.
    fn run(mut self, log: &mut Log, stop: &AtomicBool, deadline: Instant) -> io::Result<()> {
        let mut chunk = [0u8; 4096];
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            match self.conn.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) => return Err(e),
            }
            while let Some((line, headers)) = self.next_request() {
                let teardown = line.starts_with("TEARDOWN ");
                log.requests.push(line.clone());
                self.answer(&line, &headers, log)?;
                if teardown {
                    self.take_datagrams(log);
                    return Ok(());
                }
            }
            self.take_datagrams(log);
            if self.playing && Instant::now() >= self.next_send {
                self.send_packet(log)?;
                self.next_send += PACKET_EVERY;
            }
        }
        Ok(())
    }

    /// The next whole request (line, headers), skipping the interleaved
    /// frames the client sends (its receiver reports).
    fn next_request(&mut self) -> Option<(String, Vec<(String, String)>)> {
        while self.buf.len() >= 4 && self.buf[0] == b'$' {
            let end = 4 + usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
            if self.buf.len() < end {
                return None;
            }
            self.buf.drain(..end);
        }
        let end = self.buf.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head: Vec<u8> = self.buf.drain(..end + 4).collect();
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut lines = text.lines();
        let line = lines.next().unwrap_or("").to_owned();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Some((line, headers))
    }

    fn answer(&mut self, line: &str, headers: &[(String, String)], log: &mut Log) -> io::Result<()> {
        let get = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let cseq = get("cseq").unwrap_or("0").to_owned();
        let method = line.split(' ').next().unwrap_or("");
        let base = format!("rtsp://{}/fake/", self.conn.local_addr()?);
        let session = "Session: 5e55104a;timeout=60\r\n";
        let (status, extra, body) = match method {
            "OPTIONS" => (
                "200 OK",
                "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n".to_owned(),
                String::new(),
            ),
            "DESCRIBE" => {
                let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=fake\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
                           m=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=control:trackID=0\r\n";
                (
                    "200 OK",
                    format!("Content-Base: {base}\r\nContent-Type: application/sdp\r\n"),
                    sdp.to_owned(),
                )
            }
            "SETUP" => {
                let transport = get("transport").unwrap_or("");
                if self.mode == Mode::Multicast && transport.contains("multicast") {
                    // A group port of its own for each server (the runtimes run at once).
                    let port = 40_000 + (self.conn.local_addr()?.port() % 10_000) / 2 * 2;
                    let to = SocketAddr::new(GROUP.into(), port);
                    self.route = Route::Udp {
                        rtp: group_sender()?,
                        rtcp: group_sender()?,
                        to,
                    };
                    let answer = format!(
                        "{session}Transport: RTP/AVP;multicast;destination={GROUP};port={port}-{};ttl=1\r\n",
                        port + 1
                    );
                    self.conn
                        .write_all(format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{answer}\r\n").as_bytes())?;
                    return Ok(());
                }
                match (client_port(transport), self.mode) {
                    (Some(_), Mode::Refuse) => ("461 Unsupported Transport", String::new(), String::new()),
                    (Some(port), _) => {
                        log.client_ports.push(port);
                        let rtp = UdpSocket::bind((LOCALHOST, 0))?;
                        let rtcp = UdpSocket::bind((LOCALHOST, 0))?;
                        rtp.set_nonblocking(true)?;
                        rtcp.set_nonblocking(true)?;
                        // Any two ports: the client takes what the answer says.
                        let (sp, sc) = (rtp.local_addr()?.port(), rtcp.local_addr()?.port());
                        let to = SocketAddr::new(self.conn.peer_addr()?.ip(), port);
                        self.route = Route::Udp { rtp, rtcp, to };
                        (
                            "200 OK",
                            format!(
                                "{session}Transport: RTP/AVP;unicast;client_port={port}-{};server_port={sp}-{sc};ssrc={SSRC:08X}\r\n",
                                port + 1
                            ),
                            String::new(),
                        )
                    }
                    (None, _) => {
                        self.route = Route::Interleaved(0);
                        (
                            "200 OK",
                            format!("{session}Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"),
                            String::new(),
                        )
                    }
                }
            }
            "PLAY" => {
                self.playing = true;
                self.next_send = Instant::now();
                ("200 OK", format!("{session}Range: npt=0.000-\r\n"), String::new())
            }
            "TEARDOWN" => {
                self.playing = false;
                ("200 OK", session.to_owned(), String::new())
            }
            _ => ("200 OK", session.to_owned(), String::new()),
        };
        let mut response = format!("RTSP/1.0 {status}\r\nCSeq: {cseq}\r\n{extra}");
        if !body.is_empty() {
            response.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        response.push_str("\r\n");
        response.push_str(&body);
        self.conn.write_all(response.as_bytes())
    }

    /// One RTP packet of the stream, as the route says; in UDP mode, the
    /// third is followed by two datagrams from another local port.
    fn send_packet(&mut self, log: &mut Log) -> io::Result<()> {
        let packet = rtp_packet(self.seq, u32::from(self.seq) * 160, SSRC);
        self.seq = self.seq.wrapping_add(1);
        self.sent += 1;
        match &self.route {
            Route::None => {}
            Route::Interleaved(channel) => {
                let mut framed = vec![b'$', *channel];
                framed.extend_from_slice(&(packet.len() as u16).to_be_bytes());
                framed.extend_from_slice(&packet);
                self.conn.write_all(&framed)?;
            }
            Route::Udp { .. } if self.mode == Mode::Silent => {}
            Route::Udp { rtp, to, .. } => {
                rtp.send_to(&packet, *to)?;
                if self.sent == 3 && self.mode == Mode::Udp {
                    let intruder = UdpSocket::bind((LOCALHOST, 0))?;
                    let forged = rtp_packet(40_000, 0, FOREIGN_SSRC);
                    intruder.send_to(&forged, *to)?;
                    intruder.send_to(&forged, *to)?;
                    log.foreign_from = Some(intruder.local_addr()?);
                }
            }
        }
        Ok(())
    }

    /// Reads what the client sent to the server's UDP ports.
    fn take_datagrams(&mut self, log: &mut Log) {
        let Route::Udp { rtp, rtcp, .. } = &self.route else {
            return;
        };
        let mut buf = [0u8; 2048];
        for (is_rtcp, s) in [(false, rtp), (true, rtcp)] {
            for _ in 0..64 {
                let Ok((n, from)) = s.recv_from(&mut buf) else { break };
                log.datagrams.push((is_rtcp, from, buf[..n].to_vec()));
            }
        }
    }
}

/// The client's RTP port in a `Transport` header asking for UDP.
fn client_port(transport: &str) -> Option<u16> {
    let v = transport
        .split(';')
        .find_map(|p| p.trim().strip_prefix("client_port="))?;
    v.split('-').next()?.parse().ok()
}

/// A PCMA packet: 160 samples of silence.
fn rtp_packet(seq: u16, timestamp: u32, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 8];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&timestamp.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xd5; 160]);
    p
}

/// Runs a session of `mode`'s server on every runtime at once, stopped after
/// `stop_after_rtp` RTP packets; returns each run with what its server saw.
fn on_every_runtime(mode: Mode, opts: ClientOptions, stop_after_rtp: usize) -> Vec<(Run, Log)> {
    runtimes::at_once(|runtime: Runtime| {
        let server = FakeServer::start(mode);
        let control = Control::within(LIMIT).stop_when(StopWhen::Rtp(stop_after_rtp));
        let run = runtimes::run(runtime, &server.url(), opts.clone(), control);
        (run, server.finish())
    })
}

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(kind).collect()
}

fn audio_frames(events: &[Event]) -> usize {
    events.iter().filter(|e| matches!(e, Event::Audio(_))).count()
}

fn fallbacks(events: &[Event]) -> Vec<(Transport, Transport, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Fallback(f) => Some((f.from, f.to, f.reason.clone())),
            _ => None,
        })
        .collect()
}

fn connects(events: &[Event]) -> usize {
    events.iter().filter(|e| matches!(e, Event::Connect(_))).count()
}

/// Every client port of `log` can be bound again: the session closed its sockets.
fn assert_ports_closed(rt: &str, log: &Log) {
    for &port in &log.client_ports {
        for p in [port, port + 1] {
            if let Err(e) = UdpSocket::bind((LOCALHOST, p)) {
                panic!("{rt}: client port {p} is still bound after the session ended: {e}");
            }
        }
    }
}

#[test]
fn frames_over_udp_then_a_clean_stop_with_every_socket_closed() {
    let opts = ClientOptions::default().with_transport(Transport::Udp);
    for (run, log) in on_every_runtime(Mode::Udp, opts, 40) {
        let (rt, events) = (run.runtime.name(), &run.events);
        let methods = methods(events);
        assert_eq!(
            methods,
            [
                ("OPTIONS".to_string(), 200),
                ("DESCRIBE".to_string(), 200),
                ("SETUP".to_string(), 200),
                ("PLAY".to_string(), 200),
                ("TEARDOWN".to_string(), 200),
            ],
            "{rt}: {:?}",
            kinds(events)
        );
        assert_eq!(closed_error(events), None, "{rt}");
        assert_eq!(setup_transport_names(events), ["udp"], "{rt}");
        assert!(fallbacks(events).is_empty(), "{rt}");
        // The stop came at the 40th packet; what was in flight may follow it.
        let frames = audio_frames(events);
        assert!((40..=60).contains(&frames), "{rt}: {frames} frames");
        let Some(Event::Method(setup)) = events
            .iter()
            .find(|e| matches!(e, Event::Method(m) if m.method.as_str() == "SETUP"))
        else {
            unreachable!()
        };
        let Some(TransportKind::Udp {
            client_ports,
            server_ports: Some(_),
            ssrc: Some(SSRC),
            ..
        }) = setup.track.as_ref().map(|t| t.transport)
        else {
            panic!("{rt}: {:?}", setup.track)
        };
        assert_eq!(log.client_ports, [client_ports.0], "{rt}");
        assert_eq!(client_ports.0 % 2, 0, "{rt}: the RTP port is even");
        assert_eq!(client_ports.1, client_ports.0 + 1, "{rt}");

        // The datagrams from another local port: one warning, no packet, no frame.
        let intruder = log.foreign_from.expect("the server sent from another port");
        let warned: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Warning(Warning::ForeignDatagram { track, from }) => Some((*track, *from)),
                _ => None,
            })
            .collect();
        assert_eq!(warned, [(0, intruder)], "{rt}: one warning for the two datagrams");
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, Event::Rtp(r) if r.packet.ssrc == FOREIGN_SSRC)),
            "{rt}: a foreign datagram became a packet"
        );

        // What the client sent from its sockets: the punch to the RTP port
        // (from its RTP port), receiver reports and the BYE to the RTCP port
        // (from its RTCP port), the BYE before TEARDOWN.
        let from_rtp = SocketAddr::new(LOCALHOST, client_ports.0);
        let from_rtcp = SocketAddr::new(LOCALHOST, client_ports.1);
        assert!(
            log.datagrams.iter().any(|(rtcp, from, _)| !rtcp && *from == from_rtp),
            "{rt}: no punch packet: {:?}",
            log.datagrams
        );
        let to_rtcp: Vec<_> = log.datagrams.iter().filter(|(rtcp, _, _)| *rtcp).collect();
        assert!(to_rtcp.iter().all(|(_, from, _)| *from == from_rtcp), "{rt}");
        let has_bye = |d: &[u8]| {
            rtsp_toolkit_core::rtcp::parse_compound(&bytes::Bytes::copy_from_slice(d)).is_ok_and(|ps| {
                ps.iter()
                    .any(|p| matches!(p, rtsp_toolkit_core::rtcp::RtcpPacket::Bye(_)))
            })
        };
        assert!(
            to_rtcp.iter().any(|(_, _, d)| has_bye(d)),
            "{rt}: no BYE reached the server's RTCP port"
        );
        let sent: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::RtcpSent(r) => Some(r),
                _ => None,
            })
            .collect();
        assert!(!sent.is_empty(), "{rt}: no RtcpSent event");
        assert_eq!(sent.len(), to_rtcp.len(), "{rt}: one datagram per RtcpSent event");

        assert_ports_closed(rt, &log);
    }
}

#[test]
fn a_server_that_refuses_udp_is_played_over_tcp() {
    let opts = ClientOptions::default().with_transport(Transport::Auto);
    for (run, log) in on_every_runtime(Mode::Refuse, opts, 20) {
        let (rt, events) = (run.runtime.name(), &run.events);
        assert_eq!(
            methods(events),
            [
                ("OPTIONS".to_string(), 200),
                ("DESCRIBE".to_string(), 200),
                ("SETUP".to_string(), 461),
                ("SETUP".to_string(), 200),
                ("PLAY".to_string(), 200),
                ("TEARDOWN".to_string(), 200),
            ],
            "{rt}: {:?}",
            kinds(events)
        );
        let f = fallbacks(events);
        assert_eq!(f.len(), 1, "{rt}: {f:?}");
        assert_eq!((f[0].0, f[0].1), (Transport::Udp, Transport::Tcp), "{rt}");
        assert!(f[0].2.contains("461"), "{rt}: {}", f[0].2);
        assert_eq!(connects(events), 1, "{rt}: the same connection goes on");
        assert_eq!(setup_transport_names(events), ["tcp"], "{rt}");
        assert!(audio_frames(events) >= 20, "{rt}");
        assert_eq!(closed_error(events), None, "{rt}");
        assert_eq!(log.connections, 1, "{rt}");
        assert!(log.client_ports.is_empty(), "{rt}");
    }
}

#[test]
fn a_server_whose_udp_never_arrives_is_played_over_tcp_on_a_new_connection() {
    let opts = ClientOptions::default()
        .with_transport(Transport::Auto)
        .with_udp_fallback_after(Duration::from_millis(300));
    for (run, log) in on_every_runtime(Mode::Silent, opts, 20) {
        let (rt, events) = (run.runtime.name(), &run.events);
        assert_eq!(
            methods(events),
            [
                ("OPTIONS".to_string(), 200),
                ("DESCRIBE".to_string(), 200),
                ("SETUP".to_string(), 200),
                ("PLAY".to_string(), 200),
                ("TEARDOWN".to_string(), 200),
                ("OPTIONS".to_string(), 200),
                ("DESCRIBE".to_string(), 200),
                ("SETUP".to_string(), 200),
                ("PLAY".to_string(), 200),
                ("TEARDOWN".to_string(), 200),
            ],
            "{rt}: {:?}",
            kinds(events)
        );
        let f = fallbacks(events);
        assert_eq!(f.len(), 1, "{rt}: {f:?}");
        assert_eq!((f[0].0, f[0].1), (Transport::Udp, Transport::Tcp), "{rt}");
        assert!(f[0].2.contains("no RTP"), "{rt}: {}", f[0].2);
        // Fallback, then the first TEARDOWN, then a second connection.
        let at = |pred: &dyn Fn(&Event) -> bool| events.iter().position(pred).unwrap();
        let fallback = at(&|e| matches!(e, Event::Fallback(_)));
        let second_connect = events
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, Event::Connect(_)))
            .nth(1)
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("{rt}: one connection only: {:?}", kinds(events)));
        assert!(fallback < second_connect, "{rt}");
        assert!(
            !events[..second_connect].iter().any(|e| matches!(e, Event::Audio(_))),
            "{rt}: frames before the fallback"
        );
        assert!(audio_frames(&events[second_connect..]) >= 20, "{rt}");
        assert_eq!(setup_transport_names(events), ["udp", "tcp"], "{rt}");
        assert_eq!(closed_error(events), None, "{rt}");
        assert_eq!(log.connections, 2, "{rt}");
        assert_eq!(
            log.requests.iter().filter(|r| r.starts_with("TEARDOWN ")).count(),
            2,
            "{rt}"
        );
        assert_eq!(log.client_ports.len(), 1, "{rt}");
        assert_ports_closed(rt, &log);
    }
}

/// Joins a multicast group, so it runs inside a network namespace of its
/// own (`conformance::netns`; nothing leaves it).
#[test]
fn frames_over_multicast_then_the_group_is_left() {
    rtsp_toolkit_conformance::netns::run(frames_over_multicast_then_the_group_is_left_inside);
}

fn frames_over_multicast_then_the_group_is_left_inside() {
    let opts = ClientOptions::default().with_transport(Transport::Multicast);
    for (run, log) in on_every_runtime(Mode::Multicast, opts, 30) {
        let (rt, events) = (run.runtime.name(), &run.events);
        assert_eq!(
            setup_transport_names(events),
            ["multicast"],
            "{rt}: {:?}",
            kinds(events)
        );
        assert!(audio_frames(events) >= 30, "{rt}");
        assert_eq!(closed_error(events), None, "{rt}");
        assert_eq!(methods(events).last(), Some(&("TEARDOWN".to_string(), 200)), "{rt}");
        // The BYE went to the group's RTCP port (the server's sender does not read it: only counted as sent).
        assert!(events.iter().any(|e| matches!(e, Event::RtcpSent(_))), "{rt}");
        assert_eq!(log.connections, 1, "{rt}");
    }
    // Every session closed its sockets: no member of the group is left (Linux lists them here).
    if let Ok(igmp) = std::fs::read_to_string("/proc/net/igmp") {
        let group = format!("{:08X}", u32::from_ne_bytes(GROUP.octets()));
        assert!(!igmp.contains(&group), "{group} still joined:\n{igmp}");
    }
}

/// GStreamer's rtsp-server serves UDP: a whole file over UDP gives the
/// frame counts it gives over TCP (those of `ffprobe -count_frames`,
/// fixtures/media/README.md), with no loss on loopback, and ends at the
/// server's BYE.
#[test]
fn a_whole_file_from_gstreamer_over_udp_gives_the_tcp_frame_counts() {
    let server = rtsp_toolkit_conformance::peers::GstServer::start(None);
    let opts = ClientOptions::default().with_transport(Transport::Udp);
    let runs = runtimes::at_once(|runtime| {
        runtimes::run(
            runtime,
            &server.url("h264_aac.mp4"),
            opts.clone(),
            Control::within(LIMIT),
        )
    });
    for run in runs {
        let (rt, events) = (run.runtime.name(), &run.events);
        let mut frames = [0; 2];
        for e in events {
            match e {
                Event::Video(v) => frames[v.track] += 1,
                Event::Audio(a) => frames[a.track] += 1,
                _ => {}
            }
        }
        assert_eq!(setup_transport_names(events), ["udp", "udp"], "{rt}");
        assert_eq!(frames, [125, 215], "{rt}");
        assert_eq!(closed_error(events), None, "{rt}");
        assert!(
            !events.iter().any(|e| matches!(e, Event::Loss(_))),
            "{rt}: loss on loopback"
        );
        assert!(
            !events.iter().any(|e| matches!(e, Event::Warning(_))),
            "{rt}: {:?}",
            events
                .iter()
                .filter(|e| matches!(e, Event::Warning(_)))
                .collect::<Vec<_>>()
        );
    }
}

/// Two receivers on one host share a group's ports, and the source-specific
/// join filters another sender out (`driver::udp`), inside a network
/// namespace of the test's own.
#[test]
fn multicast_pairs_share_the_group_and_filter_by_source() {
    rtsp_toolkit_conformance::netns::run(|| {
        let group = IpAddr::V4(Ipv4Addr::new(239, 255, 42, 9));
        let port = 42_000;
        let source = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let (a, a_rtcp, p) = open_pair(&UdpBind::Multicast {
            group,
            port,
            source,
            interface: IpAddr::V4(Ipv4Addr::LOCALHOST),
        })
        .unwrap();
        assert_eq!(p, port);
        // A second receiver on the same host and ports.
        let (b, _b_rtcp, _) = open_pair(&UdpBind::Multicast {
            group,
            port,
            source,
            interface: IpAddr::V4(Ipv4Addr::LOCALHOST),
        })
        .unwrap();
        let sender = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        sender.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
        sender
            .bind(&SockAddr::from(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)))
            .unwrap();
        let sender: UdpSocket = sender.into();
        sender.send_to(b"rtp", (group, port)).unwrap();
        sender.send_to(b"rtcp", (group, port + 1)).unwrap();
        // Another source: filtered out by the source-specific join.
        let other = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        other.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
        other
            .bind(&SockAddr::from(SocketAddr::new(Ipv4Addr::new(127, 0, 0, 2).into(), 0)))
            .unwrap();
        let other: UdpSocket = other.into();
        other.send_to(b"foreign", (group, port)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut buf = [0u8; 64];
        for s in [&a, &b] {
            let (n, from) = s.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&b"rtp"[..], sender.local_addr().unwrap()));
            let e = s.recv_from(&mut buf).unwrap_err();
            assert_eq!(
                e.kind(),
                io::ErrorKind::WouldBlock,
                "the other source's datagram was filtered"
            );
        }
        let (n, _) = a_rtcp.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"rtcp");
    });
}
