//! Answering requests: one handler per method, the replies and their
//! events, and the `Transport` and `Range` rules of the module docs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::clock;
use super::fault_run::FaultRun;
use super::faults::{self, Faults, Quirk};
use super::headers::{
    parse_npt_range, parse_transport, range_end, reason, session_id_of, starts_at_zero, wants_backchannel, Offer,
    Requested, BACKCHANNEL_TAG, MAX_SESSION_ID,
};
use super::sdp_writer::{npt, session_description, Description};
use super::stream::{PlayFrom, Session, State};
use super::track_out::{Delivery, UdpDelivery};
use super::{
    path, Connection, Joined, MulticastPosition, MulticastRequest, MulticastTrack, OpenPair, Pending, PlayCount,
    ServerEvent, ServerOutput, Target, TargetError, UdpRequest, Wait,
};
use crate::message::{Headers, Method, Request, Response};
use crate::source::MediaSource;

/// The methods this server implements, for `Public` and `Allow`.
pub(super) const PUBLIC: &str = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER";
/// Largest `Scale` served (faster is a burst the `max_lag` bound would cut).
const MAX_SCALE: f64 = 64.0;

/// Longest Request-URI kept in events.
pub(super) const MAX_EVENT_URI: usize = 512;

/// How a request's `Session` header relates to the connection's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionHeader {
    Absent,
    Matches,
    /// Names a session this connection does not have.
    Unknown,
}

impl Connection {
    /// Handles one request; `found` is the source a lookup for it gave.
    pub(super) fn dispatch(&mut self, now: Instant, req: Request, found: Option<Arc<MediaSource>>) {
        let info = RequestInfo::of(&req);
        if info.cseq.is_none() {
            return self.respond(now, &info, 400, Headers::new(), Bytes::new());
        }
        // The camera simulator's `unauthorized_after_play`: nothing is
        // allowed once the media plays.
        if self.faults.as_ref().is_some_and(FaultRun::has_played)
            && self.quirk(Quirk::UnauthorizedAfterPlay, &info.method)
        {
            let h = Headers::new().with("WWW-Authenticate", "Basic realm=\"camera\"");
            return self.respond(now, &info, 401, h, Bytes::new());
        }
        // A client still talking after the end (GStreamer PAUSEs, then
        // TEARDOWNs; a player seeks back) gets the whole linger again.
        let linger = self.config.linger_after_end;
        if let Some(State::Ended { close_at }) = self.session.as_mut().map(|s| &mut s.state) {
            *close_at = (*close_at).max(now.checked_add(linger).unwrap_or(now));
        }
        // Asked once per request: a request dispatched again with what it
        // waited for (`found`) passed already.
        if let (Some(auth), None, false) = (self.config.auth.clone(), &found, req.method == Method::Options) {
            if !self.authenticate(now, &req, &info, &auth) {
                return;
            }
        }
        // The camera simulator's `reauth_after_play` without the server's
        // users: the camera asks for Digest once the media plays.
        if self.config.auth.is_none()
            && found.is_none()
            && req.method != Method::Options
            && self
                .faults
                .as_ref()
                .is_some_and(|f| f.has_played() && f.spec.has(Quirk::ReauthAfterPlay))
            && !self.reauth_answered(now, &req, &info)
        {
            return;
        }
        // RFC 2326 §12.32: a `Require` tag the server does not support is
        // 551, with the tags in `Unsupported`.
        let unsupported: Vec<&str> = req
            .headers
            .get_all("Require")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .filter(|t| !(self.config.backchannel && t.eq_ignore_ascii_case(BACKCHANNEL_TAG)))
            .collect();
        if !unsupported.is_empty() {
            let h = Headers::new().with("Unsupported", unsupported.join(", "));
            return self.respond(now, &info, 551, h, Bytes::new());
        }
        match req.method {
            Method::Options => {
                // The first request a client sends: its URL's faults (valid
                // ones; OPTIONS does not look at the URI otherwise) already
                // apply to the answer.
                if let Ok(t) = path::parse_target(&req.uri) {
                    if let Some(spec) = self.faults_of(&t) {
                        self.set_faults(spec);
                    }
                }
                let h = if self.quirk(Quirk::NoPublic, &info.method) {
                    Headers::new()
                } else {
                    Headers::new().with("Public", self.public())
                };
                self.respond(now, &info, 200, h, Bytes::new());
            }
            Method::Describe => self.on_describe(now, req, info, found),
            Method::Setup if self.publishing.is_some() => self.on_setup_record(now, &req, info),
            Method::Setup => self.on_setup(now, req, info, found),
            Method::Play => self.on_play(now, &req, info),
            Method::Teardown => {
                if self.session_header(&req) == SessionHeader::Unknown {
                    return self.ask_other_session(now, req, &info, true);
                }
                self.respond(now, &info, 200, Headers::new(), Bytes::new());
                self.teardown(now);
            }
            Method::GetParameter | Method::SetParameter => {
                if self.quirk(Quirk::NoGetParameter, &info.method) {
                    return self.respond(now, &info, 501, Headers::new(), Bytes::new());
                }
                if self.session_header(&req) == SessionHeader::Unknown {
                    return self.ask_other_session(now, req, &info, false);
                }
                let status = if req.method == Method::SetParameter && !req.body.is_empty() {
                    451
                } else {
                    200
                };
                let h = self.session_headers(false);
                self.respond(now, &info, status, h, Bytes::new());
            }
            Method::Pause => self.on_pause(now, &req, info),
            Method::Announce if !self.config.publish.is_empty() => self.on_announce(now, req, info),
            Method::Record if !self.config.publish.is_empty() => self.on_record(now, info),
            Method::Announce | Method::Record | Method::Redirect => {
                let h = Headers::new().with("Allow", self.public());
                self.respond(now, &info, 405, h, Bytes::new());
            }
            Method::Other(_) => self.respond(now, &info, 501, Headers::new(), Bytes::new()),
        }
    }

