//! The RTSP phase machine of [`Client`]: requests and their answers
//! (OPTIONS → DESCRIBE → SETUP → PLAY, keepalives, authentication,
//! TEARDOWN), and the demultiplexing of interleaved data to tracks.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use url::Url;

use super::{
    AuthRetry, Client, ClosedEvent, Event, Flow, Inflight, LogKinds, MethodEvent, Output, Phase, Track, TrackSelection,
    TrackState, TransportKind, Warning, MAX_STALE_RETRIES,
};
use crate::auth::{self, Authenticator};
use crate::codec::Depacketizer;
use crate::error::{Error, ProtocolError};
use crate::message::{parse_session, Headers, Method, Request, Response};
use crate::sdp::{Media, MediaKind, Sdp};

impl Client {
    pub(super) fn finish(&mut self, now: Instant, error: Option<Error>) {
        if self.phase == Phase::Closed || self.reconnect_instead_of_finish(now) {
            return;
        }
        match &error {
            // A caller that turned the RTSP log off reports the end itself (a relay).
            Some(e) if self.opts.log.contains(LogKinds::RTSP) => tracing::warn!(error = %e, "session closed"),
            Some(e) => tracing::debug!(error = %e, "session closed"),
            None => tracing::debug!("session closed"),
        }
        self.phase = Phase::Closed;
        self.inflight.clear();
        self.events.push_back(Event::Closed(ClosedEvent {
            session_elapsed: now - self.start,
            error,
        }));
    }

    pub(super) fn send(&mut self, now: Instant, method: Method, uri: String, extra: Headers, keepalive: bool) {
        let request = Request {
            method,
            uri,
            headers: extra,
            body: Bytes::new(),
        };
        self.send_request(now, request, AuthRetry::default(), keepalive);
    }

    pub(super) fn send_request(&mut self, now: Instant, mut request: Request, auth: AuthRetry, keepalive: bool) {
        let cseq = self.next_cseq;
        self.next_cseq = self.next_cseq.wrapping_add(1);
        let mut headers = Headers::new()
            .with("CSeq", cseq.to_string())
            .with("User-Agent", self.opts.user_agent.clone());
        if let Some(s) = &self.session {
            headers.push("Session", s.clone());
        }
        if let Some(a) = &mut self.authenticator {
            headers.push("Authorization", a.authorization(request.method.as_str(), &request.uri));
        }
        for (n, v) in request.headers.iter() {
            if !["CSeq", "User-Agent", "Session", "Authorization"]
                .iter()
                .any(|h| h.eq_ignore_ascii_case(n))
            {
                headers.push(n, v);
            }
        }
        for (n, v) in self.opts.headers.iter() {
            headers.push(n, v);
        }
        let asks_backchannel = self
            .opts
            .headers
            .get_all("Require")
            .any(|v| v.contains(super::backchannel::REQUIRE_TAG));
        if self.opts.backchannel.is_some()
            && !asks_backchannel
            && matches!(request.method, Method::Describe | Method::Setup | Method::Play)
        {
            headers.push("Require", super::backchannel::REQUIRE_TAG);
        }
        let sent_headers = masked(&headers);
        let extra = std::mem::replace(&mut request.headers, headers);
        if self.opts.log.contains(LogKinds::RTSP) {
            tracing::info!(method = %request.method, uri = %request.uri, cseq, "request");
        }
        let mut out = BytesMut::new();
        request.encode(&mut out);
        self.io.push_back(Output::Transmit(out.freeze()));
        // Keep only the caller's headers, so an auth retry rebuilds the rest.
        request.headers = extra;
        self.inflight.push_back(Inflight {
            request,
            sent_headers,
            cseq,
            sent_at: now,
            auth,
            keepalive,
            control: false,
        });
    }

    pub(super) fn on_server_request(&mut self, req: Request) {
        // Servers may send SET_PARAMETER/ANNOUNCE/OPTIONS to clients; refuse politely.
        let mut headers = Headers::new();
        if let Some(c) = req.headers.get("CSeq") {
            headers.push("CSeq", c);
        }
        let resp = Response {
            status: 501,
            reason: "Not Implemented".into(),
            headers,
            body: Bytes::new(),
        };
        let mut out = BytesMut::new();
        resp.encode(&mut out);
        self.io.push_back(Output::Transmit(out.freeze()));
        self.events
            .push_back(Event::Warning(Warning::ServerRequest { method: req.method }));
    }

