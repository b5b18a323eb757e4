//! The authentication step of a request: the server's users
//! ([`ServerAuth`]) and the camera simulator's `reauth_after_play` quirk,
//! which refuses the nonces issued before the first PLAY.

use std::net::IpAddr;
use std::time::Instant;

use bytes::Bytes;

use super::auth::{self, ServerAuth, Verdict};
use super::fault_run::FaultRun;
use super::faults::Quirk;
use super::request::RequestInfo;
use super::{Connection, ServerEvent, ServerOutput};
use crate::auth::Algorithm;
use crate::message::{Headers, Method, Request};

/// The realm of `reauth_after_play`'s challenge without the server's users.
const REAUTH_REALM: &str = "camera";

impl Connection {
    /// Whether `req` has good credentials; if not, it is answered (`401`
    /// with the challenges, or `503` while the address is blocked).
    pub(super) fn authenticate(&mut self, now: Instant, req: &Request, info: &RequestInfo, auth: &ServerAuth) -> bool {
        let peer = self.peer.ip();
        let verdict = auth.check(
            now,
            peer,
            req.method.as_str(),
            &req.uri,
            req.headers.get("Authorization"),
        );
        let stale = match verdict {
            // The camera simulator's `reauth_after_play`: once the media
            // plays, the nonces issued before are refused (fresh ones, not
            // stale, in the challenges below).
            Verdict::Allowed { .. } if self.nonce_before_play(peer, req, auth, &info.method) => false,
            Verdict::Allowed { user } => {
                tracing::trace!(user, "authenticated");
                return true;
            }
            Verdict::Blocked { retry_after } => {
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                let h = Headers::new().with("Retry-After", secs.max(1).to_string());
                self.respond(now, info, 503, h, Bytes::new());
                return false;
            }
            Verdict::Challenge { stale } => stale,
            Verdict::Refused { reason, user } => {
                tracing::debug!(%reason, user = user.as_deref().unwrap_or("-"), "credentials refused");
                self.queue
                    .push_back(ServerOutput::Event(ServerEvent::AuthFailed { user, reason }));
                false
            }
        };
        let mut h = Headers::new();
        for c in auth.challenges(now, peer, stale) {
            h.push("WWW-Authenticate", c);
        }
        self.respond(now, info, 401, h, Bytes::new());
        false
    }

    /// Whether `req`'s good credentials answer a Digest nonce issued before
    /// the first PLAY while the camera simulator's `reauth_after_play` is
    /// on (then its event is queued): the camera changed its nonce.
    fn nonce_before_play(&mut self, peer: IpAddr, req: &Request, auth: &ServerAuth, method: &Method) -> bool {
        let Some(played) = self
            .faults
            .as_ref()
            .filter(|f| f.spec.has(Quirk::ReauthAfterPlay))
            .and_then(FaultRun::played_at)
        else {
            return false;
        };
        let issued = req
            .headers
            .get("Authorization")
            .and_then(|a| auth.digest_nonce_issued(peer, a));
        issued.is_some_and(|t| t < played) && self.quirk(Quirk::ReauthAfterPlay, method)
    }

    /// The camera simulator's `reauth_after_play` without the server's
    /// users, once the media plays: whether `req` is a Digest answer to the
    /// simulator's nonce (any user and response pass); if not, it is
    /// answered `401` with a challenge for that nonce.
    pub(super) fn reauth_answered(&mut self, now: Instant, req: &Request, info: &RequestInfo) -> bool {
        let Some(f) = self.faults.as_mut() else {
            return true;
        };
        let nonce = f.reauth_nonce().to_owned();
        let answered = req
            .headers
            .get("Authorization")
            .and_then(|a| auth::parse_authorization(a).ok())
            .is_some_and(|a| matches!(a, auth::Authorization::Digest(d) if d.nonce == nonce));
        if answered {
            return true;
        }
        self.quirk(Quirk::ReauthAfterPlay, &info.method);
        let challenge = auth::digest_challenge(REAUTH_REALM, &nonce, Algorithm::Md5, false);
        let h = Headers::new().with("WWW-Authenticate", challenge);
        self.respond(now, info, 401, h, Bytes::new());
        false
    }
}
