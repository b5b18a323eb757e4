//! Authentication on the server: Basic and Digest (RFC 7617, RFC 7616),
//! users from a text file, expiring nonces and a rate limit on failures.
//!
//! A server with [`ServerConfig::auth`](super::ServerConfig::auth) set asks
//! for credentials on every request but `OPTIONS`. Its pieces:
//! - [`Users`]: the user file's text (`name:password` lines, `#` comments,
//!   blank lines; Apache `htdigest` lines `name:realm:HA1`, the MD5 HA1),
//!   parsed once; reading the file is the caller's;
//! - [`AuthConfig`]: the users and the settings (realm, Basic allowed or
//!   not, nonce lifetime, rate limit);
//! - [`ServerAuth`]: that config plus the state every connection of a
//!   server shares (the nonce secret, the table of failures per address),
//!   which the runtime makes once per server with a random secret and
//!   gives to every connection in its [`ServerConfig`](super::ServerConfig);
//! - [`parse_authorization`]: the `Authorization` header parser (bounded,
//!   never panics; fuzzed).
//!
//! # Decisions
//! - **Which requests**: all but `OPTIONS`. GStreamer's rtsp-server (1.22,
//!   observed) answers `OPTIONS` and a session-less `GET_PARAMETER` without
//!   credentials and asks for them at `DESCRIBE`/`SETUP`; live555 asks at
//!   `DESCRIBE` and at the `SETUP` that creates a session, and takes the
//!   session id as proof for `PLAY`, `TEARDOWN` and the parameters. This
//!   server checks every request but `OPTIONS` (which tells nothing about
//!   the files), so a session id alone never controls a session.
//! - **Challenges**: a `401` carries `Digest … algorithm=SHA-256` first,
//!   then `Digest … algorithm=MD5`, both with `qop="auth"` and the same
//!   nonce, then `Basic` when it is allowed. Clients that take the last
//!   Digest header (FFmpeg 5.1) or know only MD5 (FFmpeg, GStreamer 1.22)
//!   answer MD5; RFC 7616 clients (ours) answer SHA-256. When the user file
//!   has `htdigest` lines (an MD5 HA1, from which no SHA-256 key can be
//!   made), only MD5 is offered. A Digest answer without `qop` (RFC 2069,
//!   as GStreamer's client sends) is accepted; `-sess` algorithms and
//!   `auth-int` are not offered and are refused.
//! - **Basic** sends the password in the clear: it is accepted only when
//!   [`AuthConfig::allow_basic`] is set (`serve --allow-basic-plain`). There
//!   is no TLS yet; once there is, Basic over TLS can be allowed without
//!   the flag (the flag then means "also on plain connections").
//! - **Nonces** are stateless: `T` (16 hex digits: the time since the
//!   server's epoch, in nanoseconds) followed by 32 hex digits of HMAC-SHA-256(secret, T,
//!   client IP, realm). No table is kept, so memory does not grow with
//!   clients; a nonce is good from its client's address for
//!   [`AuthConfig::nonce_lifetime`]; after that a right answer gets `401`
//!   with `stale=true` (and a fresh nonce), not a failure. The nonce count
//!   (`nc`) is not tracked: within its lifetime a nonce can be replayed by
//!   whoever sees the traffic, as anything on a plain connection can.
//! - **The Digest `uri`** must be the Request-URI as sent.
//! - **Failures** (a wrong password, an unknown user, a malformed or forged
//!   `Authorization`) are counted per client address (IPv6 per /64) in a
//!   table of at most [`AuthConfig::max_tracked`] addresses (when full, the
//!   address whose last failure is oldest is forgotten). After
//!   [`AuthConfig::max_failures`] failures within
//!   [`AuthConfig::failure_window`], every request of that address that
//!   needs credentials gets `503 Service Unavailable` with `Retry-After`
//!   for [`AuthConfig::block_for`], right credentials or not (503 and
//!   `Retry-After` are RFC 2326's). A request without `Authorization` (the
//!   usual first try) and a stale nonce are not failures.
//! - **Nothing secret is logged**: events and the log name the user only
//!   when it is one of the file's (a password typed as a user name never
//!   shows), and never a password, a response or an `Authorization` value.
//! - **Paths**: the users may read every path; there are no per-path rules.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::auth::{hex, push_quoted, Algorithm, AuthError, Cursor};

/// The realm when none is given.
pub const DEFAULT_REALM: &str = "rtsp-toolkit";

/// Longest `Authorization` value read; a longer one is malformed (a
/// failure). Real ones are a few hundred bytes.
pub const MAX_AUTHORIZATION_BYTES: usize = 4096;

/// Most parameters in a Digest `Authorization`.
const MAX_PARAMS: usize = 24;

/// Hex digits of a nonce: the time, then the MAC.
const NONCE_TIME_HEX: usize = 16;
const NONCE_MAC_BYTES: usize = 16;
const NONCE_HEX: usize = NONCE_TIME_HEX + 2 * NONCE_MAC_BYTES;

/// One user of the file.
#[derive(Clone, PartialEq, Eq)]
enum Secret {
    /// `name:password`.
    Password(String),
    /// `name:realm:HA1` (Apache `htdigest`): the MD5 of `name:realm:password`.
    Md5Ha1 { realm: String, ha1: String },
}

/// The users of a server, parsed from a user file's text.
///
/// The format: one user per line, `name:password` (the password is the
/// rest of the line after the first `:`, spaces included); lines that start
/// with `#` (after blanks) are comments; blank lines are skipped; `\r\n`
/// line ends are fine. A line `name:realm:HA1` whose last field is 32 hex
/// digits is an Apache `htdigest` line: HA1 is the **MD5** of
/// `name:realm:password`, so such a user can log in with Digest MD5 and
/// Basic, not Digest SHA-256, and only when `realm` is the server's. (A
/// `name:password` line whose password has that shape is read as htdigest.)
///
/// `Debug` shows the user names only.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Users {
    users: Vec<(String, Secret)>,
}