    pub(super) fn on_response(&mut self, now: Instant, resp: Response) {
        let got = resp.headers.cseq();
        if got.is_some_and(|c| self.abandoned.contains(&c)) {
            tracing::debug!(
                cseq = got,
                status = resp.status,
                "answer to an abandoned request, ignored"
            );
            return;
        }
        let pos = got.and_then(|c| self.inflight.iter().position(|f| f.cseq == c));
        let inflight = match pos {
            Some(p) => self.inflight.remove(p).expect("index from position"),
            None => match self.inflight.pop_front() {
                Some(f) => {
                    self.events.push_back(Event::Warning(Warning::CseqMismatch {
                        method: f.request.method.clone(),
                        expected: f.cseq,
                        got,
                    }));
                    f
                }
                None => {
                    tracing::debug!(status = resp.status, "response to no request, ignored");
                    return;
                }
            },
        };
        if self.opts.log.contains(LogKinds::RTSP) {
            tracing::info!(method = %inflight.request.method, status = resp.status, reason = %resp.reason, "response");
        }
        let mut event = MethodEvent {
            method: inflight.request.method.clone(),
            url: inflight.request.uri.clone(),
            cseq: inflight.cseq,
            status: resp.status,
            reason: resp.reason.clone(),
            request_headers: inflight.sent_headers.clone(),
            headers: resp.headers.clone(),
            body: resp.body.clone(),
            sdp: None,
            track: None,
            elapsed: now - inflight.sent_at,
            session_elapsed: now - self.start,
        };
        // A 401 to a keepalive too: a Digest nonce may expire mid-session.
        // Re-authenticate once with the new challenge; a second 401 ends it.
        if resp.status == 401 && self.phase != Phase::TearingDown {
            self.events.push_back(Event::Method(Box::new(event)));
            return self.on_unauthorized(now, inflight, &resp);
        }
        if inflight.keepalive {
            self.events.push_back(Event::Method(Box::new(event)));
            self.on_keepalive_response(now, &inflight, resp.status);
            return;
        }
        if inflight.control && self.phase != Phase::TearingDown {
            self.events.push_back(Event::Method(Box::new(event)));
            return self.on_control_response(now, &inflight, &resp);
        }
        let ok = (200..300).contains(&resp.status);
        if let (false, Phase::Setup(i)) = (ok, self.phase) {
            if self.udp.can_fall_back() && matches!(resp.status, 400 | 461) {
                self.events.push_back(Event::Method(Box::new(event)));
                return self.fall_back_at_setup(now, i, resp.status, &resp.reason);
            }
        }
        let result = if ok || self.phase == Phase::TearingDown {
            self.on_success(now, &resp, &mut event)
        } else if self.phase == Phase::Options {
            // Some cameras refuse OPTIONS; DESCRIBE is what matters.
            self.on_success(now, &resp, &mut event)
        } else {
            Err(Error::Response {
                method: inflight.request.method.clone(),
                status: resp.status,
                reason: resp.reason.clone(),
            })
        };
        self.events.push_back(Event::Method(Box::new(event)));
        match result {
            Ok(Flow::Continue) => {}
            Ok(Flow::Finished) => self.finish(now, None),
            Err(e) => self.finish(now, Some(e)),
        }
    }

