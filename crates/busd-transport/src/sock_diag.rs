//! Who owns a loopback TCP connection, asked of the kernel over
//! `NETLINK_SOCK_DIAG`.
//!
//! TCP has no `SO_PEERCRED`, but both ends of a loopback connection are
//! sockets on this machine, and the kernel describes any one of them, owner
//! included, given its addresses: the peer's socket is the one whose local
//! address is the peer's and whose remote address is ours. A
//! `SOCK_DIAG_BY_FAMILY` request naming that 4-tuple (not a dump) is
//! answered from the kernel's connection hash, whatever the number of
//! sockets on the machine.
//!
//! Where netlink cannot answer (a kernel without `inet_diag`, a sandbox that
//! refuses netlink sockets) the lookup falls back to reading `/proc/net/tcp`
//! (see `proc_net`), which costs a scan of every socket on the machine.

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};

use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{
    AF_INET, AF_INET6, IPPROTO_TCP, TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2,
};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_sys::Socket;
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use tracing::debug;

use crate::proc_net;

/// Set once the kernel has answered a request: from then on, "no such
/// socket" (`ENOENT`) means just that. Before, it may also mean that the
/// kernel lacks TCP diagnostics, which answers `ENOENT` too.
static ANSWERED: AtomicBool = AtomicBool::new(false);

/// Set once the fallback to `/proc/net/tcp` has been logged.
static FELL_BACK: AtomicBool = AtomicBool::new(false);

/// "Any cookie": the kernel otherwise checks it against the socket's.
const NO_COOKIE: [u8; 8] = [0xff; 8];

/// Room for one answer: a 72-byte `inet_diag_msg` and a few attributes
/// behind its 16-byte header.
const ANSWER_BUF: usize = 8192;

/// The uid owning the other end of our loopback connection `local` ↔ `peer`,
/// or `None` (logged at debug) when the kernel does not say.
pub(crate) async fn peer_uid(local: SocketAddr, peer: SocketAddr) -> Option<u32> {
    let err = match query(local, peer) {
        Ok(uid) => {
            ANSWERED.store(true, Ordering::Relaxed);
            if uid.is_none() {
                debug!(%local, %peer, "the peer's socket has no owner (closing); uid unknown");
            }
            return uid;
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound && ANSWERED.load(Ordering::Relaxed) => {
            debug!(%local, %peer, "the peer's socket is gone; uid unknown");
            return None;
        }
        Err(err) => err,
    };
    if !FELL_BACK.swap(true, Ordering::Relaxed) {
        debug!(cause = %err, "NETLINK_SOCK_DIAG cannot answer; reading /proc/net/tcp instead");
    }
    proc_net::peer_uid(local, peer).await
}

/// Asks the kernel for the owner of the peer's socket. `Ok(None)`: the
/// socket is not one a process owns (closing, or a listener that took the
/// tuple); `NotFound`: no such socket, or no TCP diagnostics in this kernel.
///
/// Runs on the caller's thread without blocking it: the kernel answers a
/// sock_diag request while `send` runs, so the answer is queued by the time
/// the non-blocking `recv` looks (were it not, `WouldBlock` would send the
/// caller to the fallback rather than stall a runtime thread).
fn query(local: SocketAddr, peer: SocketAddr) -> io::Result<Option<u32>> {
    let socket = Socket::new(NETLINK_SOCK_DIAG)?;
    socket.set_non_blocking(true)?;
    let request = request(local, peer);
    socket.send_to(&request, &netlink_sys::SocketAddr::new(0, 0), 0)?;
    let mut answer = [0u8; ANSWER_BUF];
    let len = socket.recv(&mut &mut answer[..], 0)?;
    owner(&answer[..len.min(ANSWER_BUF)], local, peer)
}

/// A `SOCK_DIAG_BY_FAMILY` request for the socket whose local address is
/// `peer` and whose remote address is `local`.
///
/// Both IPv4 (or v4-mapped) addresses: an `AF_INET` request, which finds
/// IPv4 sockets and IPv6 sockets using v4-mapped addresses alike (both sit
/// in the IPv4 hash). Otherwise `AF_INET6`.
fn request(local: SocketAddr, peer: SocketAddr) -> Vec<u8> {
    let (family, source, destination) = match (peer.ip().to_canonical(), local.ip().to_canonical())
    {
        (source @ IpAddr::V4(_), destination @ IpAddr::V4(_)) => (AF_INET, source, destination),
        (source, destination) => (
            AF_INET6,
            IpAddr::V6(as_v6(source)),
            IpAddr::V6(as_v6(destination)),
        ),
    };
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST;
    let mut message = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::ESTABLISHED | StateFlags::FIN_WAIT1 | StateFlags::FIN_WAIT2,
            // Ports are given in host order; the crate writes them big-endian.
            socket_id: SocketId {
                source_port: peer.port(),
                destination_port: local.port(),
                source_address: source,
                destination_address: destination,
                interface_id: 0,
                cookie: NO_COOKIE,
            },
        })
        .into(),
    );
    message.finalize();
    let mut buf = vec![0; message.buffer_len()];
    message.serialize(&mut buf);
    buf
}

