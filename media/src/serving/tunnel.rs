//! RTSP over HTTP tunnels on every runtime's server: a connection's first
//! bytes sniffed, tunnel halves paired by cookie, the POST half's decoded
//! requests handed to the GET half's connection machine
//! (`docs/ARCHITECTURE.md`, "RTSP over HTTP tunnels (server)").
//!
//! The rules (what an HTTP first line is, the request head, the cookie,
//! the base64, the limits) are the core's `rtsp_toolkit_core::server::tunnel`;
//! this is the sockets' side:
//! - [`serve`] reads a new connection's first bytes (at most five decide):
//!   RTSP goes to the connection loop as before, an HTTP `GET`/`POST` to
//!   [`serve_http`], which reads its head and answers a request that is not
//!   a tunnel half with its error status;
//! - a GET half is answered `200` at once, then runs the ordinary connection
//!   loop over [`TunnelIo`]: its writes go to the GET socket, its reads come
//!   from the POST halves' decoded bytes (the GET socket only tells its end);
//! - a POST half decodes its body into the tunnel's inbox, bounded
//!   ([`INBOX`]: the POST socket is not read while the GET's machine has that
//!   much to take) and gets no answer, unless its base64 is garbage (`400`,
//!   and the tunnel ends). A later POST with the same cookie takes over from
//!   the one before (clients that open one per request);
//! - [`Tunnels`], in the server's state, holds the halves by cookie: at most
//!   [`MAX_UNPAIRED`] waiting for their other half (`503` past it), each for
//!   at most [`PAIRING_TIMEOUT`].

use rtsp_toolkit_core::server::tunnel::{
    error_response, parse_head, sniff, Base64Decoder, Half, Sniff, TunnelRequest, GET_RESPONSE, MAX_UNPAIRED,
    PAIRING_TIMEOUT,
};

use super::*;

/// Most decoded request bytes a tunnel holds for its GET half's machine;
/// past it the POST socket is not read until the machine took some.
const INBOX: usize = 64 * 1024;

/// Bytes read at a time from a POST half (decoded into at most 3/4 as many).
const POST_READ: usize = 4 * 1024;

/// The tunnels of a server, by cookie.
#[derive(Debug, Default)]
pub(super) struct Tunnels(Mutex<HashMap<String, Arc<Link>>>);

/// One tunnel: what its halves share.
#[derive(Debug, Default)]
struct Link(Mutex<LinkState>);

#[derive(Debug, Default)]
struct LinkState {
    /// A GET half holds the tunnel.
    get: bool,
    /// POST halves attached so far (each has its number).
    posts: u64,
    /// The number of the POST half being read now.
    post_active: Option<u64>,
    /// Decoded requests for the GET half's machine.
    inbox: Vec<u8>,
    /// The tunnel is over (its GET half ended, or a POST sent garbage).
    closed: bool,
    /// The GET half, waiting for the inbox.
    get_waker: Option<Waker>,
    /// The POST half, waiting for room in the inbox or its end.
    post_waker: Option<Waker>,
}

impl LinkState {
    fn paired(&self) -> bool {
        self.get && self.posts > 0
    }
}

/// Why a tunnel half was not taken.
#[derive(Debug)]
enum Refused {
    /// [`MAX_UNPAIRED`] halves wait already.
    Full,
    /// A GET half with this cookie is open already.
    Taken,
}

impl Tunnels {
    /// Tunnels open now, paired or waiting for their other half.
    pub(super) fn len(&self) -> usize {
        lock(&self.0).len()
    }