    pub(super) fn on_unauthorized(&mut self, now: Instant, inflight: Inflight, resp: &Response) {
        let method = inflight.request.method.clone();
        let refuse = |reason: &str| Error::Response {
            method: method.clone(),
            status: 401,
            reason: reason.to_owned(),
        };
        let Some(creds) = self.credentials.clone() else {
            return self.finish(
                now,
                Some(refuse(&format!("{} (no credentials in the URL)", resp.reason))),
            );
        };
        let values: Vec<&str> = resp.headers.get_all("WWW-Authenticate").collect();
        let authenticator = auth::parse_challenges(&values)
            .map_err(ProtocolError::Auth)
            .and_then(|chs| {
                let ch = auth::choose(&chs).ok_or(ProtocolError::Auth(auth::AuthError::NoSupportedChallenge))?;
                Authenticator::new(creds, ch.clone()).map_err(ProtocolError::Auth)
            });
        // `stale=true` with a nonce other than the one just refused: the
        // credentials were right, only the nonce expired (RFC 7616 §3.3);
        // answer the new one without counting a refusal.
        let stale = authenticator.as_ref().is_ok_and(|a| {
            a.challenge().is_stale()
                && self.authenticator.as_ref().and_then(|old| old.challenge().nonce()) != a.challenge().nonce()
        }) && inflight.auth.stale < MAX_STALE_RETRIES;
        if inflight.auth.retried && !stale {
            return self.finish(now, Some(refuse(&format!("{} (credentials rejected)", resp.reason))));
        }
        match authenticator {
            Ok(a) => {
                let mut retry = inflight.auth;
                if stale {
                    retry.stale += 1;
                    tracing::debug!(scheme = a.scheme(), "stale nonce; retrying with the new one");
                } else {
                    retry.retried = true;
                    tracing::debug!(scheme = a.scheme(), "retrying with credentials");
                }
                self.authenticator = Some(a);
                self.send_request(now, inflight.request, retry, inflight.keepalive);
                if let Some(f) = self.inflight.back_mut() {
                    f.control = inflight.control;
                }
            }
            Err(e) => self.finish(now, Some(Error::Protocol(e))),
        }
    }

    pub(super) fn on_keepalive_response(&mut self, now: Instant, inflight: &Inflight, status: u16) {
        if !(200..300).contains(&status) {
            let fallback = (inflight.request.method == Method::GetParameter).then_some(Method::Options);
            if let Some(m) = &fallback {
                self.keepalive_method = m.clone();
            }
            self.events.push_back(Event::Warning(Warning::KeepaliveFailed {
                method: inflight.request.method.clone(),
                status,
                fallback: fallback.clone(),
            }));
            if fallback.is_some() && self.phase == Phase::Playing {
                // Try the fallback at once: the session timeout is running.
                self.send_keepalive(now);
                return;
            }
        }
        self.schedule_keepalive(now);
    }

    pub(super) fn on_success(&mut self, now: Instant, resp: &Response, event: &mut MethodEvent) -> Result<Flow, Error> {
        match self.phase {
            Phase::Options => {
                self.public_methods = resp.headers.get("Public").map(str::to_owned);
                self.keepalive_method = if self
                    .public_methods
                    .as_deref()
                    .is_some_and(|p| p.split(',').any(|m| m.trim().eq_ignore_ascii_case("GET_PARAMETER")))
                {
                    Method::GetParameter
                } else {
                    Method::Options
                };
                self.phase = Phase::Describe;
                let url = self.request_url.clone();
                self.send(
                    now,
                    Method::Describe,
                    url,
                    Headers::new().with("Accept", "application/sdp"),
                    false,
                );
            }
            Phase::Describe => {
                let sdp = Sdp::parse(&resp.body).map_err(ProtocolError::Sdp)?;
                self.base_url = Some(self.describe_base(resp));
                self.wanted = self.choose_tracks(&sdp)?;
                event.sdp = Some(sdp.clone());
                self.sdp = Some(sdp);
                self.phase = Phase::Setup(0);
                self.send_setup(now, 0);
            }
            Phase::Setup(i) => {
                let track = self.on_setup(now, resp, i)?;
                let multicast = matches!(track.transport, TransportKind::Multicast { .. });
                event.track = Some(track);
                if multicast {
                    // The group is known now: join it before going on.
                    self.open_multicast(i);
                } else {
                    self.after_setup(now, i);
                }
            }
            Phase::Play => {
                self.phase = Phase::Playing;
                self.phase_reached_playing = true;
                self.schedule_keepalive(now);
                self.on_playing(now);
            }
            // Finished by the caller, after the TEARDOWN event itself.
            Phase::TearingDown => return Ok(Flow::Finished),
            Phase::Connecting | Phase::OpenUdp(_) | Phase::Playing | Phase::Paused | Phase::Closed => {}
        }
        Ok(Flow::Continue)
    }

