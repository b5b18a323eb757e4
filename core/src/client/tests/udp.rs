//! Scripted tests of the client over UDP and multicast: the port requests,
//! the Transport headers, the source check, the reorder buffer, the
//! receiver reports and BYE, and the fallback to TCP.

use std::net::SocketAddr;

use bytes::BytesMut;

use super::*;
use crate::rtcp::{self, RtcpPacket};

const SERVER: &str = "127.0.0.1";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn raw_rtp(seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0x80 | 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

impl Harness {
    /// Connected, OPTIONS and DESCRIBE answered (at 5, 10 and 20 ms).
    fn described(&mut self) {
        self.connect(5);
        self.reply(10, "200 OK", "", "");
        self.reply(20, "200 OK", "Content-Type: application/sdp\r\n", SDP);
    }

    fn udp_opened(&mut self, at_ms: u64, pair: u16, result: Result<u16, &str>) {
        self.c.handle_input(self.at(at_ms), Input::UdpOpened { pair, result });
        self.drain();
    }

    fn datagram(&mut self, at_ms: u64, socket: UdpSocketId, from: &str, data: &[u8]) {
        self.c.handle_input(
            self.at(at_ms),
            Input::Datagram {
                socket,
                from: addr(from),
                data,
            },
        );
        self.drain();
    }

    /// A UDP session up to PLAY answered at 50 ms: both tracks on UDP,
    /// server ports 6970-6971 and 6972-6973.
    fn play_udp(&mut self) {
        self.connect(5);
        self.reply(10, "200 OK", "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n", "");
        self.reply(
            20,
            "200 OK",
            "Content-Base: rtsp://127.0.0.1:8554/a.mp4/\r\nContent-Type: application/sdp\r\n",
            SDP,
        );
        self.udp_opened(21, 0, Ok(50_000));
        self.reply(
            30,
            "200 OK",
            "Transport: RTP/AVP;unicast;client_port=50000-50001;server_port=6970-6971;ssrc=1234ABCD\r\nSession: abc;timeout=10\r\n",
            "",
        );
        self.udp_opened(31, 1, Ok(50_002));
        self.reply(
            40,
            "200 OK",
            "Transport: RTP/AVP;unicast;client_port=50002-50003;server_port=6972-6973\r\nSession: abc;timeout=10\r\n",
            "",
        );
        self.reply(50, "200 OK", "Session: abc\r\n", "");
    }

    /// The next deadline, in whole milliseconds after t0 (rounded up).
    fn deadline_ms(&self) -> u64 {
        let d = self.deadline.expect("a deadline") - self.t0;
        (d.as_micros() as u64).div_ceil(1000)
    }

    fn rtp_seqs(&self) -> Vec<u16> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Rtp(r) if r.track == 0 => Some(r.packet.sequence_number),
                _ => None,
            })
            .collect()
    }

    fn losses(&self) -> Vec<(u32, u16)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Loss(l) => Some((l.lost, l.sequence_number)),
                _ => None,
            })
            .collect()
    }

    fn sent_rtcp(&self) -> Vec<&RtcpEvent> {
        self.events
            .iter()
            .filter_map(|e| if let Event::RtcpSent(r) = e { Some(r) } else { None })
            .collect()
    }
}

fn udp_options() -> ClientOptions {
    ClientOptions {
        transport: Transport::Udp,
        ..Default::default()
    }
}

fn report_block(packets: &[RtcpPacket]) -> Option<crate::rtcp::ReportBlock> {
    packets.iter().find_map(|p| match p {
        RtcpPacket::ReceiverReport(rr) => rr.reports.first().copied(),
        _ => None,
    })
}