/// A user file that could not be read: the line (from 1) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct UsersError {
    /// The line, counting from 1.
    pub line: usize,
    /// What is wrong with it (never the password).
    pub message: String,
}

impl Users {
    /// Parses a user file's text (see the type's docs).
    ///
    /// # Errors
    ///
    /// The first line that is not a user, a comment or blank: no `:`, an
    /// empty name, a name with control characters, or a name given twice.
    pub fn parse(text: &str) -> Result<Users, UsersError> {
        let mut users: Vec<(String, Secret)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let err = |message: &str| UsersError {
                line: i + 1,
                message: message.to_owned(),
            };
            let line = line.strip_suffix('\r').unwrap_or(line);
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let Some((name, rest)) = line.split_once(':') else {
                return Err(err("expected name:password (or name:realm:HA1)"));
            };
            if name.is_empty() {
                return Err(err("empty user name"));
            }
            if name.chars().any(char::is_control) {
                return Err(err("control character in the user name"));
            }
            if users.iter().any(|(n, _)| n == name) {
                return Err(err(&format!("user {name:?} given twice")));
            }
            let secret = match rest.rsplit_once(':') {
                Some((realm, ha1)) if ha1.len() == 32 && ha1.bytes().all(|b| b.is_ascii_hexdigit()) => Secret::Md5Ha1 {
                    realm: realm.to_owned(),
                    ha1: ha1.to_ascii_lowercase(),
                },
                _ => Secret::Password(rest.to_owned()),
            };
            users.push((name.to_owned(), secret));
        }
        Ok(Users { users })
    }

    /// A set of users with these passwords (for tests and programs that
    /// do not read a file).
    pub fn from_passwords<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Users {
        Users {
            users: pairs
                .into_iter()
                .map(|(n, p)| (n.to_owned(), Secret::Password(p.to_owned())))
                .collect(),
        }
    }

    /// How many users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there are none (then nobody can log in).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The user names, in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.users.iter().map(|(n, _)| n.as_str())
    }

    /// Whether some users are `htdigest` lines (MD5 HA1 only).
    pub fn has_htdigest(&self) -> bool {
        self.users.iter().any(|(_, s)| matches!(s, Secret::Md5Ha1 { .. }))
    }

    /// The `htdigest` users whose realm is not `realm`: they could never
    /// log in to a server of that realm.
    pub fn other_realms(&self, realm: &str) -> Vec<(&str, &str)> {
        self.users
            .iter()
            .filter_map(|(n, s)| match s {
                Secret::Md5Ha1 { realm: r, .. } if r != realm => Some((n.as_str(), r.as_str())),
                _ => None,
            })
            .collect()
    }
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// The authentication settings of a server. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Who may log in.
    pub users: Users,
    /// The realm of the challenges (default [`DEFAULT_REALM`]). Quotes,
    /// backslashes and control characters are dropped from it.
    pub realm: String,
    /// Offer and accept Basic on this server's (plain, unencrypted)
    /// connections (default off: Digest only).
    pub allow_basic: bool,
    /// Offer and accept Digest (default on). Off, with
    /// [`allow_basic`](Self::allow_basic), the server asks for Basic alone,
    /// as older cameras do: for testing clients against them.
    pub offer_digest: bool,
    /// How long a nonce is good for (default 5 minutes); after that a right
    /// answer gets `401` with `stale=true`.
    pub nonce_lifetime: Duration,
    /// Failures from one address within `failure_window` that block it
    /// (default 10).
    pub max_failures: u32,
    /// The window of `max_failures` (default 60 s).
    pub failure_window: Duration,
    /// How long a blocked address gets `503` (default 60 s).
    pub block_for: Duration,
    /// Most addresses whose failures are remembered at once (default 4096).
    pub max_tracked: usize,
}

impl AuthConfig {
    /// These users, with the defaults for everything else.
    pub fn new(users: Users) -> AuthConfig {
        AuthConfig {
            users,
            realm: DEFAULT_REALM.to_owned(),
            allow_basic: false,
            offer_digest: true,
            nonce_lifetime: Duration::from_secs(300),
            max_failures: 10,
            failure_window: Duration::from_secs(60),
            block_for: Duration::from_secs(60),
            max_tracked: 4096,
        }
    }
}

/// The keys of one user for the server's realm: the HA1 of each algorithm
/// it can answer.
#[derive(Clone)]
struct Keys {
    md5: String,
    sha256: Option<String>,
}

/// The authentication of one server: its [`AuthConfig`], the nonce secret
/// and the failures per address, shared by all its connections (put it in
/// an `Arc` in [`ServerConfig::auth`](super::ServerConfig::auth)).
///
/// `Debug` shows the realm, the user names and the settings, never a key.
pub struct ServerAuth {
    config: AuthConfig,
    realm: String,
    keys: HashMap<String, Keys>,
    sha256: bool,
    secret: [u8; 32],
    epoch: Instant,
    failures: Mutex<Failures>,
}

impl fmt::Debug for ServerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerAuth")
            .field("realm", &self.realm)
            .field("users", &self.config.users)
            .field("sha256", &self.sha256)
            .field("allow_basic", &self.config.allow_basic)
            .field("offer_digest", &self.config.offer_digest)
            .field("nonce_lifetime", &self.config.nonce_lifetime)
            .finish_non_exhaustive()
    }
}

/// What a request's credentials are worth: [`ServerAuth::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The credentials of this user are good.
    Allowed {
        /// The user (from the file).
        user: String,
    },
    /// No credentials, or a right answer to an expired nonce (`stale`):
    /// answer `401` with fresh challenges; not a failure.
    Challenge {
        /// `stale=true` in the challenges.
        stale: bool,
    },
    /// Wrong credentials: answer `401` with fresh challenges; counted.
    Refused {
        /// Why (never a secret).
        reason: Refusal,
        /// The user named, when it is one of the file's.
        user: Option<String>,
    },
    /// The address failed too often: answer `503` with `Retry-After`.
    Blocked {
        /// How much longer.
        retry_after: Duration,
    },
}

