//! Who owns a loopback TCP connection, read from `/proc/net/tcp{,6}`: the
//! fallback for when `NETLINK_SOCK_DIAG` cannot answer (see `sock_diag`).
//!
//! TCP has no `SO_PEERCRED`, but on one machine the kernel's socket table
//! says which user owns the other end: the row whose local address is our
//! peer's address and whose remote address is our local address. Addresses
//! there are hex in host byte order (IPv6 as four 32-bit words), ports are
//! big-endian hex, and the uid is decimal.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tracing::debug;

/// Socket states whose row still carries the owner's uid: `ESTABLISHED`,
/// `FIN_WAIT1` and `FIN_WAIT2` (a client that half-closed right after
/// connecting). `TIME_WAIT` rows report uid 0 and must never match.
const OWNED_STATES: [u8; 3] = [0x01, 0x04, 0x05];

/// One parsed row of `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    pub(crate) state: u8,
    pub(crate) uid: u32,
}

/// Parses one table row; `None` for the header line or anything malformed.
pub(crate) fn parse_row(line: &str) -> Option<Row> {
    let mut fields = line.split_whitespace();
    let slot = fields.next()?;
    if !slot.ends_with(':') {
        return None;
    }
    let local = parse_socket_addr(fields.next()?)?;
    let remote = parse_socket_addr(fields.next()?)?;
    let state = u8::from_str_radix(fields.next()?, 16).ok()?;
    // Skip tx_queue:rx_queue, tr:tm->when and retrnsmt.
    let uid = fields.nth(3)?.parse().ok()?;
    Some(Row {
        local,
        remote,
        state,
        uid,
    })
}

/// Parses `ADDR:PORT` as printed by the kernel.
fn parse_socket_addr(field: &str) -> Option<SocketAddr> {
    let (addr, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(parse_word(addr)?)),
        32 => {
            let mut octets = [0u8; 16];
            for (i, chunk) in octets.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&parse_word(addr.get(i * 8..i * 8 + 8)?)?);
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Eight hex digits printed from a word in network order, read as a host
/// integer: its in-memory bytes are the address bytes.
fn parse_word(hex: &str) -> Option<[u8; 4]> {
    u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes)
}

/// Whether `row` is the other end of the connection `local` ↔ `peer`.
fn is_other_end(row: &Row, local: SocketAddr, peer: SocketAddr) -> bool {
    same_addr(row.local, peer) && same_addr(row.remote, local) && OWNED_STATES.contains(&row.state)
}

/// Compares IP and port only (flow info and scope id are not in the table),
/// treating a v4-mapped IPv6 address as its IPv4 address.
fn same_addr(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

/// Searches a table for the owner of the other end of `local` ↔ `peer`.
pub(crate) fn find_uid(
    table: impl BufRead,
    local: SocketAddr,
    peer: SocketAddr,
) -> io::Result<Option<u32>> {
    for line in table.lines() {
        if let Some(row) = parse_row(&line?) {
            if is_other_end(&row, local, peer) {
                return Ok(Some(row.uid));
            }
        }
    }
    Ok(None)
}

/// The tables that can hold the other end: an IPv4 (or v4-mapped) peer may
/// use either an IPv4 or an IPv6 socket; an IPv6 peer only an IPv6 one.
fn tables_for(peer: SocketAddr) -> &'static [&'static str] {
    if peer.ip().to_canonical().is_ipv4() {
        &["/proc/net/tcp", "/proc/net/tcp6"]
    } else {
        &["/proc/net/tcp6"]
    }
}