#[test]
fn udp_setup_asks_for_ports_then_sends_client_port_and_punches() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", udp_options());
    h.described();
    // No SETUP before the pair is open.
    assert_eq!(h.requests.len(), 2);
    assert_eq!(
        h.opens,
        [UdpRequest {
            pair: 0,
            bind: UdpBind::Unicast {
                local: "127.0.0.1".parse().unwrap(),
                ports: None
            }
        }]
    );
    h.udp_opened(21, 0, Ok(50_000));
    assert_eq!(
        h.last_request().headers.get("Transport"),
        Some("RTP/AVP;unicast;client_port=50000-50001")
    );
    h.reply(
        30,
        "200 OK",
        "Transport: RTP/AVP;unicast;client_port=50000-50001;server_port=6970-6971;ssrc=1234ABCD\r\nSession: abc\r\n",
        "",
    );
    let Some(Event::Method(m)) = h.events.iter().rev().find(|e| matches!(e, Event::Method(_))) else {
        panic!()
    };
    let track = m.track.as_ref().unwrap();
    assert_eq!(
        track.transport,
        TransportKind::Udp {
            client_ports: (50_000, 50_001),
            server_ports: Some((6970, 6971)),
            source: SERVER.parse().unwrap(),
            ssrc: Some(0x1234_abcd),
        }
    );
    // The punch: an RTP header to the server's RTP port, a report to its RTCP port.
    let to: Vec<(UdpSocketId, SocketAddr, usize)> = h.datagrams.iter().map(|(s, a, d)| (*s, *a, d.len())).collect();
    assert_eq!(to[0], (UdpSocketId::rtp(0), addr("127.0.0.1:6970"), 12));
    assert_eq!(to[1].0, UdpSocketId::rtcp(0));
    assert_eq!(to[1].1, addr("127.0.0.1:6971"));
    assert!(matches!(
        rtcp::parse_compound(&h.datagrams[1].2).unwrap()[0],
        RtcpPacket::ReceiverReport(_)
    ));
    // Then the second track's pair.
    assert_eq!(h.opens.len(), 2);
    assert_eq!(h.opens[1].pair, 1);
}

#[test]
fn datagrams_are_reordered_deduplicated_and_gaps_become_losses() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", udp_options());
    h.play_udp();
    let from = "127.0.0.1:6970";
    let rtp0 = UdpSocketId::rtp(0);
    h.datagram(60, rtp0, from, &raw_rtp(1, 0, &[1, 0xaa]));
    h.datagram(61, rtp0, from, &raw_rtp(3, 6000, &[1, 0xaa]));
    assert!(h.rtp_seqs().is_empty(), "1 waits for the packet after it, 3 for 2");
    assert_eq!(h.deadline, Some(h.at(160)), "the reorder window bounds the wait");
    h.datagram(62, rtp0, from, &raw_rtp(2, 3000, &[1, 0xaa]));
    assert_eq!(h.rtp_seqs(), [1, 2, 3]);
    h.datagram(63, rtp0, from, &raw_rtp(2, 3000, &[1, 0xaa]));
    h.datagram(70, rtp0, from, &raw_rtp(5, 12000, &[1, 0xaa]));
    assert!(h.losses().is_empty());
    h.timeout(169);
    assert_eq!(h.rtp_seqs(), [1, 2, 3], "the window has not passed");
    h.timeout(170);
    assert_eq!(h.rtp_seqs(), [1, 2, 3, 5]);
    assert_eq!(h.losses(), [(1, 5)]);
    // 4 comes too late: dropped, not a frame, not a second loss.
    h.datagram(171, rtp0, from, &raw_rtp(4, 9000, &[1, 0xaa]));
    assert_eq!(h.rtp_seqs(), [1, 2, 3, 5]);
    let s = h.c.track_stats()[0];
    assert_eq!((s.received, s.lost, s.duplicates, s.late), (4, 1, 1, 1));
    // recv_tick is the arrival, not the release.
    let ticks: Vec<Duration> = h
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Rtp(r) => Some(r.recv_tick),
            _ => None,
        })
        .collect();
    assert_eq!(ticks, [ms(60), ms(62), ms(61), ms(70)]);
    // Channels as over TCP: RTP 0, RTCP 1.
    assert!(h.events.iter().all(|e| !matches!(e, Event::Rtp(r) if r.channel != 0)));
}

#[test]
fn datagrams_from_anyone_but_the_server_are_dropped_and_counted() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", udp_options());
    h.play_udp();
    let rtp0 = UdpSocketId::rtp(0);
    h.datagram(60, rtp0, "127.0.0.1:9999", &raw_rtp(1, 0, &[1, 0xaa]));
    h.datagram(61, rtp0, "127.0.0.1:9999", &raw_rtp(2, 0, &[1, 0xaa]));
    // The server's address on the other socket's port is not the RTP port either.
    h.datagram(62, rtp0, "127.0.0.1:6971", &raw_rtp(3, 0, &[1, 0xaa]));
    h.datagram(63, rtp0, "10.0.0.1:6970", &raw_rtp(4, 0, &[1, 0xaa]));
    assert!(h.rtp_seqs().is_empty());
    assert_eq!(h.c.foreign_datagrams(), 4);
    let warned: Vec<SocketAddr> = h
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Warning(Warning::ForeignDatagram { track: 0, from }) => Some(*from),
            _ => None,
        })
        .collect();
    assert_eq!(
        warned,
        [addr("127.0.0.1:9999"), addr("127.0.0.1:6971"), addr("10.0.0.1:6970")]
    );
    h.datagram(64, rtp0, "127.0.0.1:6970", &raw_rtp(5, 0, &[1, 0xaa]));
    h.datagram(65, rtp0, "127.0.0.1:6970", &raw_rtp(6, 0, &[1, 0xaa]));
    assert_eq!(h.rtp_seqs(), [5, 6]);
}