    /// Attaches a half to the tunnel of `cookie`, making it when there is
    /// none: the tunnel, and the POST half's number.
    fn attach(&self, cookie: &str, half: Half) -> Result<(Arc<Link>, u64), Refused> {
        let mut map = lock(&self.0);
        if let Some(link) = map.get(cookie) {
            let mut s = lock(&link.0);
            if s.closed {
                return Err(Refused::Taken);
            }
            let post = match half {
                Half::Get if s.get => return Err(Refused::Taken),
                Half::Get => {
                    s.get = true;
                    0
                }
                Half::Post => {
                    s.posts += 1;
                    s.post_active = Some(s.posts);
                    // The POST before this one (if any) ends.
                    if let Some(w) = s.post_waker.take() {
                        w.wake();
                    }
                    s.posts
                }
            };
            return Ok((link.clone(), post));
        }
        let unpaired = map.values().filter(|l| !lock(&l.0).paired()).count();
        if unpaired >= MAX_UNPAIRED {
            return Err(Refused::Full);
        }
        let mut s = LinkState::default();
        match half {
            Half::Get => s.get = true,
            Half::Post => {
                s.posts = 1;
                s.post_active = Some(1);
            }
        }
        let link = Arc::new(Link(Mutex::new(s)));
        map.insert(cookie.to_owned(), link.clone());
        Ok((link, if half == Half::Post { 1 } else { 0 }))
    }

    /// Removes `link` from the table if it is still there.
    fn remove(&self, cookie: &str, link: &Arc<Link>) {
        let mut map = lock(&self.0);
        if map.get(cookie).is_some_and(|l| Arc::ptr_eq(l, link)) {
            map.remove(cookie);
        }
    }
}

/// A half's place in its tunnel, left on drop: a GET half ends the tunnel;
/// a POST half ends its turn (and the tunnel, when no GET half holds it).
struct Attached {
    state: Arc<ServerState>,
    cookie: String,
    link: Arc<Link>,
    /// `None` for the GET half; the POST half's number.
    post: Option<u64>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        let over = {
            let mut s = lock(&self.link.0);
            match self.post {
                None => {
                    s.closed = true;
                    s.inbox = Vec::new();
                    if let Some(w) = s.post_waker.take() {
                        w.wake();
                    }
                    true
                }
                Some(n) => {
                    if s.post_active == Some(n) {
                        s.post_active = None;
                    }
                    !s.get
                }
            }
        };
        if over {
            self.state.tunnels.remove(&self.cookie, &self.link);
        }
    }
}

/// A new connection: its first bytes tell RTSP (the connection loop, as
/// always) from an HTTP request (a tunnel half). A connection that sends
/// nothing before its machine's idle deadline, ends, or fails goes to the
/// connection loop too, which closes it the usual way.
pub(super) async fn serve<C: ConnectionIo + 'static>(mut io: C, admitted: Admitted) {
    let state = admitted.state.clone();
    let until = Instant::now() + state.config.idle_timeout;
    let mut first = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match sniff(&first) {
            Sniff::Rtsp => return run_connection(io, admitted, &first).await,
            Sniff::Http => return serve_http(io, admitted, first).await,
            Sniff::NeedMore => {}
        }
        let read = unless_stopped(&state.stop, io.read_until(&mut buf, until)).await;
        match read.and_then(|w| w.read) {
            Some(Ok(n)) if n > 0 => first.extend_from_slice(buf.get(..n).unwrap_or_default()),
            _ => return run_connection(io, admitted, &first).await,
        }
    }
}

/// An HTTP request on the RTSP port: its head read (within
/// [`PAIRING_TIMEOUT`]), then a tunnel half served, or the request refused
/// with its status.
async fn serve_http<C: ConnectionIo + 'static>(mut io: C, admitted: Admitted, mut head: Vec<u8>) {
    let state = admitted.state.clone();
    let stall = state.options.write_stall;
    let until = Instant::now() + PAIRING_TIMEOUT;
    let mut buf = vec![0u8; 2048];
    let (request, len) = loop {
        match parse_head(&head) {
            Ok(Some(parsed)) => break parsed,
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, "HTTP request refused");
                let _ = io.write_all(&e.response(), stall).await;
                return io.close().await;
            }
        }
        let read = unless_stopped(&state.stop, io.read_until(&mut buf, until)).await;
        match read.and_then(|w| w.read) {
            Some(Ok(n)) if n > 0 => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
            _ => {
                tracing::debug!("HTTP request head not received in time; closed");
                return io.close().await;
            }
        }
    };
    let TunnelRequest { half, cookie, .. } = request;
    let (link, post) = match state.tunnels.attach(&cookie, half) {
        Ok(attached) => attached,
        Err(refused) => {
            let response = match refused {
                Refused::Full => {
                    error_response(503, "Service Unavailable", "too many tunnels wait for their other half")
                }
                Refused::Taken => error_response(409, "Conflict", "a tunnel with this x-sessioncookie is open already"),
            };
            tracing::debug!(?refused, ?half, "tunnel half refused");
            let _ = io.write_all(&response, stall).await;
            return io.close().await;
        }
    };
    let attached = Attached {
        state: state.clone(),
        cookie,
        link: link.clone(),
        post: (half == Half::Post).then_some(post),
    };
    tracing::debug!(?half, "tunnel half attached");
    match half {
        Half::Get => {
            if io.write_all(GET_RESPONSE, stall).await.is_err() {
                return io.close().await;
            }
            let io = TunnelIo {
                get: io,
                link,
                scratch: vec![0u8; 512],
                pair_by: until,
            };
            run_connection(io, admitted, &[]).await;
            drop(attached);
        }
        Half::Post => {
            let body = head.get(len..).unwrap_or_default().to_vec();
            drop(head);
            serve_post(io, &state, &link, post, body, until).await;
            drop((attached, admitted));
        }
    }
}