    /// The methods answered, for `Public` and `Allow`: [`PUBLIC`], and
    /// ANNOUNCE and RECORD when paths may be published to.
    fn public(&self) -> String {
        if self.config.publish.is_empty() {
            PUBLIC.to_owned()
        } else {
            format!("{PUBLIC}, ANNOUNCE, RECORD")
        }
    }

    /// Parses the Request-URI and remembers its `play_count` and `codec`
    /// (a later request without them keeps what an earlier one asked for,
    /// so that a SETUP on the Content-Base names the same presentation as
    /// the DESCRIBE); the error is the status to answer with.
    pub(super) fn target(&mut self, req: &Request) -> Result<Target, u16> {
        match path::parse_target(&req.uri) {
            Ok(Target { faults: Err(e), .. }) => {
                tracing::debug!(error = %e, "refused fault parameters");
                self.fault_refusal = Some(e.to_string());
                Err(400)
            }
            Ok(mut t) => {
                if let Some(spec) = self.faults_of(&t) {
                    self.set_faults(spec);
                }
                // The camera simulator's `wrong_content_base`: the other path
                // it named stands for the presentation described.
                if let Some(real) = self.faults.as_ref().and_then(|f| f.content_base_of.as_ref()) {
                    if t.path == faults::WRONG_CONTENT_BASE {
                        t.path.clone_from(real);
                    }
                }
                if let Some(pc) = t.play_count {
                    self.play_count = pc;
                }
                if t.codec.is_some() {
                    self.codec.clone_from(&t.codec);
                }
                t.codec.clone_from(&self.codec);
                Ok(t)
            }
            Err(e) => {
                tracing::debug!(error = %e, "refused Request-URI");
                Err(match e {
                    TargetError::BadUri(_) => 400,
                    TargetError::Refused(_) => 404,
                })
            }
        }
    }

    /// The faults a Request-URI asks for: its query's, else its path's
    /// profile ([`ServerConfig::profiles`](super::ServerConfig::profiles)) unless an earlier URL of the
    /// connection asked for faults (a SETUP on the Content-Base has no query).
    fn faults_of(&self, t: &Target) -> Option<Faults> {
        match &t.faults {
            Ok(Some(spec)) => Some(*spec),
            Ok(None) if self.faults.is_none() => self.config.profile_for(&t.path),
            Ok(None) | Err(_) => None,
        }
    }

    /// Takes the fault parameters of a Request-URI (the camera simulator,
    /// `super::faults`): before the first PLAY a later URL's replace an
    /// earlier one's; once playing they stay as they are.
    fn set_faults(&mut self, spec: Faults) {
        if self.faults.as_ref().is_some_and(|f| f.spec == spec || f.has_played()) {
            return;
        }
        self.faults = Some(FaultRun::new(
            spec,
            self.config.fault_seed,
            &self.session_id,
            self.last_activity,
        ));
    }