#[test]
fn receiver_reports_and_bye_over_udp() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", udp_options());
    h.play_udp();
    let punches = h.datagrams.len();
    let rtp0 = UdpSocketId::rtp(0);
    for (i, seq) in [1u16, 2, 4, 5].into_iter().enumerate() {
        h.datagram(
            60 + 20 * i as u64,
            rtp0,
            "127.0.0.1:6970",
            &raw_rtp(seq, 1800 * u32::from(seq), &[1, 0xaa]),
        );
    }
    // A sender report on the RTCP socket: noted for LSR/DLSR.
    let mut sr = BytesMut::new();
    rtcp::encode_sender_report(
        &rtcp::SenderReport {
            ssrc: 0x1234_5678,
            ntp_timestamp: 0xaaaa_bbbb_cccc_dddd,
            ..Default::default()
        },
        &mut sr,
    );
    h.timeout(200); // 4 waited the reorder window: 3 is lost
    h.datagram(200, UdpSocketId::rtcp(0), "127.0.0.1:6971", &sr);
    assert!(h.events.iter().any(|e| matches!(e, Event::Rtcp(r) if r.channel == 1)));
    // The first report: between 0.5 and 1.5 × 2.5 s (÷ e − 3/2) after PLAY.
    let first = h.deadline.unwrap();
    assert!(
        first >= h.at(50 + 1020) && first <= h.at(50 + 3080),
        "{:?}",
        first - h.t0
    );
    let t = h.deadline_ms();
    h.timeout(t);
    let sent: Vec<_> = h.datagrams[punches..].to_vec();
    assert_eq!(sent.len(), 2, "a report per track");
    assert_eq!((sent[0].0, sent[0].1), (UdpSocketId::rtcp(0), addr("127.0.0.1:6971")));
    assert_eq!((sent[1].0, sent[1].1), (UdpSocketId::rtcp(1), addr("127.0.0.1:6973")));
    let block = report_block(&rtcp::parse_compound(&sent[0].2).unwrap()).unwrap();
    assert_eq!(block.ssrc, 0x1234_5678);
    assert_eq!(block.cumulative_lost, 1);
    assert_eq!(block.fraction_lost, (256 / 5) as u8);
    assert_eq!(block.highest_sequence, 5);
    assert_eq!(block.last_sr, 0xbbbb_cccc);
    let dlsr_ms = u64::from(block.delay_since_last_sr) * 1000 / 65536;
    assert!(dlsr_ms.abs_diff(t - 200) <= 1, "{dlsr_ms} vs {}", t - 200);
    // The second track got no packet: a report without a block.
    assert!(report_block(&rtcp::parse_compound(&sent[1].2).unwrap()).is_none());
    let events = h.sent_rtcp();
    assert_eq!(events.len(), 4, "the punches' reports, then this round");
    // The next report comes 5 s × [0.5, 1.5] ÷ (e − 3/2) later.
    let next = h.c.udp.reports_at.unwrap();
    assert!(next >= h.at(t + 2050) && next <= h.at(t + 6160), "{:?}", next - h.at(t));
    // Stop: a BYE on every track, then TEARDOWN.
    h.c.handle_input(h.at(t + 10), Input::Close);
    h.drain();
    let byes: Vec<_> = h.datagrams[punches + 2..].to_vec();
    assert_eq!(byes.len(), 2);
    for (_, _, d) in &byes {
        assert!(rtcp::parse_compound(d)
            .unwrap()
            .iter()
            .any(|p| matches!(p, RtcpPacket::Bye(_))));
    }
    assert_eq!(h.last_request().method, Method::Teardown);
}