    /// The base URL of a DESCRIBE answer (RFC 2326 §C.1.1): its
    /// `Content-Base`, else its `Content-Location`, else the request URL. A
    /// header that is not an absolute `rtsp://` or `rtsps://` URL with a
    /// host is skipped with a [`Warning::BadContentBase`]: SV3C cameras
    /// answer `Content-Base: 192.168.1.10:554/stream0/`, which VLC plays
    /// (and a host name before the port would parse as a URL scheme).
    fn describe_base(&mut self, resp: &Response) -> Url {
        let mut bad = Vec::new();
        let mut base = None;
        for header in ["Content-Base", "Content-Location"] {
            let Some(value) = resp.headers.get(header) else {
                continue;
            };
            match Url::parse(value)
                .ok()
                .filter(|u| matches!(u.scheme(), "rtsp" | "rtsps") && u.host_str().is_some_and(|h| !h.is_empty()))
            {
                Some(u) => {
                    base = Some(u);
                    break;
                }
                None => bad.push((header, value.to_owned())),
            }
        }
        let base = base.unwrap_or_else(|| self.url.clone());
        for (header, value) in bad {
            tracing::debug!(header, value, "not an absolute rtsp:// URL; ignored");
            self.events.push_back(Event::Warning(Warning::BadContentBase {
                header,
                value,
                used: base.to_string(),
            }));
        }
        base
    }

    /// Track `i` is set up (and its UDP pair open): the next SETUP, or PLAY.
    pub(super) fn after_setup(&mut self, now: Instant, i: usize) {
        if i + 1 < self.wanted.len() {
            self.phase = Phase::Setup(i + 1);
            self.send_setup(now, i + 1);
        } else {
            self.phase = Phase::Play;
            let url = self.aggregate_url();
            let mut headers = Headers::new().with("Range", self.play_range());
            if let Some(scale) = self.opts.scale {
                headers.push("Scale", format!("{scale}"));
            }
            self.send(now, Method::Play, url, headers, false);
        }
    }

