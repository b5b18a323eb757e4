//! What the client and the server machines share about RTP over UDP: how a
//! machine names one of its UDP sockets to the runtime ([`UdpSocketId`]) and
//! the range of local ports pairs are taken from ([`PortRange`]). How each
//! machine asks for a pair differs (the client's `client::UdpRequest` also
//! joins multicast groups, the server's `server::UdpRequest` binds on the
//! connection's address), so those stay with each machine.

use std::fmt;

/// One UDP socket of a session: the RTP (`rtcp: false`) or the RTCP socket
/// of pair `pair` (a pair per track, named by the machine that asked for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UdpSocketId {
    /// The pair's number, chosen by the machine that asked for it.
    pub pair: u16,
    /// `true` for the pair's RTCP socket, `false` for its RTP socket.
    pub rtcp: bool,
}

impl UdpSocketId {
    /// The RTP socket of `pair`.
    pub fn rtp(pair: u16) -> UdpSocketId {
        UdpSocketId { pair, rtcp: false }
    }

    /// The RTCP socket of `pair`.
    pub fn rtcp(pair: u16) -> UdpSocketId {
        UdpSocketId { pair, rtcp: true }
    }

    /// A dense index for a runtime's table: `2 × pair + rtcp`.
    ///
    /// ```
    /// use rtsp_toolkit_core::udp::UdpSocketId;
    /// assert_eq!(UdpSocketId::rtcp(1).index(), 3);
    /// ```
    pub fn index(self) -> usize {
        2 * usize::from(self.pair) + usize::from(self.rtcp)
    }
}

/// A range of local UDP ports, both ends included, from which RTP/RTCP
/// pairs are taken: an even RTP port `p` and `p + 1`, both in range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    first: u16,
    last: u16,
}

impl PortRange {
    /// `first..=last`, or why it cannot be one: it must hold an even/odd
    /// pair, and port 0 is not a port.
    ///
    /// ```
    /// use rtsp_toolkit_core::udp::PortRange;
    /// assert!(PortRange::new(5000, 5999).is_ok());
    /// assert!(PortRange::new(5001, 5002).is_err()); // no even port with its odd neighbour
    /// assert_eq!("6000-6099".parse::<PortRange>().unwrap().len(), 50);
    /// ```
    pub fn new(first: u16, last: u16) -> Result<PortRange, String> {
        let range = PortRange { first, last };
        if first == 0 || first > last || range.is_empty() {
            return Err(format!("port range {first}-{last} holds no even/odd port pair above 0"));
        }
        Ok(range)
    }

    /// [`PortRange::new`] for constants: `None` when the range holds no pair.
    pub(crate) const fn new_const(first: u16, last: u16) -> Option<PortRange> {
        if first == 0 || first > last || first == u16::MAX {
            return None;
        }
        let rtp = first + first % 2;
        if rtp >= last {
            return None;
        }
        Some(PortRange { first, last })
    }

    /// Parses `FIRST-LAST` (e.g. `30000-30999`).
    pub fn parse(s: &str) -> Result<PortRange, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("bad port range {s:?}: expected FIRST-LAST, e.g. 30000-30999"))?;
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .map_err(|e| format!("bad port {:?} in {s:?}: {e}", p.trim()))
        };
        PortRange::new(port(a)?, port(b)?)
    }

    /// The first port.
    pub fn first(&self) -> u16 {
        self.first
    }

    /// The last port.
    pub fn last(&self) -> u16 {
        self.last
    }

    /// Every RTP port of the range, ascending: even, with the odd RTCP
    /// port above it in range too.
    pub fn pairs(&self) -> impl Iterator<Item = u16> + Clone {
        let start = self.first.saturating_add(self.first % 2).max(2);
        (u32::from(start)..u32::from(self.last)).step_by(2).map(|p| p as u16)
    }

    /// The RTP port of pair `i` (`i < len()`).
    pub fn pair(&self, i: usize) -> Option<u16> {
        self.pairs().nth(i)
    }

    /// How many pairs the range holds.
    pub fn len(&self) -> usize {
        let start = u32::from(self.first.saturating_add(self.first % 2).max(2));
        (u32::from(self.last).saturating_sub(start)).div_ceil(2) as usize
    }

    /// Whether it holds no pair (never, for a range from [`PortRange::new`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::str::FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<PortRange, String> {
        PortRange::parse(s)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_even_odd_and_inside() {
        assert_eq!(PortRange::parse("30000-30999").unwrap().len(), 500);
        for (s, want) in [
            ("30001-30004", vec![30002]),
            ("30000-30005", vec![30000, 30002, 30004]),
            ("65534-65535", vec![65534]),
            (" 1 - 3 ", vec![2]),
        ] {
            let r = PortRange::parse(s).unwrap();
            assert_eq!(r.pairs().collect::<Vec<_>>(), want, "{s}");
            assert_eq!(r.len(), want.len(), "{s}");
            assert_eq!(r.pair(0), Some(want[0]));
            assert_eq!(r.pair(want.len()), None);
        }
        for bad in [
            "30001-30001",
            "30001-30002",
            "30000",
            "0-1",
            "5-3",
            "5-4",
            "x",
            "x-9",
            "1-",
            "-5",
            "1-70000",
            "65535-65535",
        ] {
            assert!(PortRange::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(PortRange::new(30000, 30001).unwrap().to_string(), "30000-30001");
    }
}