#[test]
fn receiver_reports_go_interleaved_over_tcp() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.play("OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN");
    h.input(60, &rtp(0, 10, 0, true, &[1, 0xaa]));
    h.input(80, &rtp(0, 12, 3000, true, &[1, 0xaa]));
    let mut at = 80;
    for _ in 0..10 {
        if !h.interleaved.is_empty() {
            break;
        }
        at = h.deadline_ms();
        h.input(at, &rtp(2, 1, 0, true, &[0x21, 0x10])); // keeps the session fed
        h.timeout(at);
    }
    assert!(
        at <= 50 + 3080,
        "{:?} the first report is due within 3.08 s of PLAY, came at {at} ms",
        h.events
    );
    let channels: Vec<u8> = h.interleaved.iter().map(|(c, _)| *c).collect();
    assert_eq!(channels, [1, 3]);
    let block = report_block(&rtcp::parse_compound(&h.interleaved[0].1).unwrap()).unwrap();
    assert_eq!((block.cumulative_lost, block.highest_sequence), (1, 12));
    assert_eq!(h.sent_rtcp().len(), 2);
    // Off: nothing is sent.
    let mut h = Harness::new(
        "rtsp://127.0.0.1:8554/a.mp4",
        ClientOptions {
            rtcp_reports: false,
            ..Default::default()
        },
    );
    h.play("OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN");
    h.timeout(4000);
    h.c.handle_input(h.at(4001), Input::Close);
    h.drain();
    assert!(h.interleaved.is_empty() && h.sent_rtcp().is_empty());
}

#[test]
fn auto_falls_back_to_tcp_when_setup_over_udp_is_refused() {
    let opts = ClientOptions {
        transport: Transport::Auto,
        ..Default::default()
    };
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", opts);
    h.described();
    h.udp_opened(21, 0, Ok(50_000));
    assert!(h
        .last_request()
        .headers
        .get("Transport")
        .unwrap()
        .starts_with("RTP/AVP;unicast"));
    h.reply(30, "461 Unsupported Transport", "", "");
    let fb = h
        .events
        .iter()
        .find_map(|e| if let Event::Fallback(f) = e { Some(f) } else { None })
        .expect("a Fallback event");
    assert_eq!((fb.from, fb.to), (Transport::Udp, Transport::Tcp));
    assert!(fb.reason.contains("461"), "{}", fb.reason);
    assert_eq!(h.last_request().method, Method::Setup);
    assert_eq!(
        h.last_request().headers.get("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=0-1")
    );
    assert!(h.closed().is_none());
    assert_eq!(h.c.transport(), Transport::Tcp);
    // Without Auto, 461 ends the session.
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", udp_options());
    h.described();
    h.udp_opened(21, 0, Ok(50_000));
    h.reply(30, "461 Unsupported Transport", "", "");
    assert!(matches!(
        h.closed().unwrap().error,
        Some(Error::Response { status: 461, .. })
    ));
}

#[test]
fn auto_falls_back_to_a_fresh_tcp_session_when_no_rtp_arrives() {
    let opts = ClientOptions {
        transport: Transport::Auto,
        ..Default::default()
    };
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", opts);
    h.play_udp();
    assert_eq!(h.c.transport(), Transport::Udp);
    // RTCP alone does not count: only RTP shows the path works.
    let mut sr = BytesMut::new();
    rtcp::encode_sender_report(&rtcp::SenderReport::default(), &mut sr);
    h.datagram(100, UdpSocketId::rtcp(0), "127.0.0.1:6971", &sr);
    assert!(h.deadline.unwrap() <= h.at(50 + 3000));
    h.timeout(3049);
    assert!(!h.events.iter().any(|e| matches!(e, Event::Fallback(_))));
    let before = h.requests.len();
    h.timeout(3050);
    assert!(h
        .events
        .iter()
        .any(|e| matches!(e, Event::Fallback(f) if f.reason.contains("no RTP"))));
    assert_eq!(h.requests.len(), before + 1);
    assert_eq!(h.last_request().method, Method::Teardown);
    assert_eq!(h.reconnects, 0, "TEARDOWN first");
    h.reply(3060, "200 OK", "Session: abc\r\n", "");
    assert_eq!(h.reconnects, 1);
    assert!(h.closed().is_none(), "not closed: a fresh session follows");
    // The fresh session: a new connection, over TCP from the start.
    let opens = h.opens.len();
    h.connect(3070);
    h.reply(3080, "200 OK", "", "");
    h.reply(3090, "200 OK", "Content-Type: application/sdp\r\n", SDP);
    assert_eq!(h.opens.len(), opens, "no UDP asked any more");
    assert_eq!(
        h.last_request().headers.get("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=0-1")
    );
    assert_eq!(h.last_request().headers.get("Session"), None, "the old session is gone");
    let connects = h.events.iter().filter(|e| matches!(e, Event::Connect(_))).count();
    assert_eq!(connects, 2);
}