    pub(super) fn choose_tracks(&self, sdp: &Sdp) -> Result<Vec<usize>, Error> {
        let kinds = || {
            sdp.media
                .iter()
                .map(|m| format!("{:?}", m.kind).to_lowercase())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let of_kind =
            |kind: MediaKind| -> Vec<usize> { (0..sdp.media.len()).filter(|&i| sdp.media[i].kind == kind).collect() };
        let (wanted, wanted_what) = match &self.opts.tracks {
            TrackSelection::All => ((0..sdp.media.len()).collect(), "media".to_owned()),
            TrackSelection::Video => (of_kind(MediaKind::Video), "video media".to_owned()),
            TrackSelection::Audio => (of_kind(MediaKind::Audio), "audio media".to_owned()),
            TrackSelection::Indexes(indexes) => {
                if let Some(bad) = indexes.iter().find(|&&i| i >= sdp.media.len()) {
                    return Err(Error::Protocol(ProtocolError::NoTracks(format!(
                        "track {bad} was asked for; the SDP has {} media sections [{}]",
                        sdp.media.len(),
                        kinds()
                    ))));
                }
                let mut v = indexes.clone();
                v.sort_unstable();
                v.dedup();
                (v, "media".to_owned())
            }
            // FirstOfEachKind, and any selection added later.
            _ => {
                // A backchannel section is not a track to receive.
                let first = |kind: MediaKind| {
                    sdp.media
                        .iter()
                        .position(|m| m.kind == kind && !super::backchannel::is_backchannel(m))
                };
                let metadata = || {
                    sdp.media
                        .iter()
                        .position(|m| m.kind == MediaKind::Application && m.codec_is("vnd.onvif.metadata"))
                };
                let mut v: Vec<usize> = [
                    self.opts.enable_video.then(|| first(MediaKind::Video)).flatten(),
                    self.opts.enable_audio.then(|| first(MediaKind::Audio)).flatten(),
                    self.opts.enable_metadata.then(metadata).flatten(),
                ]
                .into_iter()
                .flatten()
                .collect();
                v.sort_unstable();
                let enabled = match (self.opts.enable_video, self.opts.enable_audio) {
                    _ if self.opts.enable_metadata => "video, audio or ONVIF metadata",
                    (true, true) => "video or audio",
                    (true, false) => "video (audio is disabled)",
                    _ => "audio (video is disabled)",
                };
                (v, format!("{enabled} media"))
            }
        };
        let mut wanted = wanted;
        if let Some(b) = self.backchannel_media(&sdp.media) {
            if !wanted.contains(&b) {
                wanted.push(b);
                wanted.sort_unstable();
            }
        }
        if wanted.is_empty() {
            return Err(Error::Protocol(ProtocolError::NoTracks(format!(
                "the SDP has no {wanted_what}; it has [{}]",
                kinds()
            ))));
        }
        Ok(wanted)
    }

    pub(super) fn send_setup(&mut self, now: Instant, i: usize) {
        let media = self.media(i).clone();
        let url = self.control_url(media.control.as_deref());
        let Some(transport) = self.setup_transport(i) else {
            // The UDP pair is being opened; SETUP follows its answer.
            return;
        };
        self.send(
            now,
            Method::Setup,
            url,
            Headers::new().with("Transport", transport),
            false,
        );
    }

    pub(super) fn media(&self, i: usize) -> &Media {
        let sdp = self.sdp.as_ref().expect("SETUP only after DESCRIBE");
        &sdp.media[self.wanted[i]]
    }

    pub(super) fn on_setup(&mut self, now: Instant, resp: &Response, i: usize) -> Result<Track, Error> {
        let missing = |header: &'static str, detail: &str| {
            Error::Protocol(ProtocolError::MissingHeader {
                method: Method::Setup,
                header,
                detail: detail.to_owned(),
            })
        };
        let session_value = resp
            .headers
            .get("Session")
            .ok_or_else(|| missing("Session", "absent"))?;
        let (id, timeout) = parse_session(session_value).ok_or_else(|| missing("Session", "empty session id"))?;
        if let Some(secs) = timeout {
            self.session_timeout = Duration::from_secs(secs.clamp(1, 3600));
        }
        self.session = Some(id.to_owned());
        let transport = self.reply_transport(i, resp.headers.get("Transport"))?;
        let media = self.media(i).clone();
        let track = Track {
            index: self.tracks.len(),
            media_index: self.wanted[i],
            kind: media.kind.clone(),
            codec: media.codec.clone(),
            payload_type: media.payload_type,
            clock_rate: media.clock_rate,
            channels: media.channels,
            control_url: self.control_url(media.control.as_deref()),
            transport,
        };
        let depacketizer = match Depacketizer::new(&media, self.opts.max_frame_bytes) {
            Ok(_) if !self.opts.assemble_frames => None,
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(track = track.index, codec = %media.codec, error = %e, "no frames for this track");
                self.events.push_back(Event::Warning(Warning::UnsupportedCodec {
                    track: track.index,
                    codec: format!("{} ({e})", media.codec),
                }));
                None
            }
        };
        let reorder = self.reorder_for(&track);
        self.tracks.push(TrackState::new(track.clone(), depacketizer, reorder));
        self.punch(now, self.tracks.len() - 1);
        Ok(track)
    }

    /// Resolves `a=control` against the base URL (RFC 2326 C.1.1). Like most
    /// clients, the base is treated as a directory even without a trailing
    /// slash, because cameras serve `Content-Base: rtsp://h/stream` with
    /// `a=control:track1` and mean `rtsp://h/stream/track1`.
    pub(super) fn control_url(&self, control: Option<&str>) -> String {
        let base = self.base_url.clone().unwrap_or_else(|| self.url.clone());
        join_control(&base, control)
    }

    pub(super) fn aggregate_url(&self) -> String {
        let session_control = self.sdp.as_ref().and_then(|s| s.attribute("control"));
        self.control_url(session_control)
    }

    pub(super) fn schedule_keepalive(&mut self, now: Instant) {
        let interval = (self.session_timeout.min(Duration::from_secs(60)) / 2).max(Duration::from_millis(500));
        self.keepalive_at = Some(now + interval);
    }

    pub(super) fn send_keepalive(&mut self, now: Instant) {
        self.keepalive_at = None;
        let method = self.keepalive_method.clone();
        let url = match method {
            Method::Options => self.request_url.clone(),
            _ => self.aggregate_url(),
        };
        self.send(now, method, url, Headers::new(), true);
    }

    pub(super) fn on_interleaved(&mut self, now: Instant, channel: u8, payload: Bytes) {
        let found = self.tracks.iter().position(|t| match t.track.transport {
            TransportKind::TcpInterleaved {
                rtp_channel,
                rtcp_channel,
            } => channel == rtp_channel || channel == rtcp_channel,
            _ => false,
        });
        let recv_tick = now - self.start;
        let Some(i) = found else {
            self.ignored_frames += 1;
            self.events.push_back(Event::Warning(Warning::UnknownChannel {
                channel,
                len: payload.len(),
            }));
            return;
        };
        let log = self.opts.log;
        let state = &mut self.tracks[i];
        if state.rtp_channel() == channel {
            let arrival = recv_tick;
            return state.on_rtp(channel, payload, recv_tick, Some(arrival), log, &mut self.events);
        }
        self.on_track_rtcp(now, i, channel, payload);
    }

    /// An RTCP compound packet for track `i`, on any transport: the event,
    /// the sender report noted, and the end of the stream at BYE.
    pub(super) fn on_track_rtcp(&mut self, now: Instant, i: usize, channel: u8, payload: Bytes) {
        let recv_tick = now - self.start;
        let log = self.opts.log;
        let state = &mut self.tracks[i];
        let own = self.udp.own_ssrc();
        let bye = state.on_rtcp(now, channel, &payload, recv_tick, own, log, &mut self.events);
        if bye && self.phase_reached_playing {
            state.bye = true;
            state.end_of_stream(recv_tick, &mut self.events);
            // Every track said BYE: the stream is over (as ffprobe sees it).
            // Servers such as GStreamer's keep the connection open after
            // that, so end the session ourselves.
            if self.phase == Phase::Playing && self.all_tracks_said_bye() {
                tracing::debug!("BYE on every track; tearing down");
                self.close(now);
            }
        }
    }

    /// Whether PLAY was answered and every track has had its BYE since.
    pub(super) fn all_tracks_said_bye(&self) -> bool {
        self.phase_reached_playing && self.tracks.iter().all(|t| t.bye)
    }
}