    fn lookup(&mut self, path: String, request: Request) {
        let token = self.next_token;
        self.next_token += 1;
        self.queue.push_back(ServerOutput::Lookup { token, path });
        self.pending = Some(Pending {
            token,
            request,
            wait: Wait::Lookup,
        });
    }

    /// A keepalive (GET_PARAMETER, SET_PARAMETER) or TEARDOWN naming a
    /// session this connection does not own: the runtime looks for it among
    /// the server's UDP sessions (which may have lost their connection).
    /// The reply waits for [`ServerInput::OtherSession`](super::ServerInput::OtherSession).
    fn ask_other_session(&mut self, now: Instant, request: Request, info: &RequestInfo, teardown: bool) {
        let id = session_id_of(&request).unwrap_or("");
        let plausible = !id.is_empty() && id.len() <= MAX_SESSION_ID && id.bytes().all(|b| b.is_ascii_alphanumeric());
        if !plausible {
            return self.respond(now, info, 454, Headers::new(), Bytes::new());
        }
        let token = self.next_token;
        self.next_token += 1;
        self.queue.push_back(ServerOutput::OtherSession {
            token,
            session_id: id.to_owned(),
            teardown,
        });
        self.pending = Some(Pending {
            token,
            request,
            wait: Wait::OtherSession,
        });
    }

    /// Answers a request about another connection's session once the
    /// runtime said whether it exists (and refreshed or ended it).
    pub(super) fn answer_other_session(&mut self, now: Instant, request: &Request, found: bool) {
        let info = RequestInfo::of(request);
        if !found {
            return self.respond(now, &info, 454, Headers::new(), Bytes::new());
        }
        let id = session_id_of(request).unwrap_or("").to_owned();
        let status = if request.method == Method::SetParameter && !request.body.is_empty() {
            451
        } else {
            200
        };
        self.respond(now, &info, status, Headers::new().with("Session", id), Bytes::new());
    }

    fn on_describe(&mut self, now: Instant, req: Request, info: RequestInfo, found: Option<Arc<MediaSource>>) {
        let target = match self.target(&req) {
            Ok(t) if t.path.is_empty() => return self.respond(now, &info, 404, Headers::new(), Bytes::new()),
            Ok(t) => t,
            Err(status) => return self.respond(now, &info, status, Headers::new(), Bytes::new()),
        };
        // Always ask: the file may have changed since the last DESCRIBE.
        let Some(source) = found else {
            return self.lookup(target.resource(), req);
        };
        let sdp = session_description(&Description {
            source: &source,
            authority: &target.authority,
            name: target.file_name(),
            origin_id: self.origin_id,
            range_end: if self.is_live_source(&source) {
                None
            } else {
                range_end(&source, self.play_count)
            },
            backchannel: (self.config.backchannel && wants_backchannel(&req)).then_some(self.config.backchannel_codec),
        });
        let sdp = match self.faults.as_ref().and_then(|f| f.spec.params.map(|p| (p, f))) {
            Some((params, f)) => {
                let event = f.event(faults::FaultEvent::Params { params });
                self.queue.push_back(event);
                match params {
                    faults::Params::Inband => faults::without_parameter_sets(&sdp),
                    faults::Params::Sdp => sdp,
                }
            }
            None => sdp,
        };
        let no_session = self.quirk(Quirk::NoSessionControl, &info.method);
        let absolute = self.quirk(Quirk::ControlAbsolute, &info.method);
        let sdp = if no_session || absolute {
            faults::quirk_controls(&sdp, &target.base_url(), no_session, absolute)
        } else {
            sdp
        };
        let mut h = Headers::new().with("Content-Type", "application/sdp");
        if self.quirk(Quirk::NoContentBase, &info.method) {
            // No Content-Base at all.
        } else if self.quirk(Quirk::WrongContentBase, &info.method) {
            let wrong = format!(
                "{}://{}/{}/",
                target.scheme,
                target.authority,
                faults::WRONG_CONTENT_BASE
            );
            h.push("Content-Base", wrong);
            if let Some(f) = self.faults.as_mut() {
                f.content_base_of = Some(target.path.clone());
            }
        } else if self.quirk(Quirk::ContentBaseNoScheme, &info.method) {
            h.push("Content-Base", faults::content_base_no_scheme(&target.base_url()));
        } else {
            h.push("Content-Base", target.base_url());
        }
        self.described = Some((target.resource(), source));
        self.respond(now, &info, 200, h, Bytes::from(sdp));
    }