#[test]
fn auto_stays_on_udp_when_rtp_arrives() {
    let opts = ClientOptions {
        transport: Transport::Auto,
        ..Default::default()
    };
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", opts);
    h.play_udp();
    h.datagram(2000, UdpSocketId::rtp(0), "127.0.0.1:6970", &raw_rtp(1, 0, &[1, 0xaa]));
    h.timeout(3050);
    assert!(!h.events.iter().any(|e| matches!(e, Event::Fallback(_))));
}

#[test]
fn a_user_stop_during_the_fallback_ends_the_session() {
    let opts = ClientOptions {
        transport: Transport::Auto,
        ..Default::default()
    };
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", opts);
    h.play_udp();
    h.timeout(3050);
    h.c.handle_input(h.at(3055), Input::Close);
    h.drain();
    h.reply(3060, "200 OK", "Session: abc\r\n", "");
    assert_eq!(h.reconnects, 0);
    assert!(h.closed().is_some_and(|c| c.error.is_none()));
}

#[test]
fn udp_ports_that_cannot_be_opened() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", udp_options());
    h.described();
    h.udp_opened(21, 0, Err("no free port pair in 5000-5001"));
    let e = h.closed().unwrap().error.as_ref().unwrap().to_string();
    assert!(
        e.contains("cannot open UDP ports for track 0") && e.contains("5000-5001"),
        "{e}"
    );
    // With Auto: TCP instead.
    let opts = ClientOptions {
        transport: Transport::Auto,
        ..Default::default()
    };
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", opts);
    h.described();
    h.udp_opened(21, 0, Err("denied"));
    assert!(h.events.iter().any(|e| matches!(e, Event::Fallback(_))));
    assert_eq!(
        h.last_request().headers.get("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=0-1")
    );
    // An answer for a pair nobody waits for is ignored.
    h.udp_opened(22, 7, Ok(1));
    assert!(h.closed().is_none());
}

#[test]
fn multicast_joins_the_group_the_server_names() {
    let opts = ClientOptions {
        transport: Transport::Multicast,
        enable_audio: false,
        ..Default::default()
    };
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", opts);
    h.described();
    assert_eq!(h.last_request().headers.get("Transport"), Some("RTP/AVP;multicast"));
    assert!(h.opens.is_empty(), "the group is not known before the reply");
    h.reply(
        30,
        "200 OK",
        "Transport: RTP/AVP;multicast;destination=239.1.2.3;port=5000-5001;ttl=1\r\nSession: m\r\n",
        "",
    );
    assert_eq!(
        h.opens,
        [UdpRequest {
            pair: 0,
            bind: UdpBind::Multicast {
                group: "239.1.2.3".parse().unwrap(),
                port: 5000,
                source: Some(SERVER.parse().unwrap()),
                interface: "127.0.0.1".parse().unwrap(),
            }
        }]
    );
    assert_eq!(h.last_request().method, Method::Setup, "PLAY waits for the join");
    h.udp_opened(31, 0, Ok(5000));
    assert_eq!(h.last_request().method, Method::Play);
    h.reply(40, "200 OK", "Session: m\r\n", "");
    // From the server, any port; from anyone else, dropped.
    h.datagram(50, UdpSocketId::rtp(0), "127.0.0.1:41000", &raw_rtp(1, 0, &[1, 0xaa]));
    h.datagram(51, UdpSocketId::rtp(0), "127.0.0.2:41000", &raw_rtp(2, 0, &[1, 0xaa]));
    h.timeout(150); // the first packet's window: nothing came after it
    assert_eq!(h.rtp_seqs(), [1]);
    assert_eq!(h.c.foreign_datagrams(), 1);
    // Reports go to the group's RTCP port.
    assert!(h.closed().is_none(), "{:?}", h.events);
    let t = h.deadline_ms();
    h.timeout(t);
    let (socket, to, _) = h.datagrams.last().unwrap();
    assert_eq!((*socket, *to), (UdpSocketId::rtcp(0), addr("239.1.2.3:5001")));
}