/// Why credentials were refused (nothing secret in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The `Authorization` header could not be parsed.
    Malformed,
    /// Basic credentials, but Basic is not allowed here (not counted as a
    /// failure: no password was tried).
    BasicNotAllowed,
    /// No such user.
    UnknownUser,
    /// The password, or the Digest response, is wrong.
    WrongPassword,
    /// The Digest answer is for another realm.
    WrongRealm,
    /// The nonce is not one of this server's (or not for this address).
    BadNonce,
    /// The Digest algorithm or qop is not one offered, or the user has no
    /// key for it (an htdigest user answering SHA-256).
    Unsupported,
    /// The Digest `uri` is not the Request-URI.
    UriMismatch,
}

impl Refusal {
    /// Whether it counts toward the rate limit.
    fn counts(self) -> bool {
        self != Refusal::BasicNotAllowed
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Malformed => "malformed Authorization",
            Refusal::BasicNotAllowed => "Basic not allowed without TLS",
            Refusal::UnknownUser => "unknown user",
            Refusal::WrongPassword => "wrong password",
            Refusal::WrongRealm => "wrong realm",
            Refusal::BadNonce => "not a nonce of this server",
            Refusal::Unsupported => "unsupported algorithm or qop",
            Refusal::UriMismatch => "Digest uri is not the Request-URI",
        })
    }
}

/// A `WWW-Authenticate` value asking for Digest (`qop="auth"`).
pub(super) fn digest_challenge(realm: &str, nonce: &str, algorithm: Algorithm, stale: bool) -> String {
    let mut v = String::from("Digest realm=");
    push_quoted(&mut v, realm);
    v.push_str(", nonce=\"");
    v.push_str(nonce);
    v.push_str("\", algorithm=");
    v.push_str(algorithm.name());
    v.push_str(", qop=\"auth\"");
    if stale {
        v.push_str(", stale=true");
    }
    v
}

impl ServerAuth {
    /// A server's authentication: `config`, a `secret` for its nonces
    /// (random, unpredictable: the runtime's), and the `epoch` its nonces
    /// count time from (the runtime's "now" when the server starts; nonces
    /// of earlier instants are all fresh).
    pub fn new(config: AuthConfig, secret: [u8; 32], epoch: Instant) -> ServerAuth {
        let realm: String = config
            .realm
            .chars()
            .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
            .collect();
        let mut keys = HashMap::new();
        for (name, secret) in &config.users.users {
            let k = match secret {
                Secret::Password(pw) => Keys {
                    md5: ha1(Algorithm::Md5, name, &realm, pw),
                    sha256: Some(ha1(Algorithm::Sha256, name, &realm, pw)),
                },
                Secret::Md5Ha1 { realm: r, ha1 } if *r == realm => Keys {
                    md5: ha1.clone(),
                    sha256: None,
                },
                Secret::Md5Ha1 { .. } => continue,
            };
            keys.insert(name.clone(), k);
        }
        let sha256 = !config.users.has_htdigest();
        ServerAuth {
            failures: Mutex::new(Failures::new(config.max_tracked)),
            config,
            realm,
            keys,
            sha256,
            secret,
            epoch,
        }
    }

    /// The settings.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// The realm of the challenges.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Whether Digest SHA-256 is offered (no htdigest users).
    pub fn offers_sha256(&self) -> bool {
        self.sha256
    }

    /// The `WWW-Authenticate` values of a `401` to `peer` at `now`, strongest
    /// first.
    pub fn challenges(&self, now: Instant, peer: IpAddr, stale: bool) -> Vec<String> {
        let nonce = self.nonce(now, peer);
        let mut out = Vec::with_capacity(3);
        let algorithms: &[Algorithm] = if !self.config.offer_digest {
            &[]
        } else if self.sha256 {
            &[Algorithm::Sha256, Algorithm::Md5]
        } else {
            &[Algorithm::Md5]
        };
        for alg in algorithms {
            out.push(digest_challenge(&self.realm, &nonce, *alg, stale));
        }
        if self.config.allow_basic {
            let mut v = String::from("Basic realm=");
            push_quoted(&mut v, &self.realm);
            out.push(v);
        }
        out
    }

    /// Judges a request from `peer` at `now`: its method, its Request-URI as
    /// sent, and its `Authorization` value, if any. Failures are counted
    /// here (see the module docs).
    pub fn check(&self, now: Instant, peer: IpAddr, method: &str, uri: &str, authorization: Option<&str>) -> Verdict {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(retry_after) = failures.blocked(peer, now) {
            return Verdict::Blocked { retry_after };
        }
        let Some(value) = authorization else {
            return Verdict::Challenge { stale: false };
        };
        let verdict = match parse_authorization(value) {
            Err(_) => Verdict::Refused {
                reason: Refusal::Malformed,
                user: None,
            },
            Ok(Authorization::Basic { username, password }) => self.check_basic(&username, &password),
            Ok(Authorization::Digest(_)) if !self.config.offer_digest => Verdict::Refused {
                reason: Refusal::Unsupported,
                user: None,
            },
            Ok(Authorization::Digest(d)) => self.check_digest(now, peer, method, uri, &d),
        };
        if let Verdict::Refused { reason, .. } = &verdict {
            if reason.counts() && failures.fail(peer, now, &self.config) {
                tracing::info!(%peer, block_for = ?self.config.block_for, "too many failed logins; address blocked");
            }
        }
        verdict
    }

    fn check_basic(&self, username: &str, password: &str) -> Verdict {
        if !self.config.allow_basic {
            return Verdict::Refused {
                reason: Refusal::BasicNotAllowed,
                user: None,
            };
        }
        let Some(keys) = self.keys.get(username) else {
            return Verdict::Refused {
                reason: Refusal::UnknownUser,
                user: None,
            };
        };
        if same(&ha1(Algorithm::Md5, username, &self.realm, password), &keys.md5) {
            Verdict::Allowed {
                user: username.to_owned(),
            }
        } else {
            Verdict::Refused {
                reason: Refusal::WrongPassword,
                user: Some(username.to_owned()),
            }
        }
    }