    fn on_setup(&mut self, now: Instant, req: Request, info: RequestInfo, found: Option<Arc<MediaSource>>) {
        let fail = |this: &mut Self, status: u16| this.respond(now, &info, status, Headers::new(), Bytes::new());
        if self.torn_down.is_some() {
            // The session is over (TEARDOWN); the connection only waits for its close.
            return fail(self, 454);
        }
        let target = match self.target(&req) {
            Ok(t) => t,
            Err(status) => return fail(self, status),
        };
        if self.session_header(&req) == SessionHeader::Unknown {
            return fail(self, 454);
        }
        if self.session.as_ref().is_some_and(|s| !s.is_ready()) {
            return fail(self, 455);
        }
        if target.path.is_empty() {
            return fail(self, 404);
        }
        let Some(track) = target.track else {
            return fail(self, 459);
        };
        let offer = Offer {
            udp: self.config.udp,
            multicast: self.config.multicast,
        };
        let requested = match parse_transport(req.headers.get("Transport"), self.peer.ip(), offer) {
            Ok(r) => r,
            Err(why) => {
                tracing::debug!(why, "refused Transport");
                return fail(self, 461);
            }
        };
        if self.session.as_ref().is_some_and(|s| s.path != target.resource()) {
            return fail(self, 455);
        }
        // A session is all multicast or not at all.
        let multicast = matches!(requested, Requested::Multicast { .. });
        if self
            .session
            .as_ref()
            .is_some_and(|s| !s.tracks.is_empty() && s.is_multicast() != multicast)
        {
            tracing::debug!("multicast and unicast tracks in one session refused");
            return fail(self, 461);
        }
        let source = match (found, &self.session, &self.described) {
            (Some(s), _, _) => s,
            (None, Some(session), _) => session.source.clone(),
            (None, None, Some((path, s))) if *path == target.resource() => s.clone(),
            (None, None, _) => return self.lookup(target.resource(), req),
        };
        let live = self.is_live_source(&source);
        let index = track as usize;
        if index == source.tracks.len() && self.config.backchannel && wants_backchannel(&req) {
            return self.set_up_backchannel(now, &req, &info, requested, &target.path, source);
        }
        if index >= source.tracks.len() {
            return fail(self, 404);
        }
        let other_channels = self.faults.as_ref().is_some_and(|f| f.spec.has(Quirk::OtherChannels));
        let delivery = match requested {
            Requested::Interleaved(channels) => {
                let session = self.session.get_or_insert_with(|| {
                    Session::new(self.session_id.clone(), target.resource(), source.clone()).live(live)
                });
                let channels = match channels {
                    Some((a, b)) if session.channel_taken(a, index) || session.channel_taken(b, index) => None,
                    Some(pair) => Some(pair),
                    None => free_pair(session, index),
                };
                // The camera simulator's `other_channels`: a free pair that
                // is not the one asked for.
                let channels = match channels {
                    Some((a, _)) if other_channels => other_pair(session, index, a),
                    pair => pair,
                };
                let Some((rtp, rtcp)) = channels else {
                    if session.tracks.is_empty() {
                        self.session = None;
                    }
                    return fail(self, 461);
                };
                Delivery::Interleaved { rtp, rtcp }
            }
            Requested::Udp { client, .. } => {
                let Some(open) = self.pair_for(index) else {
                    // The reply waits until the runtime opened a pair.
                    let pair = self.next_pair;
                    self.next_pair = self.next_pair.wrapping_add(1);
                    self.queue.push_back(ServerOutput::OpenUdp(UdpRequest {
                        pair,
                        bind: self.config.udp_ports,
                    }));
                    self.pending = Some(Pending {
                        token: u64::from(pair),
                        request: req,
                        wait: Wait::Udp(source),
                    });
                    return;
                };
                let ip = self.peer.ip();
                Delivery::Udp(UdpDelivery {
                    pair: open.pair,
                    server_port: open.rtp_port,
                    rtp: SocketAddr::new(ip, client.0),
                    rtcp: SocketAddr::new(ip, client.1),
                })
            }
            Requested::Multicast { .. } => {
                let Some(joined) = &self.multicast else {
                    // The reply waits until the runtime joined the path's stream.
                    let token = self.next_token;
                    self.next_token += 1;
                    self.queue.push_back(ServerOutput::Multicast(MulticastRequest::Join {
                        token,
                        path: target.resource(),
                        play_count: self.play_count,
                        source: source.clone(),
                    }));
                    self.pending = Some(Pending {
                        token,
                        request: req,
                        wait: Wait::MulticastJoin {
                            source,
                            path: target.resource(),
                            play_count: self.play_count,
                        },
                    });
                    return;
                };
                if joined.path != target.resource() || joined.play_count != self.play_count {
                    // One presentation per connection; the stream is keyed by both.
                    return fail(self, 455);
                }
                match joined.tracks.get(index).copied().flatten() {
                    Some(track) => Delivery::Multicast(track),
                    None => {
                        tracing::debug!(track = index, "the multicast stream does not send this track");
                        if self.session.as_ref().is_some_and(|s| s.tracks.is_empty()) {
                            self.session = None;
                        }
                        return fail(self, 461);
                    }
                }
            }
        };
        let session = self
            .session
            .get_or_insert_with(|| Session::new(self.session_id.clone(), target.resource(), source).live(live));
        let initial = self.config.initial_rtp;
        let ssrc = session.set_up(
            index,
            delivery,
            req.uri.clone(),
            &mut self.rng,
            self.max_payload,
            initial,
        );
        let transport = match delivery {
            Delivery::Multicast(MulticastTrack { group, port, ttl, ssrc }) => {
                let profile = match requested {
                    Requested::Multicast { profile } => profile,
                    _ => "RTP/AVP",
                };
                format!(
                    "{profile};multicast;destination={group};port={port}-{};ttl={ttl};ssrc={ssrc:08X};mode=\"PLAY\"",
                    port.wrapping_add(1)
                )
            }
            Delivery::Udp(udp) => {
                let profile = match requested {
                    Requested::Udp { profile, .. } | Requested::Multicast { profile } => profile,
                    Requested::Interleaved(_) => "RTP/AVP",
                };
                format!(
                    "{profile};unicast;client_port={}-{};server_port={}-{};ssrc={ssrc:08X};mode=\"PLAY\"",
                    udp.rtp.port(),
                    udp.rtcp.port(),
                    udp.server_port,
                    udp.server_port.wrapping_add(1)
                )
            }
            Delivery::Interleaved { rtp, rtcp } => {
                if other_channels {
                    self.quirk(Quirk::OtherChannels, &info.method);
                }
                if self.quirk(Quirk::NoInterleaved, &info.method) {
                    // The media still goes on the channels chosen: the client
                    // must assume the ones it asked for.
                    format!("RTP/AVP/TCP;unicast;ssrc={ssrc:08X};mode=\"PLAY\"")
                } else {
                    format!("RTP/AVP/TCP;unicast;interleaved={rtp}-{rtcp};ssrc={ssrc:08X};mode=\"PLAY\"")
                }
            }
        };
        let h = self.session_headers(true).with("Transport", transport);
        self.respond(now, &info, 200, h, Bytes::new());
    }