/// Resolves an SDP `a=control` value against a base URL; see
/// [`Client`]'s handling of Content-Base. `None` and `*` mean the base itself.
///
/// ```
/// use rtsp_toolkit_core::client::join_control;
/// let base = url::Url::parse("rtsp://h/cam?x=1").unwrap();
/// assert_eq!(join_control(&base, Some("trackID=1")), "rtsp://h/cam/trackID=1");
/// assert_eq!(join_control(&base, Some("rtsp://other/t")), "rtsp://other/t");
/// assert_eq!(join_control(&base, Some("*")), "rtsp://h/cam?x=1");
/// ```
pub fn join_control(base: &Url, control: Option<&str>) -> String {
    let control = control.map(str::trim).unwrap_or("*");
    if control.is_empty() || control == "*" {
        return base.to_string();
    }
    if let Ok(abs) = Url::parse(control) {
        return abs.to_string();
    }
    let mut dir = base.clone();
    dir.set_query(None);
    dir.set_fragment(None);
    if !dir.path().ends_with('/') {
        let p = format!("{}/", dir.path());
        dir.set_path(&p);
    }
    dir.join(control)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| format!("{dir}{control}"))
}

pub(super) fn split_host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h.to_owned(), p.parse().ok()?)).filter(|(h, _)| !h.is_empty()),
        Some(_) => Some((s.to_owned(), default_port)),
        None if !s.is_empty() => Some((s.to_owned(), default_port)),
        None => None,
    }
}

/// `headers` with the `Authorization` value cut to its scheme (`Digest ***`),
/// for events and logs.
fn masked(headers: &Headers) -> Headers {
    let mut out = Headers::new();
    for (n, v) in headers.iter() {
        if n.eq_ignore_ascii_case("Authorization") {
            let scheme = v.split_whitespace().next().unwrap_or("");
            out.push(n, format!("{scheme} ***"));
        } else {
            out.push(n, v);
        }
    }
    out
}
