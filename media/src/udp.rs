//! Binding the server's RTP/RTCP port pairs: an even RTP port and the odd
//! RTCP port above it (RFC 3550 §11), on one local address, within a range
//! or wherever the OS has room. Blocking-free and runtime-free: the sockets
//! come back as non-blocking `std` sockets, for each runtime to register
//! with its reactor (`serving::Datagrams::from_std`).

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};

use rtsp_toolkit_core::server::PortRange;

/// How many OS-chosen ports are tried for an even/odd pair before giving up.
const OS_ATTEMPTS: usize = 64;

/// Where the next search of a range starts, so that sessions opened one
/// after another do not all try the same first pairs (the previous
/// session's ports are taken) and a freed pair is not reused at once.
static NEXT_IN_RANGE: AtomicUsize = AtomicUsize::new(0);

/// A bound pair: RTP socket, RTCP socket, and the RTP port (even; RTCP is
/// the next one).
#[derive(Debug)]
pub struct Pair {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    pub port: u16,
}

/// Binds an even/odd pair on `ip`: within `range` (every pair tried once,
/// from a rotating start), or, for `None`, on ports the OS picks (an even
/// one whose odd neighbour is free; up to 64 tries). Both sockets are
/// non-blocking. `AddrInUse` when no pair was free.
pub fn bind_pair(ip: IpAddr, range: Option<PortRange>) -> io::Result<Pair> {
    match range {
        Some(range) => {
            let n = range.len();
            let start = NEXT_IN_RANGE.fetch_add(1, Ordering::Relaxed) % n.max(1);
            for port in range.pairs().cycle().skip(start).take(n) {
                if let Some(pair) = try_pair(ip, port)? {
                    return Ok(pair);
                }
            }
            Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("no free UDP port pair in {range}"),
            ))
        }
        None => {
            for _ in 0..OS_ATTEMPTS {
                let probe = UdpSocket::bind(SocketAddr::new(ip, 0))?;
                let port = probe.local_addr()?.port();
                if port % 2 == 0 && port < u16::MAX {
                    // Keep the RTP socket the OS gave; bind the odd one.
                    if let Some(rtcp) = bind_free(ip, port + 1)? {
                        return finish(probe, rtcp, port);
                    }
                } else if port > 2 {
                    // Odd: the even port below may be free.
                    drop(probe);
                    if let Some(pair) = try_pair(ip, port - 1)? {
                        return Ok(pair);
                    }
                }
            }
            Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "the OS gave no even/odd UDP port pair",
            ))
        }
    }
}

/// The pair at `port` (even), or `None` when either port is taken.
fn try_pair(ip: IpAddr, port: u16) -> io::Result<Option<Pair>> {
    let Some(rtp) = bind_free(ip, port)? else {
        return Ok(None);
    };
    let Some(rtcp) = bind_free(ip, port + 1)? else {
        return Ok(None);
    };
    finish(rtp, rtcp, port).map(Some)
}

/// `ip:port` bound, or `None` when the port is taken (other errors are
/// errors: no pair would bind).
fn bind_free(ip: IpAddr, port: u16) -> io::Result<Option<UdpSocket>> {
    match UdpSocket::bind(SocketAddr::new(ip, port)) {
        Ok(s) => Ok(Some(s)),
        Err(e) if matches!(e.kind(), io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied) => Ok(None),
        Err(e) => Err(e),
    }
}

fn finish(rtp: UdpSocket, rtcp: UdpSocket, port: u16) -> io::Result<Pair> {
    rtp.set_nonblocking(true)?;
    rtcp.set_nonblocking(true)?;
    Ok(Pair { rtp, rtcp, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn os_chosen_pairs_are_even_and_odd() {
        let pairs: Vec<Pair> = (0..8).map(|_| bind_pair(LOOPBACK, None).unwrap()).collect();
        for p in &pairs {
            assert_eq!(p.port % 2, 0);
            assert_eq!(p.rtp.local_addr().unwrap().port(), p.port);
            assert_eq!(p.rtcp.local_addr().unwrap().port(), p.port + 1);
        }
    }

    #[test]
    fn a_range_is_used_up_then_refused() {
        // Find a free stretch of 6 ports (3 pairs) first.
        let probe = bind_pair(LOOPBACK, None).unwrap();
        let base = probe.port;
        drop(probe);
        let Some(range) = PortRange::new(base, base + 5) else {
            return;
        };
        let mut got = Vec::new();
        while let Ok(p) = bind_pair(LOOPBACK, Some(range)) {
            assert!((base..=base + 4).contains(&p.port) && p.port % 2 == 0);
            got.push(p);
            assert!(got.len() <= 3);
        }
        // Another process may hold some; never more than the range has.
        let mut ports: Vec<u16> = got.iter().map(|p| p.port).collect();
        ports.dedup();
        assert_eq!(ports.len(), got.len());
        let e = bind_pair(LOOPBACK, Some(range)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    }
}