    fn check_digest(&self, now: Instant, peer: IpAddr, method: &str, uri: &str, d: &DigestResponse) -> Verdict {
        let refuse = |reason: Refusal, user: Option<&str>| Verdict::Refused {
            reason,
            user: user.map(str::to_owned),
        };
        let alg = match d.algorithm.as_deref().map(Algorithm::parse) {
            None => Algorithm::Md5,
            Some(Some(a @ Algorithm::Md5)) => a,
            Some(Some(a @ Algorithm::Sha256)) if self.sha256 => a,
            Some(_) => return refuse(Refusal::Unsupported, None),
        };
        let user = if d.userhash {
            self.keys
                .keys()
                .find(|n| same(&alg.hex(&[n.as_bytes(), b":", self.realm.as_bytes()]), &d.username))
        } else {
            self.keys.get_key_value(&d.username).map(|(n, _)| n)
        };
        let Some((user, keys)) = user.and_then(|u| self.keys.get_key_value(u)) else {
            return refuse(Refusal::UnknownUser, None);
        };
        let named = Some(user.as_str());
        if d.realm != self.realm {
            return refuse(Refusal::WrongRealm, named);
        }
        let key = match alg {
            Algorithm::Sha256 => keys.sha256.as_deref(),
            _ => Some(keys.md5.as_str()),
        };
        let Some(key) = key else {
            return refuse(Refusal::Unsupported, named);
        };
        let Some(age) = self.nonce_age(now, peer, &d.nonce) else {
            return refuse(Refusal::BadNonce, named);
        };
        if d.uri != uri {
            return refuse(Refusal::UriMismatch, named);
        }
        let ha2 = alg.hex(&[method.as_bytes(), b":", d.uri.as_bytes()]);
        let expected = match (&d.qop, &d.nc, &d.cnonce) {
            (None, None, None) => alg.response(key, &d.nonce, None, &ha2),
            (Some(q), Some(nc), Some(cnonce)) if q.eq_ignore_ascii_case("auth") => {
                alg.response(key, &d.nonce, Some((nc, cnonce)), &ha2)
            }
            _ => return refuse(Refusal::Unsupported, named),
        };
        if !same(&expected, &d.response.to_ascii_lowercase()) {
            return refuse(Refusal::WrongPassword, named);
        }
        if age > self.config.nonce_lifetime {
            return Verdict::Challenge { stale: true };
        }
        Verdict::Allowed { user: user.clone() }
    }

    /// A new nonce for `peer` at `now`.
    fn nonce(&self, now: Instant, peer: IpAddr) -> String {
        let t = u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        let mut s = format!("{t:016x}");
        s.push_str(&hex(&self.nonce_mac(t, peer)));
        s
    }

    /// How old `nonce` is, if it is one of this server's for `peer`.
    fn nonce_age(&self, now: Instant, peer: IpAddr, nonce: &str) -> Option<Duration> {
        Some(now.saturating_duration_since(self.nonce_issued(peer, nonce)?))
    }

    /// When the nonce a Digest `authorization` answers was issued, if it is
    /// one of this server's for `peer` (the camera simulator's
    /// `reauth_after_play` refuses the ones issued before PLAY). `None`
    /// for Basic, a malformed value, or a nonce that is not this server's.
    pub fn digest_nonce_issued(&self, peer: IpAddr, authorization: &str) -> Option<Instant> {
        match parse_authorization(authorization) {
            Ok(Authorization::Digest(d)) => self.nonce_issued(peer, &d.nonce),
            _ => None,
        }
    }

    /// When `nonce` was issued, if it is one of this server's for `peer`.
    fn nonce_issued(&self, peer: IpAddr, nonce: &str) -> Option<Instant> {
        if nonce.len() != NONCE_HEX || !nonce.is_ascii() {
            return None;
        }
        let t = u64::from_str_radix(&nonce[..NONCE_TIME_HEX], 16).ok()?;
        if !same(
            &hex(&self.nonce_mac(t, peer)),
            &nonce[NONCE_TIME_HEX..].to_ascii_lowercase(),
        ) {
            return None;
        }
        self.epoch.checked_add(Duration::from_nanos(t))
    }

    fn nonce_mac(&self, t: u64, peer: IpAddr) -> [u8; NONCE_MAC_BYTES] {
        let ip = match canonical(peer) {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        let mac = hmac_sha256(&self.secret, &[&t.to_be_bytes(), &ip, self.realm.as_bytes()]);
        let mut out = [0u8; NONCE_MAC_BYTES];
        out.copy_from_slice(&mac[..NONCE_MAC_BYTES]);
        out
    }
}

/// HA1 of `user:realm:password`, lower-case hex.
fn ha1(alg: Algorithm, user: &str, realm: &str, password: &str) -> String {
    alg.hex(&[user.as_bytes(), b":", realm.as_bytes(), b":", password.as_bytes()])
}

/// Equal, in a time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HMAC-SHA-256 (RFC 2104) of the concatenation of `parts`.
fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, k) in key.iter().enumerate() {
        ipad[i] ^= k;
        opad[i] ^= k;
    }
    let mut inner = Sha256::new();
    inner.update(ipad);
    for p in parts {
        inner.update(p);
    }
    let mut outer = Sha256::new();
    outer.update(opad);
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// An IPv4-mapped IPv6 address as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The rate-limit key of an address: IPv4 as it is, IPv6 by its /64 (one
/// host usually has a whole /64).
fn limit_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[8..].fill(0);
            IpAddr::from(o)
        }
        v4 => v4,
    }
}

/// Failures of one address.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// Start of the current window.
    since: Instant,
    /// Failures in it.
    count: u32,
    /// The last failure.
    last: Instant,
    /// Blocked until then.
    blocked_until: Option<Instant>,
}

/// The failures per address, at most `max` addresses.
#[derive(Debug)]
struct Failures {
    by_addr: HashMap<IpAddr, Record>,
    max: usize,
}

