//! The probe packet: parse and emit without I/O.
//!
//! Every field is big-endian (network order). The header is [`HEADER_LEN`] bytes; a probe of a
//! larger size carries zero padding after it, and the reply is exactly as long as the request.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      magic "PLUE" (0x504C5545)                |  0
//! +---------------+---------------+-------------------------------+
//! |  version (1)  |     flags     |     reserved (zero)           |  4
//! +---------------+---------------+-------------------------------+
//! |                            flow id                            |  8
//! +---------------------------------------------------------------+
//! |                       reserved (zero)                         | 12
//! +---------------------------------------------------------------+
//! |                    sequence number (64 bits)                  | 16
//! +---------------------------------------------------------------+
//! |             client send timestamp, ns (64 bits)               | 24
//! +---------------------------------------------------------------+
//! |    server receive timestamp, ns (64 bits; 0 in a request)     | 32
//! +---------------------------------------------------------------+
//! |  server's count of distinct packets received on this flow (64)| 40
//! +---------------------------------------------------------------+
//! |  received window: bit i = sequence (seq - 1 - i) received (64)| 48
//! +---------------------------------------------------------------+
//! |                      padding (zero) ...                       | 56
//! ```
//!
//! Flags: bit 0 `REPLY` (set by the server), bit 1 `STATS` (a request for the flow's counters
//! only: the server does not count it as a probe), bit 2 `NO_STATE` (the server keeps no state
//! for this flow right now, so the count and window are zero and mean nothing).

use thiserror::Error;

/// The four bytes every probe packet starts with: "PLUE", protolab UDP echo.
pub const MAGIC: [u8; 4] = *b"PLUE";
/// The version this code speaks.
pub const VERSION: u8 = 1;
/// The header's length: the smallest valid probe.
pub const HEADER_LEN: usize = 56;
/// The largest probe: what fits in one UDP datagram over IPv4.
pub const MAX_LEN: usize = 65_507;

/// Set by the server in a reply.
pub const FLAG_REPLY: u8 = 0b001;
/// A request for the flow's counters, not a probe.
pub const FLAG_STATS: u8 = 0b010;
/// The server holds no state for this flow: count and window are meaningless.
pub const FLAG_NO_STATE: u8 = 0b100;
const KNOWN_FLAGS: u8 = FLAG_REPLY | FLAG_STATS | FLAG_NO_STATE;

/// Why a datagram is not a probe packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum WireError {
    /// Shorter than the header.
    #[error("datagram of {0} bytes is shorter than the {HEADER_LEN}-byte probe header")]
    Truncated(usize),
    /// Longer than any probe may be.
    #[error("datagram of {0} bytes is longer than the {MAX_LEN}-byte maximum")]
    Oversized(usize),
    /// Not our magic number.
    #[error("no PLUE magic: not a probe packet")]
    BadMagic,
    /// A version this code does not speak.
    #[error("probe version {0} is not supported (this side speaks version {VERSION})")]
    BadVersion(u8),
    /// Flag bits that no version defines.
    #[error("unknown flag bits {0:#04x}")]
    BadFlags(u8),
}

/// A validated probe packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProbePacket {
    pub flags: u8,
    pub flow: u32,
    pub seq: u64,
    /// When the client sent it, in nanoseconds of the client's own clock.
    pub client_send_ns: u64,
    /// When the server received it, in nanoseconds of the server's own clock.
    pub server_recv_ns: u64,
    /// Distinct probes of this flow the server has received, this one included.
    pub server_count: u64,
    /// Bit i set: the server has received sequence number `seq - 1 - i`.
    pub window: u64,
}