/// Blocking lookup across the relevant tables.
fn lookup(local: SocketAddr, peer: SocketAddr) -> io::Result<Option<u32>> {
    for path in tables_for(peer) {
        let table = match File::open(path) {
            Ok(file) => BufReader::new(file),
            // No IPv6 support in this kernel: nothing to find there.
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        if let Some(uid) = find_uid(table, local, peer)? {
            return Ok(Some(uid));
        }
    }
    Ok(None)
}

/// The uid owning the other end of our loopback connection `local` ↔ `peer`,
/// or `None` (logged at debug) when the kernel tables do not say.
///
/// The table is read on the blocking pool: it grows with every socket on the
/// machine.
pub(crate) async fn peer_uid(local: SocketAddr, peer: SocketAddr) -> Option<u32> {
    match tokio::task::spawn_blocking(move || lookup(local, peer)).await {
        Ok(Ok(Some(uid))) => Some(uid),
        Ok(Ok(None)) => {
            debug!(%local, %peer, "no /proc/net/tcp row for the peer; uid unknown");
            None
        }
        Ok(Err(err)) => {
            debug!(%local, %peer, cause = %err, "cannot read /proc/net/tcp; uid unknown");
            None
        }
        Err(err) => {
            debug!(%local, %peer, cause = %err, "uid lookup task failed; uid unknown");
            None
        }
    }
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    const TCP: &str = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:10EF 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 41321 1 0000000000000000 100 0 0 10 0
   1: 0100007F:10EF 0100007F:D2F3 01 00000000:00000000 00:00000000 00000000  1000        0 41322 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:D2F3 0100007F:10EF 01 00000000:00000000 00:00000000 00000000  1001        0 41323 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:A000 0100007F:10EF 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
   4: 0201A8C0:0016 6401A8C0:E4B1 01 00000000:00000000 02:000A7D5C 00000000     0        0 1234 2 0000000000000000 20 4 1 10 -1
";

    const TCP6: &str = "\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:10EF 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 5001 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:C350 00000000000000000000000001000000:10EF 01 00000000:00000000 00:00000000 00000000  1002        0 5002 1 0000000000000000 20 4 30 10 -1
   2: 0000000000000000FFFF00000100007F:C351 0000000000000000FFFF00000100007F:10EF 01 00000000:00000000 00:00000000 00000000  1003        0 5003 1 0000000000000000 20 4 30 10 -1
   3: B80D0120000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5004 1 0000000000000000 100 0 0 10 0
";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_ipv4_rows() {
        let row = parse_row(TCP.lines().nth(2).unwrap()).unwrap();
        assert_eq!(
            row,
            Row {
                local: addr("127.0.0.1:4335"),
                remote: addr("127.0.0.1:54003"),
                state: 0x01,
                uid: 1000,
            }
        );
        let lan = parse_row(TCP.lines().nth(5).unwrap()).unwrap();
        assert_eq!(lan.local, addr("192.168.1.2:22"));
        assert_eq!(lan.remote, addr("192.168.1.100:58545"));
    }

    #[test]
    fn parses_ipv6_rows_as_four_host_order_words() {
        let lines: Vec<&str> = TCP6.lines().collect();
        let row = parse_row(lines[2]).unwrap();
        assert_eq!(row.local, addr("[::1]:50000"));
        assert_eq!(row.remote, addr("[::1]:4335"));
        assert_eq!(row.uid, 1002);
        let mapped = parse_row(lines[3]).unwrap();
        assert_eq!(mapped.local, addr("[::ffff:127.0.0.1]:50001"));
        let doc = parse_row(lines[4]).unwrap();
        assert_eq!(doc.local, addr("[2001:db8::1]:80"));
    }

    #[test]
    fn rejects_headers_and_garbage() {
        for line in [
            TCP.lines().next().unwrap(),
            "",
            "   0:",
            "   0: 0100007F:10EF",
            "   0: 0100007F:10EF 0100007F:D2F3 01 00000000:00000000 00:00000000 00000000",
            "   0: 0100007F:10EF 0100007F:D2F3 01 00000000:00000000 00:00000000 00000000 -1 0",
            "   0: 0100007:10EF 0100007F:D2F3 01 00000000:00000000 00:00000000 00000000 1000 0",
            "   0: 0100007F:1G0EF 0100007F:D2F3 01 00000000:00000000 00:00000000 00000000 1000 0",
            "   0: ZZ00007F:10EF 0100007F:D2F3 01 00000000:00000000 00:00000000 00000000 1000 0",
            "   0: 0100007F10EF 0100007F:D2F3 01 00000000:00000000 00:00000000 00000000 1000 0",
            "   0: é100007F:10EF 0100007F:D2F3 01 00000000:00000000 00:00000000 00000000 1000 0",
        ] {
            assert_eq!(parse_row(line), None, "{line:?}");
        }
    }

    #[test]
    fn finds_the_client_row_of_an_accepted_connection() {
        // Server side: our socket is 127.0.0.1:4335, the client 127.0.0.1:54003.
        let uid = find_uid(
            TCP.as_bytes(),
            addr("127.0.0.1:4335"),
            addr("127.0.0.1:54003"),
        );
        assert_eq!(uid.unwrap(), Some(1001));
        // Client side: the daemon's row is found the same way.
        let uid = find_uid(
            TCP.as_bytes(),
            addr("127.0.0.1:54003"),
            addr("127.0.0.1:4335"),
        );
        assert_eq!(uid.unwrap(), Some(1000));
    }

    #[test]
    fn ignores_time_wait_and_unknown_peers() {
        let uid = find_uid(
            TCP.as_bytes(),
            addr("127.0.0.1:4335"),
            addr("127.0.0.1:40960"),
        );
        assert_eq!(uid.unwrap(), None);
        let uid = find_uid(TCP.as_bytes(), addr("127.0.0.1:4335"), addr("127.0.0.1:1"));
        assert_eq!(uid.unwrap(), None);
    }

    #[test]
    fn finds_ipv6_and_v4_mapped_peers() {
        let uid = find_uid(TCP6.as_bytes(), addr("[::1]:4335"), addr("[::1]:50000"));
        assert_eq!(uid.unwrap(), Some(1002));
        // A v4-mapped row matches whether our side sees the peer as v4 or mapped.
        let uid = find_uid(
            TCP6.as_bytes(),
            addr("127.0.0.1:4335"),
            addr("127.0.0.1:50001"),
        );
        assert_eq!(uid.unwrap(), Some(1003));
        let uid = find_uid(
            TCP6.as_bytes(),
            addr("[::ffff:127.0.0.1]:4335"),
            addr("[::ffff:127.0.0.1]:50001"),
        );
        assert_eq!(uid.unwrap(), Some(1003));
    }

    #[test]
    fn finds_the_owner_of_a_live_client() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        let uid = lookup(server.local_addr().unwrap(), peer).unwrap();
        assert_eq!(uid, Some(rustix::process::getuid().as_raw()));
    }

    #[test]
    fn picks_tables_by_peer_family() {
        assert_eq!(tables_for(addr("127.0.0.1:1")).len(), 2);
        assert_eq!(tables_for(addr("[::ffff:127.0.0.1]:1")).len(), 2);
        assert_eq!(tables_for(addr("[::1]:1")), &["/proc/net/tcp6"]);
    }
}
