//! The TCP listener: loopback only, real ports, and IPv6 loopback.

use std::io;
use std::net::SocketAddr;

use busd_transport::{Endpoint, Listener, TcpListener, TransportError, connect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn refuses_non_loopback_addresses() {
    for a in ["0.0.0.0:0", "[::]:0", "10.0.0.1:4223", "192.168.1.2:0"] {
        let err = TcpListener::bind(addr(a)).await.unwrap_err();
        assert!(
            matches!(err, TransportError::NotLoopback(got) if got == addr(a)),
            "{err:?}"
        );
    }
    let err = TcpListener::bind(addr("0.0.0.0:4223")).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "refusing to listen on 0.0.0.0:4223: busd binds loopback addresses only (127.0.0.1 or ::1)"
    );
}

#[tokio::test]
async fn port_zero_reports_the_real_port() {
    let listener = TcpListener::bind(addr("127.0.0.1:0")).await.unwrap();
    let Endpoint::Tcp(bound) = listener.endpoint() else {
        panic!("not a tcp endpoint");
    };
    assert_eq!(bound.ip(), addr("127.0.0.1:0").ip());
    assert_ne!(bound.port(), 0);
    let parsed: Endpoint = listener.endpoint().to_string().parse().unwrap();
    assert_eq!(parsed, listener.endpoint());
}

#[tokio::test]
async fn a_port_in_use_is_an_io_error_with_context() {
    let first = TcpListener::bind(addr("127.0.0.1:0")).await.unwrap();
    let Endpoint::Tcp(bound) = first.endpoint() else {
        panic!("not a tcp endpoint");
    };
    let err = TcpListener::bind(bound).await.unwrap_err();
    let TransportError::Io { context, source } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(source.kind(), io::ErrorKind::AddrInUse);
    assert!(context.contains(&bound.to_string()), "{context}");
}

#[tokio::test]
async fn ipv6_loopback_works() {
    let mut listener = match TcpListener::bind(addr("[::1]:0")).await {
        Ok(listener) => listener,
        Err(TransportError::Io { source, .. })
            if matches!(
                source.kind(),
                io::ErrorKind::AddrNotAvailable | io::ErrorKind::Unsupported
            ) || source.raw_os_error()
                == Some(rustix::io::Errno::AFNOSUPPORT.raw_os_error()) =>
        {
            println!("note: skipping, no IPv6 loopback on this machine: {source}");
            return;
        }
        Err(err) => panic!("{err:?}"),
    };
    let endpoint = listener.endpoint();
    assert!(
        endpoint.to_string().starts_with("tcp://[::1]:"),
        "{endpoint}"
    );
    let (client, server) = tokio::join!(connect(&endpoint), listener.accept());
    let (mut client, mut server) = (client.unwrap(), server.unwrap());
    assert_eq!(server.peer.uid, Some(rustix::process::getuid().as_raw()));
    assert!(
        server.peer.addr.starts_with("[::1]:"),
        "{}",
        server.peer.addr
    );
    client.writer.write_all(b"over v6").await.unwrap();
    let mut buf = [0; 7];
    server.reader.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"over v6");
}

#[tokio::test]
async fn connect_errors_name_the_endpoint_and_keep_the_kind() {
    // Take a free port, then close it so nobody listens there.
    let endpoint = TcpListener::bind(addr("127.0.0.1:0"))
        .await
        .unwrap()
        .endpoint();
    let err = connect(&endpoint).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    assert!(err.to_string().contains(&endpoint.to_string()), "{err}");
}