#[test]
fn bad_multicast_replies_are_typed_errors() {
    for reply in [
        "RTP/AVP;multicast;port=5000-5001",
        "RTP/AVP;multicast;destination=10.0.0.1;port=5000-5001",
        "RTP/AVP;multicast;destination=239.1.1.1",
        "RTP/AVP;multicast;destination=239.1.1.1;port=x",
        "RTP/AVP;unicast;server_port=1-2",
    ] {
        let opts = ClientOptions {
            transport: Transport::Multicast,
            ..Default::default()
        };
        let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", opts);
        h.connect(5);
        h.reply(10, "200 OK", "", "");
        h.reply(20, "200 OK", "Content-Type: application/sdp\r\n", SDP);
        h.reply(30, "200 OK", &format!("Transport: {reply}\r\nSession: m\r\n"), "");
        let err = h.closed().and_then(|c| c.error.clone());
        assert!(
            matches!(
                err,
                Some(Error::Protocol(ProtocolError::MissingHeader {
                    header: "Transport",
                    ..
                }))
            ),
            "{reply}: {err:?}"
        );
    }
}

#[test]
fn a_udp_session_replays_from_its_capture() {
    let opts = ClientOptions {
        capture: Some("unused".into()),
        ..udp_options()
    };
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", opts);
    h.play_udp();
    for seq in [1u16, 3, 2, 6] {
        h.datagram(
            60 + u64::from(seq),
            UdpSocketId::rtp(0),
            "127.0.0.1:6970",
            &raw_rtp(seq, 0, &[1, 0xaa]),
        );
    }
    h.datagram(70, UdpSocketId::rtp(0), "127.0.0.1:1", &raw_rtp(9, 0, &[1, 0xaa]));
    let t = h.deadline_ms();
    h.timeout(t);
    h.c.handle_input(h.at(t + 1), Input::Close);
    h.drain();
    h.reply(t + 2, "200 OK", "Session: abc\r\n", "");
    assert!(h.done);
    let capture = crate::capture::Capture::parse(&h.c.take_capture().unwrap()).unwrap();
    let replayed = crate::capture::replay(&capture, ClientOptions::default(), h.t0).unwrap();
    assert_eq!(replayed, h.events);
    assert!(h.events.iter().any(|e| matches!(e, Event::Loss(_))));
    assert!(h.events.iter().any(|e| matches!(e, Event::RtcpSent(_))));
}

#[test]
fn a_server_may_answer_a_unicast_setup_with_multicast() {
    let opts = ClientOptions {
        enable_audio: false,
        ..udp_options()
    };
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", opts);
    h.described();
    h.udp_opened(21, 0, Ok(50_000));
    h.reply(
        30,
        "200 OK",
        "Transport: RTP/AVP;multicast;destination=239.9.9.9;port=6000-6001\r\nSession: m\r\n",
        "",
    );
    // The pair is asked for again, now as the group's.
    assert_eq!(h.opens.len(), 2);
    assert!(matches!(h.opens[1].bind, UdpBind::Multicast { port: 6000, .. }));
    h.udp_opened(31, 0, Ok(6000));
    assert_eq!(h.last_request().method, Method::Play);
}

#[test]
fn a_runtime_that_never_opens_the_ports_is_a_timeout() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", udp_options());
    h.described();
    assert_eq!(h.deadline, Some(h.at(4020)), "a deadline, not a busy loop");
    h.timeout(4019);
    assert!(h.closed().is_none());
    h.timeout(4020);
    let e = h.closed().unwrap().error.as_ref().unwrap().to_string();
    assert!(e.contains("UDP ports for track 0"), "{e}");
}

#[test]
fn a_zero_fallback_wait_is_a_config_error() {
    let opts = ClientOptions {
        transport: Transport::Auto,
        udp_fallback_after: Duration::ZERO,
        ..Default::default()
    };
    let e = Client::new("rtsp://h/x", opts, Instant::now()).unwrap_err();
    assert!(
        matches!(e, Error::Config(ref m) if m.contains("udp_fallback_after")),
        "{e}"
    );
}

