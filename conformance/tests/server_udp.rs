//! Our file server's UDP sessions seen from a raw client on loopback, on
//! the tokio and the smol server: the ports and addresses media comes from,
//! datagrams from strangers that change nothing, and sessions that outlive
//! their RTSP connection (kept alive by RTCP or by a request on another
//! connection, ended by a TEARDOWN on another connection or by expiry).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use rtsp_toolkit_conformance::servers::{ServerRuntime, TestServer};
use rtsp_toolkit_core::server::PortRange;
use rtsp_toolkit_media::serving::ServerOptions;

rtsp_toolkit_conformance::on_every_server!(
    #[test]
    media_comes_from_the_server_pair_and_strangers_change_nothing,
    a_session_outlives_its_connection_while_kept_alive,
    a_teardown_on_another_connection_ends_it,
);

/// Session timeout of these servers: short, so that expiry is seen quickly.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The UDP ports of these servers (the interop tests leave them to the OS).
const PORTS: (u16, u16) = (41_000, 41_999);

fn server(runtime: ServerRuntime) -> TestServer {
    let mut options = ServerOptions::default();
    options.config.session_timeout = TIMEOUT;
    options.config.udp_ports = PortRange::new(PORTS.0, PORTS.1).ok();
    TestServer::with_options(runtime, rtsp_toolkit_conformance::media_dir(), options)
}

/// An RTSP connection that sends one request at a time.
struct Rtsp {
    stream: TcpStream,
    cseq: u32,
}

impl Rtsp {
    fn connect(addr: SocketAddr) -> Rtsp {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Rtsp { stream, cseq: 0 }
    }

    /// The response's status and headers (no body is expected).
    fn request(&mut self, method: &str, url: &str, headers: &[(&str, &str)]) -> (u16, String) {
        self.cseq += 1;
        let mut text = format!("{method} {url} RTSP/1.0\r\nCSeq: {}\r\n", self.cseq);
        for (n, v) in headers {
            text.push_str(&format!("{n}: {v}\r\n"));
        }
        text.push_str("\r\n");
        self.stream.write_all(text.as_bytes()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = self.stream.read(&mut buf).expect("a response in time");
            assert!(n > 0, "connection closed before the response");
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got).into_owned();
        let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, text)
    }
}

fn header<'a>(response: &'a str, name: &str) -> &'a str {
    response
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {response}"))
}

fn param(transport: &str, name: &str) -> String {
    transport
        .split(';')
        .find_map(|p| p.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {transport}"))
        .to_owned()
}

/// A client's RTP/RTCP sockets on an even/odd pair.
fn client_pair() -> (UdpSocket, UdpSocket) {
    for _ in 0..64 {
        let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = rtp.local_addr().unwrap().port();
        if port % 2 == 0 {
            if let Ok(rtcp) = UdpSocket::bind(("127.0.0.1", port + 1)) {
                for s in [&rtp, &rtcp] {
                    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
                }
                return (rtp, rtcp);
            }
        }
    }
    panic!("no even/odd pair");
}

/// A UDP session on the looping audio file: its RTSP connection, session
/// id, the client's sockets, the server's RTP port and the track's SSRC.
struct UdpSession {
    rtsp: Rtsp,
    id: String,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    server_port: u16,
    ssrc: u32,
    url: String,
}

fn play(server: &TestServer) -> UdpSession {
    let url = server.url("tone.aac");
    let (rtp, rtcp) = client_pair();
    let port = rtp.local_addr().unwrap().port();
    let mut rtsp = Rtsp::connect(server.local_addr());
    let transport = format!("RTP/AVP;unicast;client_port={port}-{}", port + 1);
    let (status, response) = rtsp.request(
        "SETUP",
        &format!("{url}/trackID=0"),
        &[("Transport", transport.as_str())],
    );
    assert_eq!(status, 200, "{response}");
    let session = header(&response, "Session");
    assert_eq!(session.split(';').nth(1), Some("timeout=2"));
    let id = session.split(';').next().unwrap().to_owned();
    let transport = header(&response, "Transport");
    assert_eq!(param(transport, "client_port"), format!("{port}-{}", port + 1));
    let server_ports = param(transport, "server_port");
    let (a, b) = server_ports.split_once('-').unwrap();
    let server_port: u16 = a.parse().unwrap();
    assert_eq!((server_port % 2, b.parse::<u16>().unwrap()), (0, server_port + 1));
    assert!(
        (PORTS.0..PORTS.1).contains(&server_port),
        "{server_port} within --udp-ports"
    );
    let ssrc = u32::from_str_radix(&param(transport, "ssrc"), 16).unwrap();
    let (status, _) = rtsp.request("PLAY", &format!("{url}?play_count=0"), &[("Session", id.as_str())]);
    assert_eq!(status, 200);
    UdpSession {
        rtsp,
        id,
        rtp,
        rtcp,
        server_port,
        ssrc,
        url,
    }
}

/// RTP packets received within `within`, each checked to come from the
/// server's RTP port with the session's SSRC.
fn count_rtp(s: &UdpSession, within: Duration) -> usize {
    let end = Instant::now() + within;
    let mut n = 0;
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        if let Ok((len, from)) = s.rtp.recv_from(&mut buf) {
            assert_eq!(from.port(), s.server_port);
            assert!(len >= 12);
            assert_eq!(u32::from_be_bytes(buf[8..12].try_into().unwrap()), s.ssrc);
            n += 1;
        }
    }
    n
}