impl Failures {
    fn new(max: usize) -> Failures {
        Failures {
            by_addr: HashMap::new(),
            max: max.max(1),
        }
    }

    /// How much longer `ip` is blocked, if it is.
    fn blocked(&mut self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let key = limit_key(ip);
        let until = self.by_addr.get(&key)?.blocked_until?;
        if now < until {
            return Some(until - now);
        }
        if let Some(r) = self.by_addr.get_mut(&key) {
            r.blocked_until = None;
        }
        None
    }

    /// Counts a failure of `ip`; whether it blocks the address now.
    fn fail(&mut self, ip: IpAddr, now: Instant, config: &AuthConfig) -> bool {
        let key = limit_key(ip);
        if !self.by_addr.contains_key(&key) && self.by_addr.len() >= self.max {
            self.evict(now, config.failure_window);
        }
        let r = self.by_addr.entry(key).or_insert(Record {
            since: now,
            count: 0,
            last: now,
            blocked_until: None,
        });
        if now.saturating_duration_since(r.since) > config.failure_window {
            r.since = now;
            r.count = 0;
        }
        r.count = r.count.saturating_add(1);
        r.last = now;
        if r.count >= config.max_failures.max(1) {
            r.count = 0;
            r.since = now;
            r.blocked_until = Some(super::later(now, config.block_for));
            return true;
        }
        false
    }

    /// Makes room for one more: forgets every address neither blocked nor
    /// failing within `window`, or else the one whose last failure is oldest.
    fn evict(&mut self, now: Instant, window: Duration) {
        self.by_addr
            .retain(|_, r| r.blocked_until.is_some_and(|u| now < u) || now.saturating_duration_since(r.last) <= window);
        if self.by_addr.len() >= self.max {
            if let Some(oldest) = self.by_addr.iter().min_by_key(|(_, r)| r.last).map(|(k, _)| *k) {
                self.by_addr.remove(&oldest);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_addr.len()
    }
}

/// A parsed `Authorization` header value.
#[derive(Clone, PartialEq, Eq)]
pub enum Authorization {
    /// `Basic base64(user:password)`.
    Basic {
        /// The user name.
        username: String,
        /// The password (`Debug` shows `***`).
        password: String,
    },
    /// `Digest username=..., response=..., ...`.
    Digest(DigestResponse),
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Authorization::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"***")
                .finish(),
            Authorization::Digest(d) => f.debug_tuple("Digest").field(d).finish(),
        }
    }
}

/// The parameters of a Digest `Authorization` (RFC 7616 §3.4).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DigestResponse {
    /// `username` (hashed when `userhash`).
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `uri`.
    pub uri: String,
    /// `response`.
    pub response: String,
    /// `algorithm`, if given (absent means MD5).
    pub algorithm: Option<String>,
    /// `qop`, if given.
    pub qop: Option<String>,
    /// `nc`, if given.
    pub nc: Option<String>,
    /// `cnonce`, if given.
    pub cnonce: Option<String>,
    /// `opaque`, if given.
    pub opaque: Option<String>,
    /// `userhash=true`.
    pub userhash: bool,
}