/// A POST half: its body decoded into the tunnel's inbox until it ends, a
/// later POST takes over, the tunnel closes, or (with no GET half by
/// `pair_by`) the pairing times out. Garbage is answered `400` and ends the
/// tunnel.
async fn serve_post<C: ConnectionIo>(
    mut io: C,
    state: &ServerState,
    link: &Link,
    post: u64,
    mut body: Vec<u8>,
    pair_by: Instant,
) {
    let mut decoder = Base64Decoder::new();
    let mut buf = vec![0u8; POST_READ];
    loop {
        if !body.is_empty() {
            let decoded = {
                let mut s = lock(&link.0);
                let decoded = decoder.decode(&body, &mut s.inbox);
                if decoded.is_err() {
                    s.closed = true;
                    s.inbox = Vec::new();
                }
                if let Some(w) = s.get_waker.take() {
                    w.wake();
                }
                decoded
            };
            if let Err(e) = decoded {
                tracing::debug!(error = %e, "tunnel POST body is not base64; tunnel closed");
                let response = error_response(400, "Bad Request", &format!("the tunnel's POST body: {e}"));
                let _ = io.write_all(&response, state.options.write_stall).await;
                return io.close().await;
            }
            body.clear();
        }
        // Room in the inbox, unless this POST's turn is over.
        let room = unless_stopped(
            &state.stop,
            poll_fn(|cx| {
                let mut s = lock(&link.0);
                if s.closed || s.post_active != Some(post) {
                    return Poll::Ready(false);
                }
                if s.inbox.len() < INBOX {
                    return Poll::Ready(true);
                }
                s.post_waker = Some(cx.waker().clone());
                Poll::Pending
            }),
        )
        .await;
        if room != Some(true) {
            break;
        }
        let paired = lock(&link.0).paired();
        let at = if paired {
            Instant::now() + PAIRING_TIMEOUT
        } else {
            pair_by
        };
        let woken = {
            let mut read = pin!(io.read_until(&mut buf, at));
            unless_stopped(
                &state.stop,
                poll_fn(|cx| {
                    {
                        let mut s = lock(&link.0);
                        if s.closed || s.post_active != Some(post) {
                            return Poll::Ready(None);
                        }
                        s.post_waker = Some(cx.waker().clone());
                    }
                    read.as_mut().poll(cx).map(Some)
                }),
            )
            .await
            .flatten()
        };
        let Some(woken) = woken else { break };
        match woken.read {
            Some(Ok(n)) if n > 0 => body.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Some(_) => break,
            None if !paired && !lock(&link.0).paired() => {
                tracing::debug!("tunnel POST without a GET half in time; closed");
                break;
            }
            None => {}
        }
    }
    io.close().await;
}

/// The GET half of a tunnel as its connection loop sees it: writes go to
/// the GET socket; reads are the tunnel's decoded requests, or the GET
/// socket's end (what the client sends on it besides is dropped), or the
/// end once no POST half came by `pair_by`.
struct TunnelIo<C> {
    get: C,
    link: Arc<Link>,
    scratch: Vec<u8>,
    pair_by: Instant,
}