/// Waits until no RTP arrived for 500 ms; how long that took from now.
fn silence_after(s: &UdpSession, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut last = start;
    let mut buf = [0u8; 2048];
    while last.elapsed() < Duration::from_millis(500) {
        assert!(start.elapsed() < limit, "media still coming after {limit:?}");
        if s.rtp.recv_from(&mut buf).is_ok() {
            last = Instant::now();
        }
    }
    last - start
}

/// A receiver report about `ssrc` (RFC 3550 §6.4.2).
fn receiver_report(ssrc: u32) -> Vec<u8> {
    let mut rr = vec![0x81, 201, 0, 7, 0, 0, 0x12, 0x34];
    rr.extend_from_slice(&ssrc.to_be_bytes());
    rr.extend_from_slice(&[0; 20]);
    rr
}

fn media_comes_from_the_server_pair_and_strangers_change_nothing(runtime: ServerRuntime) {
    let server = server(runtime);
    let s = play(&server);
    // Audio at 44.1 kHz in 1024-sample frames: ~43 packets a second.
    assert!(count_rtp(&s, Duration::from_millis(500)) > 10);
    // The sender report comes from the RTCP port to ours.
    let mut buf = [0u8; 2048];
    let (len, from) = s.rtcp.recv_from(&mut buf).expect("an SR right after PLAY");
    assert_eq!(from.port(), s.server_port + 1);
    assert_eq!(buf[1], 200, "SR first in the compound");
    assert!(len > 28);
    // Strangers: another local port sends junk, RTCP and fake BYEs to both
    // server ports; the session plays on, unmoved.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let bye = [0x81, 203, 0, 1, 0, 0, 0, 0];
    for port in [s.server_port, s.server_port + 1] {
        for data in [&receiver_report(s.ssrc)[..], &bye, b"junk", &[]] {
            stranger.send_to(data, ("127.0.0.1", port)).unwrap();
        }
    }
    s.rtcp
        .send_to(&receiver_report(s.ssrc), ("127.0.0.1", s.server_port + 1))
        .unwrap();
    assert!(count_rtp(&s, Duration::from_millis(500)) > 10);
    let mut s = s;
    let (status, _) = s.rtsp.request("TEARDOWN", &s.url, &[("Session", s.id.as_str())]);
    assert_eq!(status, 200);
    let quiet = silence_after(&s, 3 * TIMEOUT);
    assert!(
        quiet < Duration::from_millis(300),
        "TEARDOWN stops the media: {quiet:?}"
    );
}

fn a_session_outlives_its_connection_while_kept_alive(runtime: ServerRuntime) {
    let server = server(runtime);
    let s = play(&server);
    let _ = s.rtsp.stream.shutdown(std::net::Shutdown::Both);
    // Kept alive by RTCP for three timeouts.
    let until = Instant::now() + 3 * TIMEOUT;
    while Instant::now() < until {
        s.rtcp
            .send_to(&receiver_report(s.ssrc), ("127.0.0.1", s.server_port + 1))
            .unwrap();
        assert!(
            count_rtp(&s, Duration::from_millis(500)) > 5,
            "plays on without its connection"
        );
    }
    // Then by a keepalive on another connection.
    let mut other = Rtsp::connect(server.local_addr());
    let (status, response) = other.request("GET_PARAMETER", &s.url, &[("Session", s.id.as_str())]);
    assert_eq!(status, 200, "{response}");
    assert_eq!(header(&response, "Session"), s.id);
    let (status, _) = other.request("GET_PARAMETER", &s.url, &[("Session", "0123456789ABCDEF")]);
    assert_eq!(status, 454);
    assert!(count_rtp(&s, Duration::from_millis(1500)) > 20);
    // Then nothing: it expires about TIMEOUT after the keepalive.
    let quiet = silence_after(&s, 3 * TIMEOUT);
    assert!(quiet < TIMEOUT + Duration::from_secs(1), "{quiet:?}");
}

fn a_teardown_on_another_connection_ends_it(runtime: ServerRuntime) {
    let server = server(runtime);
    let s = play(&server);
    let _ = s.rtsp.stream.shutdown(std::net::Shutdown::Both);
    assert!(count_rtp(&s, Duration::from_millis(300)) > 3);
    let mut other = Rtsp::connect(server.local_addr());
    let (status, _) = other.request("TEARDOWN", &s.url, &[("Session", s.id.as_str())]);
    assert_eq!(status, 200);
    let quiet = silence_after(&s, 3 * TIMEOUT);
    assert!(quiet < Duration::from_millis(300), "{quiet:?}");
    // It is gone: a second TEARDOWN finds nothing; the connection goes on.
    let (status, _) = other.request("TEARDOWN", &s.url, &[("Session", s.id.as_str())]);
    assert_eq!(status, 454);
    let (status, _) = other.request("OPTIONS", &s.url, &[]);
    assert_eq!(status, 200);
}
