//! Asking a node whether it is up: its client port and its monitoring
//! endpoint, over plain std sockets (no HTTP client for one GET).

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use super::{CLIENT_PORT, MONITOR_PORT};

/// How long one probe may take: a cut host answers nothing, ever.
const PROBE: Duration = Duration::from_millis(500);

/// Whether the node at `ip` accepts a client: it sends its `INFO` line.
pub(super) fn accepts_clients(ip: Ipv4Addr) -> bool {
    let Some(stream) = connect(ip, CLIENT_PORT) else {
        return false;
    };
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("INFO ")
}

/// How many other servers the node at `ip` has a route to, from its
/// `/routez`: distinct remote server ids, as servers since 2.10 open a
/// pool of routes to each peer, and two may briefly connect each other
/// twice. `None` if it does not answer.
pub(super) fn remote_routes(ip: Ipv4Addr) -> Option<usize> {
    let body = http_get(ip, "/routez")?;
    let routez: serde_json::Value = serde_json::from_str(&body).ok()?;
    let remotes: HashSet<&str> = routez["routes"]
        .as_array()?
        .iter()
        .filter_map(|r| r["remote_id"].as_str())
        .collect();
    Some(remotes.len())
}

/// The body of `GET path` at the node's monitoring port, if it answers 200.
fn http_get(ip: Ipv4Addr, path: &str) -> Option<String> {
    let mut stream = connect(ip, MONITOR_PORT)?;
    // HTTP/1.0: the server closes the connection after its answer, which
    // marks the body's end.
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?;
    (status == "200").then(|| body.to_owned())
}

fn connect(ip: Ipv4Addr, port: u16) -> Option<TcpStream> {
    let stream = TcpStream::connect_timeout(&SocketAddr::from((ip, port)), PROBE).ok()?;
    stream.set_read_timeout(Some(PROBE)).ok()?;
    stream.set_write_timeout(Some(PROBE)).ok()?;
    Some(stream)
}
