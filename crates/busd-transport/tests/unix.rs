//! The unix listener: socket mode, single instance, foreign files, clean-up
//! on drop. (What it refuses to trust about its path: `socket_path.rs`.)

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use busd_transport::{Endpoint, Listener, TransportError, UnixListener, connect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn is_socket(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// Connects, accepts, and checks one byte gets through. The client speaks
/// first, as busd clients do: the listener hands a connection out once its
/// first bytes arrived.
async fn round_trip(listener: &mut UnixListener) {
    let endpoint = listener.endpoint();
    let client = async {
        let mut client = connect(&endpoint).await.unwrap();
        client.writer.write_all(b"x").await.unwrap();
        client
    };
    let (_client, server) = tokio::join!(client, listener.accept());
    let mut server = server.unwrap();
    let mut buf = [0; 1];
    server.reader.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"x");
}

#[tokio::test]
async fn socket_has_mode_0660_and_the_endpoint_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busd.sock");
    let listener = UnixListener::bind(&path).await.unwrap();
    let mode = fs::symlink_metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660, "{mode:o}");
    assert_eq!(listener.endpoint(), Endpoint::Unix(path.clone()));
    let parsed: Endpoint = listener.endpoint().to_string().parse().unwrap();
    assert_eq!(parsed, listener.endpoint());
}

#[tokio::test]
async fn creates_the_socket_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busd").join("busd.sock");
    let mut listener = UnixListener::bind(&path).await.unwrap();
    assert!(is_socket(&path));
    round_trip(&mut listener).await;
}

#[tokio::test]
async fn a_second_listener_is_refused_while_the_first_lives() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busd.sock");
    let mut first = UnixListener::bind(&path).await.unwrap();
    let err = UnixListener::bind(&path).await.unwrap_err();
    assert!(
        matches!(&err, TransportError::AlreadyRunning(p) if p == &path),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "another busd is already listening on {}",
            path.display()
        )),
        "{err}"
    );
    // The refused attempt touched nothing: the first still serves.
    assert!(is_socket(&path));
    round_trip(&mut first).await;
    // Once the first is gone, the path can be taken again.
    drop(first);
    let mut second = UnixListener::bind(&path).await.unwrap();
    round_trip(&mut second).await;
}

#[tokio::test]
async fn a_regular_file_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busd.sock");
    fs::write(&path, b"precious").unwrap();
    let err = UnixListener::bind(&path).await.unwrap_err();
    assert!(
        matches!(&err, TransportError::NotASocket(p) if p == &path),
        "{err:?}"
    );
    assert!(err.to_string().contains("is not a socket"), "{err}");
    assert_eq!(fs::read(&path).unwrap(), b"precious");
}

#[tokio::test]
async fn a_directory_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busd.sock");
    fs::create_dir(&path).unwrap();
    let err = UnixListener::bind(&path).await.unwrap_err();
    assert!(matches!(err, TransportError::NotASocket(_)), "{err:?}");
    assert!(path.is_dir());
}

#[tokio::test]
async fn drop_removes_the_socket_and_keeps_the_lock_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busd.sock");
    let listener = UnixListener::bind(&path).await.unwrap();
    assert!(is_socket(&path));
    drop(listener);
    assert!(!path.exists());
    assert!(dir.path().join("busd.sock.lock").is_file());
    let err = connect(&Endpoint::Unix(path)).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}

#[tokio::test]
async fn drop_leaves_a_file_that_replaced_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busd.sock");
    let listener = UnixListener::bind(&path).await.unwrap();
    fs::remove_file(&path).unwrap();
    fs::write(&path, b"someone else's").unwrap();
    drop(listener);
    assert_eq!(fs::read(&path).unwrap(), b"someone else's");
}

#[tokio::test]
async fn a_path_too_long_for_a_socket_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x".repeat(120));
    let err = UnixListener::bind(&path).await.unwrap_err();
    assert!(matches!(err, TransportError::Io { .. }), "{err:?}");
    assert!(!path.exists());
}
