//! [`Netlink`]: requests to the kernel's rtnetlink (rtnetlink(7)): `RTM_GETLINK` for one
//! interface, `RTM_SETLINK` to change its MTU, address or flags, each answered before the call
//! returns.

use burst_net::MacAddr;
use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::{Link, NetifError};

/// Longest interface name (`IFNAMSIZ` less the NUL).
const IFNAMSIZ: usize = 15;

/// A `NETLINK_ROUTE` socket of this thread's network namespace.
pub struct Netlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink").field("seq", &self.seq).finish()
    }
}

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Netlink, NetifError> {
        let sock_err = |op| move |source| NetifError::Socket { op, source };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(sock_err("opening a NETLINK_ROUTE socket"))?;
        socket.bind_auto().map_err(sock_err("binding the netlink socket"))?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(sock_err("connecting the netlink socket"))?;
        Ok(Netlink { socket, seq: 0, buf: vec![0; 64 * 1024] })
    }

    /// The interface called `name`.
    pub fn link_by_name(&mut self, name: &str) -> Result<Link, NetifError> {
        if name.is_empty() || name.len() > IFNAMSIZ || name.contains(['/', ':']) || name.contains(char::is_whitespace) {
            return Err(NetifError::BadName { name: name.to_string() });
        }
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.get(msg) {
            Err(NetifError::Refused { source, .. }) if source.raw_os_error() == Some(libc::ENODEV) => {
                Err(NetifError::NoSuchInterface { name: name.to_string() })
            }
            other => other,
        }
    }

    /// The interface with index `ifindex`.
    pub fn link(&mut self, ifindex: u32) -> Result<Link, NetifError> {
        let mut msg = LinkMessage::default();
        msg.header.index = ifindex;
        self.get(msg)
    }

    fn get(&mut self, msg: LinkMessage) -> Result<Link, NetifError> {
        let ifindex = msg.header.index;
        let answer = self.request(RouteNetlinkMessage::GetLink(msg), NLM_F_REQUEST, "get link", ifindex)?;
        match answer {
            Some(RouteNetlinkMessage::NewLink(link)) => Ok(Link::from_message(&link)),
            other => Err(NetifError::Answer { op: "get link", what: format!("{other:?}") }),
        }
    }

    /// Sets the MTU of interface `ifindex`.
    pub fn set_mtu(&mut self, ifindex: u32, mtu: u32) -> Result<(), NetifError> {
        self.set(
            ifindex,
            vec![LinkAttribute::Mtu(mtu)],
            LinkFlags::empty(),
            LinkFlags::empty(),
            &format!("set MTU {mtu}"),
        )
    }

    /// Sets the hardware address of interface `ifindex`.
    pub fn set_mac(&mut self, ifindex: u32, mac: MacAddr) -> Result<(), NetifError> {
        let attrs = vec![LinkAttribute::Address(mac.bytes().to_vec())];
        self.set(ifindex, attrs, LinkFlags::empty(), LinkFlags::empty(), &format!("set address {mac}"))
    }

    /// Sets the flags in `mask` of interface `ifindex` to their values in `flags` (`IFF_UP`,
    /// `IFF_PROMISC`, `IFF_ALLMULTI`).
    pub fn set_flags(&mut self, ifindex: u32, flags: LinkFlags, mask: LinkFlags) -> Result<(), NetifError> {
        self.set(ifindex, Vec::new(), flags, mask, &format!("set flags {flags:?} of {mask:?}"))
    }

    fn set(
        &mut self,
        ifindex: u32,
        attributes: Vec<LinkAttribute>,
        flags: LinkFlags,
        mask: LinkFlags,
        op: &str,
    ) -> Result<(), NetifError> {
        let mut msg = LinkMessage::default();
        msg.header.index = ifindex;
        msg.header.flags = flags;
        msg.header.change_mask = mask;
        msg.attributes = attributes;
        self.request(RouteNetlinkMessage::SetLink(msg), NLM_F_REQUEST | NLM_F_ACK, op, ifindex).map(|_| ())
    }

    /// Sends `payload` and reads until the kernel answers it: its message, or `None` for an
    /// acknowledgement.
    fn request(
        &mut self,
        payload: RouteNetlinkMessage,
        flags: u16,
        op: &str,
        ifindex: u32,
    ) -> Result<Option<RouteNetlinkMessage>, NetifError> {
        self.seq = self.seq.wrapping_add(1);
        let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(payload));
        packet.header.flags = flags;
        packet.header.sequence_number = self.seq;
        packet.finalize();
        let mut out = vec![0; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket.send(&out, 0).map_err(|source| NetifError::Socket { op: "sending a netlink request", source })?;
        loop {
            let n = self
                .socket
                .recv(&mut &mut self.buf[..], 0)
                .map_err(|source| NetifError::Socket { op: "reading the kernel's answer", source })?;
            let mut at = 0;
            while at < n {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[at..n])
                    .map_err(|e| NetifError::Answer { op: "parsing", what: e.to_string() })?;
                let len = msg.header.length as usize;
                if msg.header.sequence_number == self.seq {
                    match msg.payload {
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                None => Ok(None),
                                Some(code) => Err(NetifError::Refused {
                                    op: op.to_string(),
                                    ifindex,
                                    source: std::io::Error::from_raw_os_error(-code.get()),
                                }),
                            }
                        }
                        NetlinkPayload::InnerMessage(m) => return Ok(Some(m)),
                        NetlinkPayload::Done(_) => return Ok(None),
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                at += len.next_multiple_of(4);
            }
        }
    }
}