    /// SETUP of the ONVIF backchannel track (TCP interleaved only: the
    /// audio comes in on the RTSP connection).
    fn set_up_backchannel(
        &mut self,
        now: Instant,
        req: &Request,
        info: &RequestInfo,
        requested: Requested,
        path: &str,
        source: Arc<MediaSource>,
    ) {
        let Requested::Interleaved(channels) = requested else {
            tracing::debug!("the backchannel is offered over TCP only");
            return self.respond(now, info, 461, Headers::new(), Bytes::new());
        };
        let index = source.tracks.len();
        let created = self.session.is_none();
        let session = self
            .session
            .get_or_insert_with(|| Session::new(self.session_id.clone(), path.to_owned(), source));
        let channels = match channels {
            Some((a, b)) if session.channel_taken(a, index) || session.channel_taken(b, index) => None,
            Some(pair) => Some(pair),
            None => free_pair(session, index),
        };
        let Some((rtp, rtcp)) = channels else {
            if created {
                self.session = None;
            }
            return self.respond(now, info, 461, Headers::new(), Bytes::new());
        };
        session.backchannel = Some((rtp, rtcp));
        let _ = req;
        let transport = format!("RTP/AVP/TCP;unicast;interleaved={rtp}-{rtcp}");
        let h = self.session_headers(true).with("Transport", transport);
        self.respond(now, info, 200, h, Bytes::new());
    }

    /// An open pair for source track `index`: the one it has, else a spare
    /// one no other track uses.
    fn pair_for(&self, index: usize) -> Option<OpenPair> {
        let session = self.session.as_ref();
        match session.and_then(|s| s.udp_pair_of(index)) {
            Some(own) => self.udp_pairs.iter().find(|p| p.pair == own),
            None => self
                .udp_pairs
                .iter()
                .find(|p| session.is_none_or(|s| s.udp_track(p.pair).is_none())),
        }
        .copied()
    }