impl ProbePacket {
    /// Parses the header of `bytes`, checking size, magic, version and flags.
    ///
    /// # Errors
    /// The first problem found; the datagram should be counted and dropped.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_LEN {
            return Err(WireError::Oversized(bytes.len()));
        }
        if bytes.len() < HEADER_LEN {
            // A short datagram without our magic is garbage rather than a truncated probe.
            if bytes.len() >= 4 && bytes[..4] != MAGIC {
                return Err(WireError::BadMagic);
            }
            return Err(WireError::Truncated(bytes.len()));
        }
        if bytes[..4] != MAGIC {
            return Err(WireError::BadMagic);
        }
        if bytes[4] != VERSION {
            return Err(WireError::BadVersion(bytes[4]));
        }
        let flags = bytes[5];
        if flags & !KNOWN_FLAGS != 0 {
            return Err(WireError::BadFlags(flags));
        }
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let mut flow = [0u8; 4];
        flow.copy_from_slice(&bytes[8..12]);
        Ok(Self {
            flags,
            flow: u32::from_be_bytes(flow),
            seq: u64_at(16),
            client_send_ns: u64_at(24),
            server_recv_ns: u64_at(32),
            server_count: u64_at(40),
            window: u64_at(48),
        })
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes of `buf`, leaving the rest as is.
    ///
    /// # Panics
    /// If `buf` is shorter than the header (a caller's bug, never network input).
    pub fn emit(&self, buf: &mut [u8]) {
        let buf = &mut buf[..HEADER_LEN];
        buf[..4].copy_from_slice(&MAGIC);
        buf[4] = VERSION;
        buf[5] = self.flags;
        buf[6..8].fill(0);
        buf[8..12].copy_from_slice(&self.flow.to_be_bytes());
        buf[12..16].fill(0);
        buf[16..24].copy_from_slice(&self.seq.to_be_bytes());
        buf[24..32].copy_from_slice(&self.client_send_ns.to_be_bytes());
        buf[32..40].copy_from_slice(&self.server_recv_ns.to_be_bytes());
        buf[40..48].copy_from_slice(&self.server_count.to_be_bytes());
        buf[48..56].copy_from_slice(&self.window.to_be_bytes());
    }

    /// A whole datagram of `size` bytes (at least the header), zero-padded.
    pub fn to_vec(&self, size: usize) -> Vec<u8> {
        let mut v = vec![0u8; size.max(HEADER_LEN)];
        self.emit(&mut v);
        v
    }

    pub fn is_reply(&self) -> bool {
        self.flags & FLAG_REPLY != 0
    }

    pub fn is_stats(&self) -> bool {
        self.flags & FLAG_STATS != 0
    }

    pub fn has_state(&self) -> bool {
        self.flags & FLAG_NO_STATE == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: [u8; 64] = [
        b'P', b'L', b'U', b'E', 1, 0, 0, 0, // magic, version, flags, reserved
        0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, // flow, reserved
        0, 0, 0, 0, 0, 0, 0x01, 0x00, // seq 256
        0, 0, 0, 0, 0x3b, 0x9a, 0xca, 0x00, // sent at 1 s
        0, 0, 0, 0, 0, 0, 0, 0, // server fields empty in a request
        0, 0, 0, 0, 0, 0, 0, 0, //
        0, 0, 0, 0, 0, 0, 0, 0, //
        0, 0, 0, 0, 0, 0, 0, 0, // padding to 64 bytes
    ];

    #[test]
    fn request_round_trip() {
        let p = ProbePacket::parse(&REQUEST).unwrap();
        assert_eq!(
            p,
            ProbePacket {
                flags: 0,
                flow: 0xdead_beef,
                seq: 256,
                client_send_ns: 1_000_000_000,
                ..ProbePacket::default()
            }
        );
        assert_eq!(p.to_vec(64), REQUEST.to_vec());
        assert!(!p.is_reply() && !p.is_stats() && p.has_state());
    }

    #[test]
    fn reply_fields() {
        let mut bytes = REQUEST;
        bytes[5] = FLAG_REPLY;
        bytes[32..40].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, 7]);
        bytes[40..48].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, 250]);
        bytes[48..56].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0x01]);
        let p = ProbePacket::parse(&bytes).unwrap();
        assert!(p.is_reply());
        assert_eq!(p.server_recv_ns, 7);
        assert_eq!(p.server_count, 250);
        assert_eq!(p.window, 0x8000_0000_0000_0001);
        let mut out = [0xffu8; 64];
        p.emit(&mut out);
        assert_eq!(out[..HEADER_LEN], bytes[..HEADER_LEN]);
        assert_eq!(
            out[HEADER_LEN..],
            [0xff; 8],
            "emit leaves the padding alone"
        );
    }

    #[test]
    fn bad_datagrams() {
        assert_eq!(ProbePacket::parse(b""), Err(WireError::Truncated(0)));
        assert_eq!(
            ProbePacket::parse(&REQUEST[..55]),
            Err(WireError::Truncated(55))
        );
        assert_eq!(
            ProbePacket::parse(b"hello world\n"),
            Err(WireError::BadMagic)
        );
        let mut bytes = REQUEST;
        bytes[0] = b'X';
        assert_eq!(ProbePacket::parse(&bytes), Err(WireError::BadMagic));
        let mut bytes = REQUEST;
        bytes[4] = 2;
        assert_eq!(ProbePacket::parse(&bytes), Err(WireError::BadVersion(2)));
        let mut bytes = REQUEST;
        bytes[5] = 0x80;
        assert_eq!(ProbePacket::parse(&bytes), Err(WireError::BadFlags(0x80)));
        let big = vec![0u8; MAX_LEN + 1];
        assert_eq!(
            ProbePacket::parse(&big),
            Err(WireError::Oversized(MAX_LEN + 1))
        );
    }
}