/// An IPv6 address for `ip`, v4-mapped if it is IPv4.
fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Reads the kernel's answer: the owner's uid if it describes the peer's
/// socket in a state that still has an owner.
///
/// The kernel looks the tuple up among connections, then among listeners,
/// and answers whatever it finds; a `TIME_WAIT` socket reports uid 0. Hence
/// the checks of addresses and state (the same states `proc_net` accepts).
fn owner(answer: &[u8], local: SocketAddr, peer: SocketAddr) -> io::Result<Option<u32>> {
    let message = NetlinkMessage::<SockDiagMessage>::deserialize(answer)
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
    match message.payload {
        NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
            let header = &response.header;
            let id = &header.socket_id;
            let is_peer = same_addr(id.source_address, id.source_port, peer)
                && same_addr(id.destination_address, id.destination_port, local);
            let owned = matches!(
                header.state,
                TCP_ESTABLISHED | TCP_FIN_WAIT1 | TCP_FIN_WAIT2
            );
            Ok((is_peer && owned).then_some(header.uid))
        }
        NetlinkPayload::Error(err) if err.code.is_some() => Err(err.to_io()),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected sock_diag answer: {other:?}"),
        )),
    }
}

/// Whether `ip`:`port` is `addr`, a v4-mapped address being its IPv4 one.
fn same_addr(ip: IpAddr, port: u16, addr: SocketAddr) -> bool {
    port == addr.port() && ip.to_canonical() == addr.ip().to_canonical()
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use netlink_packet_sock_diag::constants::TCP_TIME_WAIT;
    use netlink_packet_sock_diag::inet::{InetResponse, InetResponseHeader};

    use super::*;

    fn me() -> u32 {
        rustix::process::getuid().as_raw()
    }

    /// A connected pair on `ip`: (the server's accepted socket's local
    /// address, the client's address), plus the sockets to keep them open.
    fn connected(ip: &str) -> Option<(SocketAddr, SocketAddr, TcpStream, TcpStream)> {
        let listener = TcpListener::bind((ip, 0)).ok()?;
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        Some((server.local_addr().unwrap(), peer, server, client))
    }

    #[test]
    fn netlink_finds_the_owner_of_an_ipv4_client() {
        let (local, peer, _server, _client) = connected("127.0.0.1").unwrap();
        assert_eq!(query(local, peer).unwrap(), Some(me()));
    }

    #[test]
    fn netlink_finds_the_owner_of_an_ipv6_client() {
        // No IPv6 loopback here: nothing to test.
        let Some((local, peer, _server, _client)) = connected("::1") else {
            return;
        };
        assert_eq!(query(local, peer).unwrap(), Some(me()));
    }

    #[test]
    fn netlink_finds_v4_mapped_clients_either_way() {
        let Some((local, peer, _server, _client)) = connected("::ffff:127.0.0.1") else {
            return;
        };
        assert_eq!(query(local, peer).unwrap(), Some(me()));
        let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
        assert_eq!(
            query(canonical(local), canonical(peer)).unwrap(),
            Some(me())
        );
    }

    #[test]
    fn netlink_says_not_found_for_an_unknown_peer() {
        let (local, _, _server, _client) = connected("127.0.0.1").unwrap();
        // A port with no socket behind it: bound, then dropped.
        let gone = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = query(local, gone).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    }

    #[test]
    fn netlink_answers_for_a_listener_are_not_owners() {
        // The tuple (listener ← somewhere) matches the listener itself.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let somewhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(
            query(somewhere, listener.local_addr().unwrap()).unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn peer_uid_is_the_current_uid() {
        let (local, peer, _server, _client) = connected("127.0.0.1").unwrap();
        assert_eq!(peer_uid(local, peer).await, Some(me()));
    }

    fn answer(family: u8, state: u8, source: &str, destination: &str, uid: u32) -> Vec<u8> {
        let (source, destination): (SocketAddr, SocketAddr) =
            (source.parse().unwrap(), destination.parse().unwrap());
        let response = InetResponse {
            header: InetResponseHeader {
                family,
                state,
                timer: None,
                socket_id: SocketId {
                    source_port: source.port(),
                    destination_port: destination.port(),
                    source_address: source.ip(),
                    destination_address: destination.ip(),
                    interface_id: 0,
                    cookie: [0; 8],
                },
                recv_queue: 0,
                send_queue: 0,
                uid,
                inode: 0,
            },
            nlas: Default::default(),
        };
        let mut header = NetlinkHeader::default();
        header.message_type = netlink_packet_sock_diag::SOCK_DIAG_BY_FAMILY;
        let mut message = NetlinkMessage::new(
            header,
            SockDiagMessage::InetResponse(Box::new(response)).into(),
        );
        message.finalize();
        let mut buf = vec![0; message.buffer_len()];
        message.serialize(&mut buf);
        buf
    }

    #[test]
    fn reads_the_owner_only_from_a_matching_owned_socket() {
        let local: SocketAddr = "127.0.0.1:4335".parse().unwrap();
        let peer: SocketAddr = "127.0.0.1:54003".parse().unwrap();
        let ok = answer(
            AF_INET,
            TCP_ESTABLISHED,
            "127.0.0.1:54003",
            "127.0.0.1:4335",
            1001,
        );
        assert_eq!(owner(&ok, local, peer).unwrap(), Some(1001));
        let mapped = answer(
            AF_INET6,
            TCP_FIN_WAIT2,
            "[::ffff:127.0.0.1]:54003",
            "[::ffff:127.0.0.1]:4335",
            1002,
        );
        assert_eq!(owner(&mapped, local, peer).unwrap(), Some(1002));
        let time_wait = answer(
            AF_INET,
            TCP_TIME_WAIT,
            "127.0.0.1:54003",
            "127.0.0.1:4335",
            0,
        );
        assert_eq!(owner(&time_wait, local, peer).unwrap(), None);
        let other = answer(
            AF_INET,
            TCP_ESTABLISHED,
            "127.0.0.1:54004",
            "127.0.0.1:4335",
            1003,
        );
        assert_eq!(owner(&other, local, peer).unwrap(), None);
        assert_eq!(
            owner(&[0; 3], local, peer).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn requests_name_the_peers_socket() {
        let local: SocketAddr = "127.0.0.1:4335".parse().unwrap();
        let peer: SocketAddr = "[::ffff:127.0.0.1]:54003".parse().unwrap();
        let buf = request(local, peer);
        // nlmsghdr (16 bytes), then inet_diag_req_v2: family, protocol, ext,
        // pad, states (host order), then sport, dport (big-endian), src, dst,
        // interface, cookie.
        assert_eq!(buf.len(), 16 + 56);
        assert_eq!(buf[16], AF_INET);
        assert_eq!(buf[17], IPPROTO_TCP);
        let states = u32::from_ne_bytes(buf[20..24].try_into().unwrap());
        assert_eq!(
            states,
            1 << TCP_ESTABLISHED | 1 << TCP_FIN_WAIT1 | 1 << TCP_FIN_WAIT2
        );
        assert_eq!(&buf[24..26], &54003u16.to_be_bytes());
        assert_eq!(&buf[26..28], &4335u16.to_be_bytes());
        assert_eq!(&buf[28..32], &[127, 0, 0, 1]);
        assert_eq!(&buf[44..48], &[127, 0, 0, 1]);
        assert_eq!(&buf[64..72], &NO_COOKIE);
        let v6 = request(
            "[::1]:4335".parse().unwrap(),
            "[::1]:54003".parse().unwrap(),
        );
        assert_eq!(v6[16], AF_INET6);
        assert_eq!(&v6[28..44], &Ipv6Addr::LOCALHOST.octets());
    }
}