    /// The status a PLAY or PAUSE of `req` fails with before its session is
    /// looked at: a bad target, a `Session` naming another (454), no
    /// session (455), or another presentation's (404).
    fn session_request_error(&mut self, req: &Request) -> Option<u16> {
        let target = match self.target(req) {
            Ok(t) => t,
            Err(status) => return Some(status),
        };
        if self.session_header(req) == SessionHeader::Unknown {
            return Some(454);
        }
        match &self.session {
            None => Some(455),
            Some(s) if s.path != target.resource() => Some(404),
            Some(_) => None,
        }
    }

    fn on_play(&mut self, now: Instant, req: &Request, info: RequestInfo) {
        let fail = |this: &mut Self, status: u16| this.respond(now, &info, status, Headers::new(), Bytes::new());
        if self.torn_down.is_some() {
            return fail(self, 454);
        }
        if let Some(status) = self.session_request_error(req) {
            return fail(self, status);
        }
        // A live path's multicast member plays as any member (the stream is live).
        if self.session.as_ref().is_some_and(|s| s.live && !s.is_multicast()) {
            return self.play_live(now, info);
        }
        let count = self.play_count;
        let interval = self.rtcp_interval;
        let Some(session) = self.session.as_mut() else {
            return fail(self, 455);
        };
        let first = session.is_ready();
        if !first
            && !matches!(
                session.state,
                State::Playing(_) | State::Paused(_) | State::Ended { .. }
            )
        {
            return fail(self, 455);
        }
        if session.is_multicast() {
            if let Some(range) = req.headers.get("Range") {
                if !starts_at_zero(range) {
                    tracing::debug!(range, "a multicast stream is live: joined where it is");
                }
            }
            // The reply waits for where the path's stream is.
            let token = self.next_token;
            self.next_token += 1;
            self.queue
                .push_back(ServerOutput::Multicast(MulticastRequest::Play { token }));
            self.pending = Some(Pending {
                token,
                request: req.clone(),
                wait: Wait::MulticastPlay,
            });
            return;
        }
        let scale_text = req.headers.get("Scale").map(|v| v.trim().to_owned());
        let scale = match scale_text.as_deref().map(str::parse::<f64>) {
            None => 1.0,
            Some(Ok(v)) if v > 0.0 && v <= MAX_SCALE => v,
            // Reverse, still, or absurd: not done here.
            Some(_) => return fail(self, 501),
        };
        let whole = range_end(&session.source, count);
        let (start, end) = match req.headers.get("Range").map(parse_npt_range) {
            None => (None, None),
            Some(Ok(r)) => r,
            Some(Err(())) => return fail(self, 457),
        };
        if let (Some(s), Some(e)) = (start, end) {
            if e <= s {
                return fail(self, 457);
            }
        }
        // A start of 0 on the first PLAY is the plain start; `now` (or no
        // Range) goes on from where the session is.
        let cue = match start {
            Some(t) if !(first && t.is_zero()) => match session.cue(t, count) {
                Some(c) => Some(c),
                None => return fail(self, 457),
            },
            _ => None,
        };
        let stop_at = end.filter(|e| whole.is_none_or(|w| *e < w));
        let from = PlayFrom { cue, scale, stop_at };
        let npt_start = session.play_from(now, count, interval, from);
        let rtp_info: Vec<String> = session
            .rtp_info_for(npt_start)
            .into_iter()
            .map(|(url, seq, rtptime)| format!("url={url};seq={seq};rtptime={rtptime}"))
            .collect();
        let range = match stop_at.or(whole) {
            Some(end) => format!("npt={}-{}", npt(npt_start), npt(end)),
            None => format!("npt={}-", npt(npt_start)),
        };
        let event = if first {
            ServerEvent::SessionStarted {
                session_id: session.id.clone(),
                path: session.path.clone(),
                tracks: session.tracks.len(),
                play_count: count,
                transport: session.transport(),
            }
        } else {
            ServerEvent::Resumed {
                session_id: session.id.clone(),
                npt: npt_start,
                scale: scale_text.clone(),
            }
        };
        let mut h = self
            .session_headers(false)
            .with("Range", range)
            .with("RTP-Info", rtp_info.join(","));
        if let Some(s) = scale_text {
            h.push("Scale", s);
        }
        self.respond(now, &info, 200, h, Bytes::new());
        self.queue.push_back(ServerOutput::Event(event));
        if let Some(f) = self.faults.as_mut() {
            f.played(now);
        }
        self.pump(now);
    }