#[test]
fn a_sender_that_restarts_its_sequence_is_not_a_huge_loss() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", udp_options());
    h.play_udp();
    let rtp0 = UdpSocketId::rtp(0);
    for seq in [1000u16, 1001, 1002, 40000, 40001, 40002, 40004] {
        h.datagram(60, rtp0, "127.0.0.1:6970", &raw_rtp(seq, 0, &[1, 0xaa]));
    }
    h.timeout(200);
    // 40000 waits for its confirmation, then the new sequence runs; only 40003 is lost.
    assert_eq!(h.losses(), [(1, 40004)]);
    assert_eq!(h.rtp_seqs(), [1000, 1001, 1002, 40001, 40002, 40004]);
    let block = h.c.tracks[0].reception.clone().report_block(h.at(300)).unwrap();
    assert_eq!((block.cumulative_lost, block.highest_sequence), (1, 40004));
}

#[test]
fn other_receivers_and_our_own_reports_on_a_multicast_group_are_not_the_server() {
    let opts = ClientOptions {
        transport: Transport::Multicast,
        enable_audio: false,
        ..Default::default()
    };
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", opts);
    h.described();
    h.reply(
        30,
        "200 OK",
        "Transport: RTP/AVP;multicast;destination=239.1.2.3;port=5000-5001;ssrc=00000007\r\nSession: m\r\n",
        "",
    );
    h.udp_opened(31, 0, Ok(5000));
    h.reply(40, "200 OK", "Session: m\r\n", "");
    let rtcp0 = UdpSocketId::rtcp(0);
    // Another receiver on the same host leaves: its BYE comes from the server's address.
    let mut other = BytesMut::new();
    rtcp::encode_receiver_report(
        &rtcp::ReceiverReport {
            ssrc: 99,
            reports: vec![],
        },
        &mut other,
    );
    rtcp::encode_bye(&[99], None, &mut other);
    h.datagram(50, rtcp0, "127.0.0.1:5001", &other);
    // Another receiver elsewhere: not a stranger, not ours to read.
    h.datagram(51, rtcp0, "10.0.0.9:5001", &other);
    // Our own report, looped back.
    let own = h.c.udp.own_ssrc();
    let mut ours = BytesMut::new();
    rtcp::encode_receiver_report(
        &rtcp::ReceiverReport {
            ssrc: own,
            reports: vec![],
        },
        &mut ours,
    );
    rtcp::encode_bye(&[own], None, &mut ours);
    h.datagram(52, rtcp0, "127.0.0.1:5001", &ours);
    assert!(h.closed().is_none(), "{:?}", h.events);
    assert_eq!(h.c.foreign_datagrams(), 0);
    assert_eq!(
        h.events.iter().filter(|e| matches!(e, Event::Rtcp(_))).count(),
        1,
        "only the other local receiver's compound is an event"
    );
    // The server's own BYE ends it.
    let mut bye = BytesMut::new();
    rtcp::encode_bye(&[7], None, &mut bye);
    h.datagram(60, rtcp0, "127.0.0.1:41001", &bye);
    assert_eq!(h.last_request().method, Method::Teardown);
}

#[test]
fn a_failed_join_after_a_multicast_answer_falls_back_without_a_second_track() {
    let opts = ClientOptions {
        transport: Transport::Auto,
        enable_audio: false,
        ..Default::default()
    };
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", opts);
    h.described();
    h.udp_opened(21, 0, Ok(50_000));
    h.reply(
        30,
        "200 OK",
        "Transport: RTP/AVP;multicast;destination=239.9.9.9;port=6000-6001\r\nSession: m\r\n",
        "",
    );
    h.udp_opened(31, 0, Err("no multicast route"));
    assert!(h.events.iter().any(|e| matches!(e, Event::Fallback(_))));
    assert_eq!(
        h.last_request().headers.get("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=0-1")
    );
    h.reply(
        40,
        "200 OK",
        "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: m\r\n",
        "",
    );
    assert_eq!(
        h.c.tracks().count(),
        1,
        "the multicast track was replaced, not kept beside"
    );
}

#[test]
fn a_runtime_that_reports_an_impossible_port_is_an_error() {
    for port in [0u16, 5001, 65535] {
        let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", udp_options());
        h.connect(5);
        h.reply(10, "200 OK", "", "");
        h.reply(20, "200 OK", "Content-Type: application/sdp\r\n", SDP);
        h.udp_opened(21, 0, Ok(port));
        let e = h.closed().unwrap().error.as_ref().unwrap().to_string();
        assert!(e.contains("not even"), "{port}: {e}");
    }
}