/// What ended a [`TunnelIo`] wait.
enum TunnelWake {
    /// Decoded bytes were copied; this many.
    Inbox(usize),
    /// The tunnel closed.
    Closed,
    /// The GET socket's wait ended.
    Socket(Woken),
}

impl<C: ConnectionIo> ConnectionIo for TunnelIo<C> {
    type Udp = C::Udp;
    type Relay = C::Relay;

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.get.local_addr()
    }

    fn sleep_until(at: Instant) -> impl Future<Output = ()> + Send {
        C::sleep_until(at)
    }

    fn write_all(&mut self, bytes: &[u8], stall: Duration) -> impl Future<Output = Result<(), WriteError>> + Send {
        self.get.write_all(bytes, stall)
    }

    fn lookup(
        library: Arc<Library>,
        path: String,
    ) -> impl Future<Output = Result<Arc<MediaSource>, LookupError>> + Send {
        C::lookup(library, path)
    }

    async fn read_until(&mut self, buf: &mut [u8], at: Instant) -> Woken {
        let TunnelIo {
            get,
            link,
            scratch,
            pair_by,
        } = self;
        loop {
            let paired = lock(&link.0).paired();
            let deadline = if paired { at } else { at.min(*pair_by) };
            let mut read = pin!(get.read_until(scratch, deadline));
            let woken = poll_fn(|cx| {
                {
                    let mut s = lock(&link.0);
                    if !s.inbox.is_empty() {
                        let n = s.inbox.len().min(buf.len());
                        if let (Some(to), Some(from)) = (buf.get_mut(..n), s.inbox.get(..n)) {
                            to.copy_from_slice(from);
                        }
                        s.inbox.drain(..n);
                        if let Some(w) = s.post_waker.take() {
                            w.wake();
                        }
                        return Poll::Ready(TunnelWake::Inbox(n));
                    }
                    if s.closed {
                        return Poll::Ready(TunnelWake::Closed);
                    }
                    s.get_waker = Some(cx.waker().clone());
                }
                read.as_mut().poll(cx).map(TunnelWake::Socket)
            })
            .await;
            let now = Instant::now();
            match woken {
                TunnelWake::Inbox(n) => return Woken::new(now, Some(Ok(n)), false),
                TunnelWake::Closed => return Woken::new(now, Some(Ok(0)), false),
                TunnelWake::Socket(w) => {
                    if let Some(Ok(0) | Err(_)) = w.read {
                        return Woken::new(now, Some(Ok(0)), false);
                    }
                    if !w.deadline_passed {
                        continue;
                    }
                    if !lock(&link.0).paired() && now >= *pair_by {
                        tracing::debug!("tunnel GET without a POST half in time; closed");
                        return Woken::new(now, Some(Ok(0)), false);
                    }
                    if now >= at {
                        return Woken::new(now, None, true);
                    }
                }
            }
        }
    }

    fn close(self) -> impl Future<Output = ()> + Send {
        self.get.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_pair_by_cookie_and_unpaired_ones_are_bounded() {
        let t = Tunnels::default();
        let (get, _) = t.attach("a", Half::Get).unwrap();
        assert!(matches!(t.attach("a", Half::Get), Err(Refused::Taken)));
        let (post, n) = t.attach("a", Half::Post).unwrap();
        assert!(Arc::ptr_eq(&get, &post) && n == 1);
        assert!(lock(&get.0).paired());
        // A later POST takes over.
        let (_, n) = t.attach("a", Half::Post).unwrap();
        assert_eq!((n, lock(&get.0).post_active), (2, Some(2)));
        // The paired tunnel does not count against the unpaired limit.
        for i in 0..MAX_UNPAIRED {
            t.attach(&format!("u{i}"), if i % 2 == 0 { Half::Get } else { Half::Post })
                .unwrap();
        }
        assert!(matches!(t.attach("one-more", Half::Get), Err(Refused::Full)));
        // The other half of a waiting one still pairs.
        assert!(t.attach("u0", Half::Post).is_ok());
        assert!(t.attach("one-more", Half::Get).is_ok());
        assert_eq!(t.len(), MAX_UNPAIRED + 2);
        t.remove("a", &get);
        assert_eq!(t.len(), MAX_UNPAIRED + 1);
    }
}