    fn on_pause(&mut self, now: Instant, req: &Request, info: RequestInfo) {
        let fail = |this: &mut Self, status: u16| this.respond(now, &info, status, Headers::new(), Bytes::new());
        if let Some(status) = self.session_request_error(req) {
            return fail(self, status);
        }
        let Some(session) = self.session.as_mut() else {
            return fail(self, 455);
        };
        if session.is_multicast() {
            // One member cannot stop the group's stream, which is live: the
            // PAUSE is taken (GStreamer pauses before its TEARDOWN) and
            // changes nothing.
            let h = self.session_headers(false);
            return self.respond(now, &info, 200, h, Bytes::new());
        }
        let at = match &session.state {
            // Already paused, or at the end (clients pause before a seek): nothing to do.
            State::Paused(_) | State::Ended { .. } => None,
            State::Playing(_) => session.pause(now),
            State::Live(_) => session.pause_live().then_some(std::time::Duration::ZERO),
            State::Ready | State::Member => return fail(self, 455),
        };
        if let Some(npt) = at {
            let event = ServerEvent::Paused {
                session_id: session.id.clone(),
                npt,
            };
            self.queue.push_back(ServerOutput::Event(event));
        }
        let h = self.session_headers(false);
        self.respond(now, &info, 200, h, Bytes::new());
    }

    /// The 200 to a PLAY (unicast or multicast): `Range` and `RTP-Info`,
    /// then the session-started event.
    fn answer_play(
        &mut self,
        now: Instant,
        info: &RequestInfo,
        range: String,
        rtp_info: &[String],
        started: ServerEvent,
    ) {
        let h = self
            .session_headers(false)
            .with("Range", range)
            .with("RTP-Info", rtp_info.join(","));
        self.respond(now, info, 200, h, Bytes::new());
        self.queue.push_back(ServerOutput::Event(started));
    }

    /// Answers a multicast session's PLAY once the runtime said where the
    /// path's stream is: `Range` from there, `RTP-Info` of the stream's next
    /// packets; 455 when the stream is over.
    pub(super) fn answer_multicast_play(&mut self, now: Instant, req: &Request, position: Option<MulticastPosition>) {
        let info = RequestInfo::of(req);
        let Some(pos) = position else {
            return self.respond(now, &info, 455, Headers::new(), Bytes::new());
        };
        let Some(session) = self.session.as_mut().filter(|s| s.is_ready()) else {
            return self.respond(now, &info, 455, Headers::new(), Bytes::new());
        };
        session.state = State::Member;
        let rtp_info: Vec<String> = session
            .tracks
            .iter()
            .filter_map(|t| {
                let (seq, rtptime) = pos.tracks.get(t.source_track).copied().flatten()?;
                Some(format!("url={};seq={seq};rtptime={rtptime}", t.url))
            })
            .collect();
        let range = match pos.end {
            Some(end) => format!("npt={}-{}", npt(pos.start), npt(end)),
            None => format!("npt={}-", npt(pos.start)),
        };
        let started = ServerEvent::SessionStarted {
            session_id: session.id.clone(),
            path: session.path.clone(),
            tracks: session.tracks.len(),
            play_count: pos.play_count,
            transport: session.transport(),
        };
        self.answer_play(now, &info, range, &rtp_info, started);
    }

    /// Remembers the stream joined and dispatches the SETUP again, or
    /// answers it 461.
    pub(super) fn multicast_joined(
        &mut self,
        now: Instant,
        request: Request,
        source: Arc<MediaSource>,
        (path, play_count): (String, PlayCount),
        result: Result<&[Option<MulticastTrack>], &str>,
    ) {
        match result {
            Ok(tracks) => {
                self.multicast = Some(Joined {
                    path,
                    play_count,
                    tracks: tracks.to_vec(),
                });
                self.dispatch(now, request, Some(source));
            }
            Err(e) => {
                tracing::warn!(error = e, "cannot join the multicast stream; SETUP refused");
                if self.session.as_ref().is_some_and(|s| s.tracks.is_empty()) {
                    self.session = None;
                }
                self.refuse(now, &request, 461);
            }
        }
    }

    fn session_header(&self, req: &Request) -> SessionHeader {
        let Some(id) = session_id_of(req) else {
            return SessionHeader::Absent;
        };
        match &self.session {
            Some(s) if s.id == id => SessionHeader::Matches,
            // A publisher's session is the connection's id.
            None if self.publishing.is_some() && self.session_id == id => SessionHeader::Matches,
            _ => SessionHeader::Unknown,
        }
    }

