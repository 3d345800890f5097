//! Why a buffer is not the header a view expects. Every `new_checked` and `check_len` returns
//! one of these; past that point nothing a view does can fail.

use std::fmt;

/// The header a view was checking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Header {
    /// Ethernet II: addresses and EtherType (IEEE 802.3 clause 3.2).
    Ethernet,
    /// An 802.1Q/802.1ad tag after the source address (IEEE 802.1Q clause 9).
    Vlan,
    /// IPv4 (RFC 791 section 3.1).
    Ipv4,
    /// IPv6's fixed header (RFC 8200 section 3).
    Ipv6,
    /// TCP (RFC 9293 section 3.1).
    Tcp,
    /// UDP (RFC 768).
    Udp,
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Header::Ethernet => "Ethernet",
            Header::Vlan => "VLAN tag",
            Header::Ipv4 => "IPv4",
            Header::Ipv6 => "IPv6",
            Header::Tcp => "TCP",
            Header::Udp => "UDP",
        })
    }
}

/// Why a view refused a buffer. Received frames are untrusted input: each of these means "drop
/// (and count) the packet", never a bug in the caller; when the caller built the buffer itself,
/// the message says which field to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The buffer ends before the header, or before a length the header declares, does.
    #[error("truncated {header}: {need} bytes needed, the buffer holds {have}; drop the packet (or pass the view the whole frame)")]
    Truncated { header: Header, need: usize, have: usize },
    /// The version nibble is not the view's (4 for IPv4, 6 for IPv6).
    #[error("{header} version field is {found}, not {want}: check the EtherType or next-header field that led here")]
    Version { header: Header, found: u8, want: u8 },
    /// IPv4's IHL is below 5 words, the fixed header (RFC 791 section 3.1).
    #[error("IPv4 IHL is {ihl} words, below the fixed header's 5: malformed header, drop the packet")]
    Ipv4HeaderLen { ihl: u8 },
    /// IPv4's total length does not cover its own header.
    #[error(
        "IPv4 total length {total_len} is shorter than the {header_len}-byte header: malformed header, drop the packet"
    )]
    Ipv4TotalLen { total_len: u16, header_len: usize },
    /// TCP's data offset is below 5 words, the fixed header (RFC 9293 section 3.1).
    #[error("TCP data offset is {offset} words, below the fixed header's 5: malformed segment, drop it")]
    TcpDataOffset { offset: u8 },
    /// UDP's length does not cover its own 8-byte header (RFC 768); 0, the IPv6 jumbogram's
    /// length (RFC 2675 section 4), is refused too.
    #[error("UDP length {length} is shorter than the 8-byte header: malformed datagram, drop it")]
    UdpLen { length: u16 },
    /// A TCI was to be set on a frame that has no VLAN tag to hold it.
    #[error("the frame has no VLAN tag, so it has no TCI to set: tag the frame first (insert the 4 bytes after the source address)")]
    Untagged,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_header_and_what_to_do() {
        let e = Error::Truncated { header: Header::Ipv4, need: 20, have: 7 };
        assert_eq!(
            e.to_string(),
            "truncated IPv4: 20 bytes needed, the buffer holds 7; drop the packet (or pass the view the whole frame)"
        );
        let e = Error::Version { header: Header::Ipv6, found: 4, want: 6 };
        assert_eq!(
            e.to_string(),
            "IPv6 version field is 4, not 6: check the EtherType or next-header field that led here"
        );
        assert!(Error::Untagged.to_string().contains("tag the frame first"));
    }
}