/// Parses an `Authorization` header value: `Basic` with a base64 token, or
/// `Digest` with comma-separated `name=value` parameters (values quoted
/// with backslash escapes, or bare tokens). Names are case-insensitive;
/// unknown parameters are skipped.
///
/// Bounded: a value longer than [`MAX_AUTHORIZATION_BYTES`], more than 24
/// Digest parameters, or a parameter given twice is malformed, so what it
/// allocates is at most about the value's length. It never panics.
///
/// # Errors
///
/// [`AuthError::Malformed`]: another scheme, bad syntax, bad base64 or
/// UTF-8, no `:` in Basic's pair, or a Digest answer without `username`,
/// `realm`, `nonce`, `uri` or `response`.
pub fn parse_authorization(value: &str) -> Result<Authorization, AuthError> {
    let bad = |why: &str| AuthError::Malformed(why.to_owned());
    if value.len() > MAX_AUTHORIZATION_BYTES {
        return Err(bad("Authorization too long"));
    }
    let mut cur = Cursor { s: value, pos: 0 };
    cur.skip_ws();
    let scheme = cur.token();
    if scheme.eq_ignore_ascii_case("Basic") {
        cur.skip_ws();
        let token = value[cur.pos..].trim_end_matches([' ', '\t']);
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .map_err(|_| bad("Basic credentials are not base64"))?;
        let pair = String::from_utf8(decoded).map_err(|_| bad("Basic credentials are not UTF-8"))?;
        let (username, password) = pair
            .split_once(':')
            .ok_or_else(|| bad("Basic credentials without ':'"))?;
        return Ok(Authorization::Basic {
            username: username.to_owned(),
            password: password.to_owned(),
        });
    }
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(bad("not Basic or Digest"));
    }
    if !matches!(cur.peek(), Some(' ' | '\t')) {
        return Err(cur.unexpected());
    }
    let mut d = DigestResponse::default();
    let mut seen: Vec<&str> = Vec::new();
    loop {
        cur.skip_ws_and_commas();
        if cur.peek().is_none() {
            break;
        }
        let name = cur.token();
        if name.is_empty() {
            return Err(cur.unexpected());
        }
        if seen.len() >= MAX_PARAMS {
            return Err(bad("too many Digest parameters"));
        }
        if seen.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return Err(bad("a Digest parameter given twice"));
        }
        seen.push(name);
        cur.skip_ws();
        if cur.bump() != Some('=') {
            return Err(cur.unexpected());
        }
        cur.skip_ws();
        let v = if cur.peek() == Some('"') {
            cur.quoted()?
        } else {
            cur.bare_value().to_owned()
        };
        cur.skip_ws();
        if !matches!(cur.peek(), None | Some(',')) {
            return Err(cur.unexpected());
        }
        match name.to_ascii_lowercase().as_str() {
            "username" => d.username = v,
            "realm" => d.realm = v,
            "nonce" => d.nonce = v,
            "uri" => d.uri = v,
            "response" => d.response = v,
            "algorithm" => d.algorithm = Some(v),
            "qop" => d.qop = Some(v),
            "nc" => d.nc = Some(v),
            "cnonce" => d.cnonce = Some(v),
            "opaque" => d.opaque = Some(v),
            "userhash" => d.userhash = v.eq_ignore_ascii_case("true"),
            _ => {}
        }
    }
    let required = ["username", "realm", "nonce", "uri", "response"];
    if let Some(missing) = required
        .iter()
        .find(|r| !seen.iter().any(|n| n.eq_ignore_ascii_case(r)))
    {
        return Err(AuthError::Malformed(format!("Digest answer without {missing}")));
    }
    Ok(Authorization::Digest(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Authenticator, Challenge, Credentials};

    fn users() -> Users {
        Users::parse("# test users\n\nalice:wonder land\nbob:b:c:d\r\n").unwrap()
    }

    fn server(config: AuthConfig, t0: Instant) -> ServerAuth {
        ServerAuth::new(config, [7; 32], t0)
    }

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const URI: &str = "rtsp://127.0.0.1:8554/a.mp4";

    /// Our client's answer to the challenges of a 401.
    fn answer(challenges: &[String], user: &str, password: &str, method: &str) -> String {
        let values: Vec<&str> = challenges.iter().map(String::as_str).collect();
        let c = crate::auth::parse_challenges(&values).unwrap();
        let creds = Credentials {
            username: user.into(),
            password: password.into(),
        };
        Authenticator::from_challenges(creds, &c)
            .unwrap()
            .authorization(method, URI)
    }

    #[test]
    fn user_file_format() {
        let u = users();
        assert_eq!(u.names().collect::<Vec<_>>(), ["alice", "bob"]);
        assert!(!u.has_htdigest());
        let u = Users::parse("carol:rtsp-toolkit:0123456789ABCDEF0123456789abcdef\n  # comment\n").unwrap();
        assert!(u.has_htdigest());
        assert_eq!(u.other_realms("rtsp-toolkit"), []);
        assert_eq!(u.other_realms("x"), [("carol", "rtsp-toolkit")]);
        for (text, line) in [("a:b\nnocolon\n", 2), (":pw", 1), ("a:1\na:2", 2), ("a\u{7}:x", 1)] {
            assert_eq!(Users::parse(text).map_err(|e| e.line), Err(line), "{text:?}");
        }
        let e = Users::parse("x:secret-pw\nx:secret-pw").unwrap_err();
        assert!(!e.to_string().contains("secret-pw"), "{e}");
        assert!(!format!("{u:?} {:?}", users()).contains("wonder"));
    }

    #[test]
    fn digest_sha256_md5_and_no_qop_accepted_from_our_client() {
        let t0 = Instant::now();
        let s = server(AuthConfig::new(users()), t0);
        assert_eq!(
            s.check(t0, PEER, "DESCRIBE", URI, None),
            Verdict::Challenge { stale: false }
        );
        let ch = s.challenges(t0, PEER, false);
        assert_eq!(ch.len(), 2, "Digest only without allow_basic: {ch:?}");
        assert!(
            ch[0].contains("algorithm=SHA-256") && ch[1].contains("algorithm=MD5"),
            "{ch:?}"
        );
        // SHA-256 (our client picks the strongest).
        let a = answer(&ch, "alice", "wonder land", "DESCRIBE");
        assert!(a.contains("algorithm=SHA-256"), "{a}");
        let ok = Verdict::Allowed { user: "alice".into() };
        assert_eq!(s.check(t0, PEER, "DESCRIBE", URI, Some(&a)), ok);
        // MD5 only.
        let a = answer(&ch[1..], "alice", "wonder land", "DESCRIBE");
        assert_eq!(s.check(t0, PEER, "DESCRIBE", URI, Some(&a)), ok);
        // RFC 2069 style (no qop, no algorithm), as GStreamer's client answers.
        let nonce = ch[1].split("nonce=\"").nth(1).unwrap().split('"').next().unwrap();
        let bare = Challenge::Digest(crate::auth::DigestChallenge {
            realm: "rtsp-toolkit".into(),
            nonce: nonce.into(),
            opaque: None,
            algorithm: None,
            qop: vec![],
            stale: false,
            userhash: false,
        });
        let creds = Credentials {
            username: "bob".into(),
            password: "b:c:d".into(),
        };
        let a = Authenticator::new(creds, bare).unwrap().authorization("PLAY", URI);
        assert_eq!(
            s.check(t0, PEER, "PLAY", URI, Some(&a)),
            Verdict::Allowed { user: "bob".into() }
        );
        // The answer is for one method and URI.
        assert!(matches!(
            s.check(t0, PEER, "SETUP", URI, Some(&a)),
            Verdict::Refused {
                reason: Refusal::WrongPassword,
                ..
            }
        ));
        assert!(matches!(
            s.check(t0, PEER, "PLAY", "rtsp://127.0.0.1:8554/b.mp4", Some(&a)),
            Verdict::Refused {
                reason: Refusal::UriMismatch,
                ..
            }
        ));
    }

    #[test]
    fn wrong_password_unknown_user_and_forged_nonce_are_refused() {
        let t0 = Instant::now();
        let s = server(AuthConfig::new(users()), t0);
        let ch = s.challenges(t0, PEER, false);
        let a = answer(&ch, "alice", "wrong", "DESCRIBE");
        assert_eq!(
            s.check(t0, PEER, "DESCRIBE", URI, Some(&a)),
            Verdict::Refused {
                reason: Refusal::WrongPassword,
                user: Some("alice".into())
            }
        );
        // A user name that is not a user's is never echoed (it may be a password).
        let a = answer(&ch, "hunter2", "x", "DESCRIBE");
        assert_eq!(
            s.check(t0, PEER, "DESCRIBE", URI, Some(&a)),
            Verdict::Refused {
                reason: Refusal::UnknownUser,
                user: None
            }
        );
        // A nonce of another server (another secret), or for another address.
        let other = ServerAuth::new(AuthConfig::new(users()), [8; 32], t0);
        let a = answer(&other.challenges(t0, PEER, false), "alice", "wonder land", "DESCRIBE");
        assert!(matches!(
            s.check(t0, PEER, "DESCRIBE", URI, Some(&a)),
            Verdict::Refused {
                reason: Refusal::BadNonce,
                ..
            }
        ));
        let a = answer(&ch, "alice", "wonder land", "DESCRIBE");
        let elsewhere: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(matches!(
            s.check(t0, elsewhere, "DESCRIBE", URI, Some(&a)),
            Verdict::Refused {
                reason: Refusal::BadNonce,
                ..
            }
        ));
        assert!(matches!(
            s.check(t0, PEER, "DESCRIBE", URI, Some("Digest garbage")),
            Verdict::Refused {
                reason: Refusal::Malformed,
                ..
            }
        ));
    }

    #[test]
    fn nonce_expires_exactly_after_its_lifetime_then_stale() {
        let t0 = Instant::now();
        let mut config = AuthConfig::new(users());
        config.nonce_lifetime = Duration::from_millis(50);
        let s = server(config, t0);
        let issued = t0 + Duration::from_millis(1000);
        let ch = s.challenges(issued, PEER, false);
        let a = answer(&ch, "alice", "wonder land", "DESCRIBE");
        let ok = Verdict::Allowed { user: "alice".into() };
        assert_eq!(s.check(issued, PEER, "DESCRIBE", URI, Some(&a)), ok);
        let edge = issued + Duration::from_millis(50);
        assert_eq!(s.check(edge, PEER, "DESCRIBE", URI, Some(&a)), ok);
        let late = edge + Duration::from_millis(1);
        assert_eq!(
            s.check(late, PEER, "DESCRIBE", URI, Some(&a)),
            Verdict::Challenge { stale: true }
        );
        let stale = s.challenges(late, PEER, true);
        assert!(stale.iter().all(|c| c.ends_with(", stale=true")), "{stale:?}");
        // A wrong answer to an expired nonce is a failure, not stale.
        let wrong = answer(&ch, "alice", "nope", "DESCRIBE");
        assert!(matches!(
            s.check(late, PEER, "DESCRIBE", URI, Some(&wrong)),
            Verdict::Refused { .. }
        ));
        // The fresh nonce works again.
        let a = answer(&stale, "alice", "wonder land", "DESCRIBE");
        assert_eq!(s.check(late, PEER, "DESCRIBE", URI, Some(&a)), ok);
    }

    #[test]
    fn basic_only_when_allowed() {
        let t0 = Instant::now();
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:wonder land")
        );
        let s = server(AuthConfig::new(users()), t0);
        assert_eq!(
            s.check(t0, PEER, "DESCRIBE", URI, Some(&basic)),
            Verdict::Refused {
                reason: Refusal::BasicNotAllowed,
                user: None
            }
        );
        let mut config = AuthConfig::new(users());
        config.allow_basic = true;
        let s = server(config, t0);
        let ch = s.challenges(t0, PEER, false);
        assert_eq!(ch.last().map(String::as_str), Some("Basic realm=\"rtsp-toolkit\""));
        assert_eq!(
            s.check(t0, PEER, "DESCRIBE", URI, Some(&basic)),
            Verdict::Allowed { user: "alice".into() }
        );
        let wrong = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("alice:x"));
        assert!(matches!(
            s.check(t0, PEER, "DESCRIBE", URI, Some(&wrong)),
            Verdict::Refused {
                reason: Refusal::WrongPassword,
                ..
            }
        ));
    }

    #[test]
    fn digest_can_be_turned_off_for_a_basic_only_server() {
        let t0 = Instant::now();
        let mut config = AuthConfig::new(users());
        config.allow_basic = true;
        config.offer_digest = false;
        let s = server(config, t0);
        assert_eq!(s.challenges(t0, PEER, false), ["Basic realm=\"rtsp-toolkit\""]);
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:wonder land")
        );
        assert_eq!(
            s.check(t0, PEER, "DESCRIBE", URI, Some(&basic)),
            Verdict::Allowed { user: "alice".into() }
        );
        let digest = format!(
            "Digest username=\"alice\", realm=\"rtsp-toolkit\", nonce=\"{}\", uri=\"{URI}\", response=\"00\"",
            s.nonce(t0, PEER)
        );
        assert_eq!(
            s.check(t0, PEER, "DESCRIBE", URI, Some(&digest)),
            Verdict::Refused {
                reason: Refusal::Unsupported,
                user: None
            }
        );
    }

    #[test]
    fn htdigest_users_get_md5_only() {
        let t0 = Instant::now();
        let ha1 = Algorithm::Md5.hex(&[b"carol:rtsp-toolkit:sesame"]);
        let mut config = AuthConfig::new(Users::parse(&format!("carol:rtsp-toolkit:{ha1}\nalice:pw")).unwrap());
        config.allow_basic = true;
        let s = server(config, t0);
        assert!(!s.offers_sha256());
        let ch = s.challenges(t0, PEER, false);
        assert!(ch.iter().all(|c| !c.contains("SHA-256")), "{ch:?}");
        let a = answer(&ch, "carol", "sesame", "DESCRIBE");
        assert_eq!(
            s.check(t0, PEER, "DESCRIBE", URI, Some(&a)),
            Verdict::Allowed { user: "carol".into() }
        );
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("carol:sesame")
        );
        assert_eq!(
            s.check(t0, PEER, "DESCRIBE", URI, Some(&basic)),
            Verdict::Allowed { user: "carol".into() }
        );
        // A SHA-256 answer is refused: SHA-256 is not offered.
        let mut sha = AuthConfig::new(users());
        sha.realm = "rtsp-toolkit".into();
        let a = answer(
            &server(sha, t0).challenges(t0, PEER, false)[..1],
            "carol",
            "sesame",
            "DESCRIBE",
        );
        assert!(matches!(
            s.check(t0, PEER, "DESCRIBE", URI, Some(&a)),
            Verdict::Refused {
                reason: Refusal::Unsupported,
                ..
            }
        ));
    }

    #[test]
    fn failures_block_an_address_for_a_while_exactly() {
        let t0 = Instant::now();
        let mut config = AuthConfig::new(users());
        config.max_failures = 3;
        config.failure_window = Duration::from_secs(10);
        config.block_for = Duration::from_secs(30);
        let s = server(config, t0);
        let ch = s.challenges(t0, PEER, false);
        let wrong = answer(&ch, "alice", "wrong", "DESCRIBE");
        let right = answer(&ch, "alice", "wonder land", "DESCRIBE");
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Two failures, then the window passes: the count starts again.
        assert!(matches!(
            s.check(at(0), PEER, "DESCRIBE", URI, Some(&wrong)),
            Verdict::Refused { .. }
        ));
        assert!(matches!(
            s.check(at(1), PEER, "DESCRIBE", URI, Some(&wrong)),
            Verdict::Refused { .. }
        ));
        assert!(matches!(
            s.check(at(10_002), PEER, "DESCRIBE", URI, Some(&wrong)),
            Verdict::Refused { .. }
        ));
        assert!(matches!(
            s.check(at(10_003), PEER, "DESCRIBE", URI, Some(&wrong)),
            Verdict::Refused { .. }
        ));
        // Requests without credentials and right ones do not count.
        assert_eq!(
            s.check(at(10_004), PEER, "DESCRIBE", URI, None),
            Verdict::Challenge { stale: false }
        );
        assert!(matches!(
            s.check(at(10_005), PEER, "DESCRIBE", URI, Some(&right)),
            Verdict::Allowed { .. }
        ));
        // The third within the window blocks, for exactly 30 s, right password or not.
        assert!(matches!(
            s.check(at(10_006), PEER, "DESCRIBE", URI, Some(&wrong)),
            Verdict::Refused { .. }
        ));
        assert_eq!(
            s.check(at(10_006), PEER, "DESCRIBE", URI, Some(&right)),
            Verdict::Blocked {
                retry_after: Duration::from_secs(30)
            }
        );
        assert_eq!(
            s.check(at(40_005), PEER, "DESCRIBE", URI, None),
            Verdict::Blocked {
                retry_after: Duration::from_millis(1)
            }
        );
        // Another address is not blocked.
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(
            s.check(at(20_000), other, "DESCRIBE", URI, None),
            Verdict::Challenge { stale: false }
        );
        // After the block: a fresh nonce, and in again.
        let ch = s.challenges(at(40_006), PEER, false);
        let right = answer(&ch, "alice", "wonder land", "DESCRIBE");
        assert!(matches!(
            s.check(at(40_006), PEER, "DESCRIBE", URI, Some(&right)),
            Verdict::Allowed { .. }
        ));
    }

    #[test]
    fn the_failure_table_is_bounded() {
        let t0 = Instant::now();
        let mut config = AuthConfig::new(users());
        config.max_tracked = 8;
        config.max_failures = 2;
        let s = server(config, t0);
        for i in 0..1000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let _ = s.check(
                t0 + Duration::from_millis(u64::from(i)),
                ip,
                "DESCRIBE",
                URI,
                Some("Digest x"),
            );
        }
        assert!(s.failures.lock().unwrap().len() <= 8);
        // IPv6 addresses of one /64 share a record.
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        let late = t0 + Duration::from_secs(3600);
        let _ = s.check(late, a, "DESCRIBE", URI, Some("Digest x"));
        let _ = s.check(late, b, "DESCRIBE", URI, Some("Digest x"));
        assert!(matches!(
            s.check(late, a, "DESCRIBE", URI, None),
            Verdict::Blocked { .. }
        ));
    }

    #[test]
    fn parser_reads_real_answers_and_refuses_garbage() {
        let a = parse_authorization(
            r#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#,
        )
        .unwrap();
        let Authorization::Digest(d) = a else { panic!() };
        assert_eq!(d.username, "Mufasa");
        assert_eq!(d.algorithm.as_deref(), Some("SHA-256"));
        assert_eq!(d.nc.as_deref(), Some("00000001"));
        assert_eq!(d.qop.as_deref(), Some("auth"));
        // FFmpeg 5.1's form (MD5, no qop).
        assert!(parse_authorization(
            r#"Digest username="u", realm="r", nonce="n", uri="rtsp://127.0.0.1:8554/a.mp4", response="0123456789abcdef0123456789abcdef""#
        )
        .is_ok());
        let basic = parse_authorization("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap();
        assert_eq!(
            basic,
            Authorization::Basic {
                username: "Aladdin".into(),
                password: "open sesame".into()
            }
        );
        assert!(!format!("{basic:?}").contains("sesame"));
        let long = format!("Digest username=\"{}\"", "a".repeat(MAX_AUTHORIZATION_BYTES));
        let many: String = (0..30).map(|i| format!("p{i}=x, ")).collect();
        for bad in [
            "",
            "Bearer x",
            "Basic",
            "Basic !!!",
            "Basic YQ==",
            "Basic /w==",
            "Digest",
            "Digestusername=\"a\"",
            r#"Digest username="a", realm="r", nonce="n", uri="u""#,
            r#"Digest username="a", username="b", realm="r", nonce="n", uri="u", response="x""#,
            r#"Digest username="a" realm="r""#,
            r#"Digest username="unterminated"#,
            long.as_str(),
            &format!("Digest {many}"),
        ] {
            assert!(parse_authorization(bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(s in proptest::prelude::any::<String>(), t in "[A-Za-z =,\"\\\\\t/+]{0,80}") {
            let _ = parse_authorization(&s);
            let _ = parse_authorization(&format!("Digest {t}"));
            let _ = parse_authorization(&format!("Basic {t}"));
        }
    }
}
