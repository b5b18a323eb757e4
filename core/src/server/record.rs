//! A live path's two ends on a connection: answering a publisher (ANNOUNCE,
//! SETUP with `mode=record`, RECORD, its interleaved RTP) and feeding a
//! reader (its PLAY and PAUSE, the publisher's packets passed on, the end).
//! The rules are in the `live` module; the fan-out between connections is
//! the runtime's (`docs/ARCHITECTURE.md`, "Live paths").

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::headers::{parse_transport, Offer, Requested};
use super::live::{self, AnnounceError};
use super::request::RequestInfo;
use super::sdp_writer::npt;
use super::stream::State;
use super::track_out::Sink;
use super::{Connection, Pending, Publishing, ServerEvent, ServerOutput, Wait};
use crate::message::{Headers, Request};
use crate::rtp::RtpPacket;
use crate::source::MediaSource;

impl Connection {
    /// ANNOUNCE: a publisher's SDP for a path it may publish to; the answer
    /// waits for the runtime to make the path live.
    pub(super) fn on_announce(&mut self, now: Instant, req: Request, info: RequestInfo) {
        let fail = |this: &mut Self, status: u16| this.respond(now, &info, status, Headers::new(), Bytes::new());
        let target = match self.target(&req) {
            Ok(t) => t,
            Err(status) => return fail(self, status),
        };
        if !self.config.may_publish(&target.path) {
            tracing::debug!(path = target.path.as_str(), "ANNOUNCE of a path not published to");
            return fail(self, 403);
        }
        if self.session.is_some() || self.publishing.as_ref().is_some_and(|p| p.recording) {
            return fail(self, 455);
        }
        let sdp = req
            .headers
            .get("Content-Type")
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/sdp"));
        if !sdp {
            return fail(self, 415);
        }
        let announced = match live::announced_source(&req.body) {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %e, "ANNOUNCE refused");
                if matches!(e, AnnounceError::NoTrack(_)) {
                    return fail(self, 415);
                }
                // The 400's text/plain body says why.
                self.fault_refusal = Some(e.to_string());
                return fail(self, 400);
            }
        };
        let token = self.next_token;
        self.next_token += 1;
        let announced = Arc::new(announced);
        self.queue.push_back(ServerOutput::Announce {
            token,
            path: target.path.clone(),
            source: announced.source.clone(),
        });
        self.pending = Some(Pending {
            token,
            request: req,
            wait: Wait::Announce(announced),
        });
    }

    pub(super) fn on_announced(&mut self, now: Instant, token: u64, result: Result<(), &str>) {
        let Some(Pending {
            request,
            wait: Wait::Announce(announced),
            ..
        }) = self.answered(token, |w| matches!(w, Wait::Announce(_)))
        else {
            return;
        };
        let _g = self.span.clone().entered();
        let info = RequestInfo::of(&request);
        match result {
            Ok(()) => {
                let path = self.target(&request).map(|t| t.path).unwrap_or_default();
                tracing::debug!(
                    path = path.as_str(),
                    tracks = announced.source.tracks.len(),
                    "announced"
                );
                self.publishing = Some(Publishing {
                    path,
                    channels: vec![None; announced.source.tracks.len()],
                    announced,
                    recording: false,
                });
                self.respond(now, &info, 200, Headers::new(), Bytes::new());
            }
            Err(why) => {
                tracing::debug!(why, "the path cannot be published");
                self.respond(now, &info, 455, Headers::new(), Bytes::new());
            }
        }
        self.resume_held(now);
    }

    /// A publisher's SETUP: `mode=record`, interleaved channels (RTP over
    /// UDP from a publisher is not taken: 461, after which FFmpeg and
    /// GStreamer set up over TCP).
    pub(super) fn on_setup_record(&mut self, now: Instant, req: &Request, info: RequestInfo) {
        let fail = |this: &mut Self, status: u16| this.respond(now, &info, status, Headers::new(), Bytes::new());
        let Some(publishing) = self.publishing.as_ref() else {
            return fail(self, 455);
        };
        if publishing.recording {
            return fail(self, 455);
        }
        let transport = req.headers.get("Transport").unwrap_or("");
        let Some(spec) = transport.split(',').find(|spec| is_record(spec)) else {
            tracing::debug!(transport, "a publisher's SETUP without mode=record");
            return fail(self, 455);
        };
        // The readers' Transport rules, with interleaved TCP the only transport offered.
        let tcp_only = Offer {
            udp: false,
            multicast: false,
        };
        let asked = match parse_transport(Some(spec), self.peer.ip(), tcp_only) {
            Ok(Requested::Interleaved(channels)) => channels,
            _ => {
                tracing::debug!(transport, "only interleaved RTP is taken from a publisher");
                return fail(self, 461);
            }
        };
        let Some(track) = live::track_of_setup(&publishing.announced, &req.uri) else {
            return fail(self, 404);
        };
        let Some((rtp, rtcp)) = asked.or_else(|| {
            let rtp = u8::try_from(2 * track).ok()?;
            Some((rtp, rtp.checked_add(1)?))
        }) else {
            return fail(self, 461);
        };
        let taken = publishing
            .channels
            .iter()
            .enumerate()
            .any(|(i, c)| i != track && c.is_some_and(|(a, b)| [a, b].contains(&rtp) || [a, b].contains(&rtcp)));
        if taken {
            return fail(self, 461);
        }
        let id = self.session_id.clone();
        let secs = self.session_timeout().as_secs().max(1);
        if let Some(p) = self.publishing.as_mut() {
            p.channels[track] = Some((rtp, rtcp));
        }
        let h = Headers::new().with("Session", format!("{id};timeout={secs}")).with(
            "Transport",
            format!("RTP/AVP/TCP;unicast;interleaved={rtp}-{rtcp};mode=record"),
        );
        self.respond(now, &info, 200, h, Bytes::new());
    }

    /// RECORD: the publisher's packets are passed on from now on.
    pub(super) fn on_record(&mut self, now: Instant, info: RequestInfo) {
        let id = self.session_id.clone();
        let Some(p) = self
            .publishing
            .as_mut()
            .filter(|p| p.channels.iter().any(Option::is_some))
        else {
            return self.respond(now, &info, 455, Headers::new(), Bytes::new());
        };
        let first = !p.recording;
        p.recording = true;
        let event = ServerEvent::Publishing {
            session_id: id.clone(),
            path: p.path.clone(),
            tracks: p.channels.iter().filter(|c| c.is_some()).count(),
            skipped: p.announced.skipped.clone(),
        };
        self.respond(now, &info, 200, Headers::new().with("Session", id), Bytes::new());
        if first {
            self.queue.push_back(ServerOutput::Event(event));
        }
    }

    /// Interleaved data from a publisher: RTP on a set-up track's channel
    /// after RECORD is passed on; its RTCP and anything else is a sign of
    /// life only.
    pub(super) fn on_published(&mut self, now: Instant, channel: u8, payload: Bytes) {
        let Some(p) = self.publishing.as_ref() else {
            return;
        };
        self.last_activity = now;
        let Some(track) = p.channels.iter().position(|c| c.is_some_and(|(rtp, _)| rtp == channel)) else {
            return;
        };
        if !p.recording {
            return;
        }
        match RtpPacket::parse(payload) {
            Ok(packet) => self.queue.push_back(ServerOutput::Published { track, packet }),
            Err(e) => tracing::debug!(error = %e, track, "unusable RTP from the publisher; dropped"),
        }
    }

    /// A lookup found a live path: DESCRIBE or SETUP goes on with its source.
    pub(super) fn on_live_found(&mut self, now: Instant, token: u64, source: Arc<MediaSource>) {
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.token == token && matches!(p.wait, Wait::Lookup))
        {
            self.live_described = Some(source.clone());
        }
        self.on_lookup(now, token, Ok(source));
    }

    /// Whether `source` is the live path's presentation this connection found.
    pub(super) fn is_live_source(&self, source: &Arc<MediaSource>) -> bool {
        self.live_described.as_ref().is_some_and(|l| Arc::ptr_eq(l, source))
    }

    /// A live reader's PLAY (first, or after a PAUSE): packets are passed on
    /// from each track's next keyframe. `Range` and `Scale` are not
    /// followed (a live stream has one position: now).
    pub(super) fn play_live(&mut self, now: Instant, info: RequestInfo) {
        let interval = self.rtcp_interval;
        let Some(session) = self.session.as_mut() else {
            return self.respond(now, &info, 455, Headers::new(), Bytes::new());
        };
        let first = session.is_ready();
        if !first && !session.is_live() {
            // Ended: the publisher left.
            return self.respond(now, &info, 455, Headers::new(), Bytes::new());
        }
        session.play_live(now, interval);
        let rtp_info: Vec<String> = session
            .tracks
            .iter()
            .map(|t| format!("url={};seq={}", t.url, t.next_seq()))
            .collect();
        let event = if first {
            ServerEvent::SessionStarted {
                session_id: session.id.clone(),
                path: session.path.clone(),
                tracks: session.tracks.len(),
                play_count: self.play_count,
                transport: session.transport(),
            }
        } else {
            ServerEvent::Resumed {
                session_id: session.id.clone(),
                npt: std::time::Duration::ZERO,
                scale: None,
            }
        };
        let path = session.path.clone();
        let h = self
            .session_headers(false)
            .with("Range", format!("npt={}-", npt(std::time::Duration::ZERO)))
            .with("RTP-Info", rtp_info.join(","));
        self.respond(now, &info, 200, h, Bytes::new());
        self.queue.push_back(ServerOutput::Event(event));
        if !self.reading_live {
            self.reading_live = true;
            self.queue.push_back(ServerOutput::ReadLive { path });
        }
    }

    pub(super) fn on_live_packet(&mut self, now: Instant, track: usize, packet: &RtpPacket) {
        if self.closed {
            return;
        }
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let mut sink = Sink::new(
            &mut self.out,
            &mut self.queue,
            &mut self.datagram_buf,
            self.faults.as_mut(),
        );
        if session.forward(now, track, packet, &mut sink) {
            self.live_forwarded += 1;
        }
    }

    /// The publisher left: the end of the stream, as at the end of a file.
    pub(super) fn on_live_ended(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        let ntp = self.ntp_at(now);
        let linger = self.config.linger_after_end;
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let _g = self.span.clone().entered();
        let mut sink = Sink::new(
            &mut self.out,
            &mut self.queue,
            &mut self.datagram_buf,
            self.faults.as_mut(),
        );
        if let Some(f) = session.end_live(now, ntp, &mut sink, linger) {
            tracing::debug!(packets = f.packets, "the live path ended");
            let event = ServerEvent::PlaybackEnded {
                session_id: session.id.clone(),
                loops: 0,
                packets: f.packets,
                octets: f.octets,
            };
            self.queue.push_back(ServerOutput::Event(event));
        } else if matches!(session.state, State::Ready) {
            // Set up, not playing: nothing to read any more.
            session.state = State::Ended {
                close_at: super::later(now, linger),
            };
        }
    }
}

/// Whether a `Transport` spec has `mode=record` (RFC 2326 §12.39: the mode
/// may be quoted; `receive` is RFC 2326's other name for it).
fn is_record(spec: &str) -> bool {
    spec.split(';').filter_map(|p| p.split_once('=')).any(|(n, v)| {
        let v = v.trim().trim_matches('"');
        n.trim().eq_ignore_ascii_case("mode") && (v.eq_ignore_ascii_case("record") || v.eq_ignore_ascii_case("receive"))
    })
}