    /// `Session` for responses within the session (`;timeout=` on SETUP).
    pub(super) fn session_headers(&mut self, with_timeout: bool) -> Headers {
        let mut h = Headers::new();
        let with_timeout =
            with_timeout && self.session.is_some() && !self.quirk(Quirk::NoSessionTimeout, &Method::Setup);
        if let Some(s) = &self.session {
            if with_timeout {
                let secs = self.session_timeout().as_secs().max(1);
                h.push("Session", format!("{};timeout={secs}", s.id));
            } else {
                h.push("Session", s.id.clone());
            }
        }
        h
    }

    /// Answers `req` with an error status after a lookup.
    pub(super) fn refuse(&mut self, now: Instant, req: &Request, status: u16) {
        let info = RequestInfo::of(req);
        self.respond(now, &info, status, Headers::new(), Bytes::new());
    }

    pub(super) fn respond(&mut self, now: Instant, info: &RequestInfo, status: u16, extra: Headers, body: Bytes) {
        let mut headers = Headers::new();
        let mut body = body;
        if let Some(reason) = self.fault_refusal.take().filter(|_| status == 400) {
            headers.push("Content-Type", "text/plain");
            body = Bytes::from(reason);
        }
        if let Some(cseq) = info.cseq.filter(|_| !self.quirk(Quirk::NoCseq, &info.method)) {
            let cseq = if self.quirk(Quirk::WrongCseq, &info.method) {
                cseq.wrapping_add(1)
            } else {
                cseq
            };
            headers.push("CSeq", cseq.to_string());
        }
        headers.push("Server", self.config.server_name.clone());
        if let Some(date) = clock::http_date(self.ntp_at(now)) {
            headers.push("Date", date);
        }
        for (n, v) in extra.iter() {
            headers.push(n, v);
        }
        let resp = Response {
            status,
            reason: reason(status).to_owned(),
            headers,
            body,
        };
        resp.encode(&mut self.out);
        tracing::debug!(method = %info.method, status, "request answered");
        self.queue.push_back(ServerOutput::Event(ServerEvent::Request {
            method: info.method.clone(),
            uri: info.uri.clone(),
            cseq: info.cseq,
            status,
        }));
    }
}

/// What a response and its event need to know about the request.
#[derive(Debug)]
pub(super) struct RequestInfo {
    pub(super) method: Method,
    pub(super) uri: String,
    pub(super) cseq: Option<u32>,
}

impl RequestInfo {
    pub(super) fn of(req: &Request) -> RequestInfo {
        RequestInfo {
            method: req.method.clone(),
            uri: loggable_uri(&req.uri),
            cseq: req.headers.cseq(),
        }
    }
}

/// The URI without userinfo, cut to [`MAX_EVENT_URI`] bytes.
pub(super) fn loggable_uri(uri: &str) -> String {
    let mut s = match uri.find("://") {
        Some(i) => {
            let rest = &uri[i + 3..];
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            match rest[..end].rfind('@') {
                Some(at) => format!("{}{}", &uri[..i + 3], &rest[at + 1..]),
                None => uri.to_owned(),
            }
        }
        None => uri.to_owned(),
    };
    if s.len() > MAX_EVENT_URI {
        let mut cut = MAX_EVENT_URI;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Channels for a track whose SETUP named none: `2N-2N+1` when free, else
/// the lowest free even pair.
fn free_pair(session: &Session, index: usize) -> Option<(u8, u8)> {
    let free = |a: u8| !session.channel_taken(a, index) && !session.channel_taken(a + 1, index);
    let preferred = u8::try_from(index.checked_mul(2)?).ok().filter(|a| *a < 255);
    preferred
        .into_iter()
        .chain((0..=254u8).step_by(2))
        .find(|a| free(*a))
        .map(|a| (a, a + 1))
}

/// Channels for the `other_channels` quirk: the lowest free even pair from
/// 10 on (then from 0) whose first channel is not `asked`.
fn other_pair(session: &Session, index: usize, asked: u8) -> Option<(u8, u8)> {
    let free = |a: u8| !session.channel_taken(a, index) && !session.channel_taken(a + 1, index);
    (10..=254u8)
        .step_by(2)
        .chain((0..10u8).step_by(2))
        .find(|a| *a != asked && free(*a))
        .map(|a| (a, a + 1))
}
