//! The unix socket path's defences, each test named after the attack it
//! repels: real sockets in temp dirs, bound with `UnixListener::bind`.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt, chown, symlink};
use std::os::unix::net::{UnixListener as StdListener, UnixStream as StdStream};
use std::path::Path;

use busd_transport::{Listener, SocketPathError, TransportError, UnixListener, connect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An unprivileged uid that is not the test's (`nobody`).
const OTHER_UID: u32 = 65534;

/// Binds at `path`, expecting a socket path refusal.
async fn refused(path: &Path) -> SocketPathError {
    match UnixListener::bind(path).await {
        Err(TransportError::SocketPath(err)) => err,
        Err(err) => panic!("expected a socket path refusal, got {err:?}"),
        Ok(_) => panic!("{} was accepted", path.display()),
    }
}

/// A directory `name` in `parent` with exactly `mode` (no umask).
fn dir_with_mode(parent: &Path, name: &str, mode: u32) -> std::path::PathBuf {
    let dir = parent.join(name);
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
    dir
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Root may chown a directory to another user; others cannot set the test up.
fn is_root() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: only root can give a file to uid {OTHER_UID}; run the tests as root");
    false
}

/// The listener serves: a client's byte gets through.
async fn serves(listener: &mut UnixListener) {
    let endpoint = listener.endpoint();
    let client = async {
        let mut client = connect(&endpoint).await.unwrap();
        client.writer.write_all(b"x").await.unwrap();
        client
    };
    let (_client, server) = tokio::join!(client, listener.accept());
    let mut buf = [0; 1];
    server.unwrap().reader.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"x");
}

#[tokio::test]
async fn a_directory_others_may_write_cannot_be_used_to_swap_the_socket() {
    let tmp = tempfile::tempdir().unwrap();
    for mode in [0o777, 0o770, 0o702] {
        let dir = dir_with_mode(tmp.path(), &format!("{mode:o}"), mode);
        let err = refused(&dir.join("busd.sock")).await;
        assert!(
            matches!(&err, SocketPathError::WritableDirectory { dir: d, mode: m } if d == &dir && *m == mode),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "{} is writable by group or others without the sticky bit (mode 0{mode:o})",
                dir.display()
            )),
            "{text}"
        );
        assert!(
            entries(&dir).is_empty(),
            "nothing created: {:?}",
            entries(&dir)
        );
    }
}

#[tokio::test]
async fn a_sticky_world_writable_directory_is_accepted() {
    // As /tmp: others may create entries, but not rename or remove ours.
    let tmp = tempfile::tempdir().unwrap();
    let dir = dir_with_mode(tmp.path(), "shared", 0o1777);
    let path = dir.join("busd.sock");
    let mut listener = UnixListener::bind(&path).await.unwrap();
    let mode = fs::symlink_metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660, "{mode:o}");
    serves(&mut listener).await;
}

#[tokio::test]
async fn a_symlinked_directory_cannot_redirect_the_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let real = dir_with_mode(tmp.path(), "real", 0o700);
    let link = tmp.path().join("link");
    symlink(&real, &link).unwrap();
    let err = refused(&link.join("busd.sock")).await;
    assert!(
        matches!(&err, SocketPathError::Symlink(p) if p == &link),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("{} is a symbolic link", link.display())),
        "{err}"
    );
    assert!(entries(&real).is_empty(), "{:?}", entries(&real));
}

#[tokio::test]
async fn a_symlink_at_the_socket_path_is_neither_followed_nor_removed() {
    let tmp = tempfile::tempdir().unwrap();
    // The link leads to a socket someone else serves.
    let theirs = tmp.path().join("theirs.sock");
    let their_listener = StdListener::bind(&theirs).unwrap();
    let path = tmp.path().join("busd.sock");
    symlink(&theirs, &path).unwrap();
    let err = refused(&path).await;
    assert!(
        matches!(&err, SocketPathError::Symlink(p) if p == &path),
        "{err:?}"
    );
    assert!(
        fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let _client = StdStream::connect(&theirs).unwrap();
    their_listener.accept().unwrap();
}

#[tokio::test]
async fn a_symlinked_lock_file_cannot_make_busd_create_or_lock_another_file() {
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim");
    fs::write(&victim, b"keep").unwrap();
    let lock = tmp.path().join("busd.sock.lock");
    symlink(&victim, &lock).unwrap();
    let dangling = tmp.path().join("other.sock.lock");
    symlink(tmp.path().join("created-by-busd"), &dangling).unwrap();

    let err = refused(&tmp.path().join("busd.sock")).await;
    assert!(
        matches!(&err, SocketPathError::Symlink(p) if p == &lock),
        "{err:?}"
    );
    assert_eq!(fs::read(&victim).unwrap(), b"keep");
    assert!(!tmp.path().join("busd.sock").exists());

    let err = refused(&tmp.path().join("other.sock")).await;
    assert!(
        matches!(&err, SocketPathError::Symlink(p) if p == &dangling),
        "{err:?}"
    );
    assert!(!tmp.path().join("created-by-busd").exists());
}

#[tokio::test]
async fn a_directory_owned_by_another_user_is_refused() {
    if !is_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = dir_with_mode(tmp.path(), "theirs", 0o700);
    chown(&dir, Some(OTHER_UID), None).unwrap();
    let err = refused(&dir.join("busd.sock")).await;
    let uid = rustix::process::geteuid().as_raw();
    assert!(
        matches!(&err, SocketPathError::ForeignOwner { path, owner, uid: u }
            if path == &dir && *owner == OTHER_UID && *u == uid),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "{} belongs to uid {OTHER_UID}, but busd runs as uid {uid}",
            dir.display()
        )),
        "{err}"
    );
    assert!(entries(&dir).is_empty(), "{:?}", entries(&dir));
}

#[tokio::test]
async fn a_lock_file_planted_by_another_user_is_refused() {
    if !is_root() {
        return;
    }
    // In a sticky shared directory anyone may create the lock file first.
    let tmp = tempfile::tempdir().unwrap();
    let dir = dir_with_mode(tmp.path(), "shared", 0o1777);
    let lock = dir.join("busd.sock.lock");
    fs::write(&lock, b"").unwrap();
    chown(&lock, Some(OTHER_UID), None).unwrap();
    let err = refused(&dir.join("busd.sock")).await;
    assert!(
        matches!(&err, SocketPathError::ForeignOwner { path, owner, .. }
            if path == &lock && *owner == OTHER_UID),
        "{err:?}"
    );
    assert!(!dir.join("busd.sock").exists());
}

#[tokio::test]
async fn a_socket_another_program_serves_is_not_taken_over() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("busd.sock");
    // Another program serves here and knows nothing of busd's lock file.
    let theirs = StdListener::bind(&path).unwrap();
    let err = refused(&path).await;
    assert!(
        matches!(&err, SocketPathError::Served(p) if p == &path),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("another program is serving {}", path.display())),
        "{err}"
    );
    // A lock file left free by a busd that died changes nothing.
    assert!(tmp.path().join("busd.sock.lock").is_file());
    let err = refused(&path).await;
    assert!(matches!(&err, SocketPathError::Served(_)), "{err:?}");

    // Its socket is still there and still its own: our probes were
    // connections it may accept, then the next client reaches it.
    assert!(fs::symlink_metadata(&path).unwrap().file_type().is_socket());
    theirs.set_nonblocking(true).unwrap();
    while theirs.accept().is_ok() {}
    theirs.set_nonblocking(false).unwrap();
    let mut client = StdStream::connect(&path).unwrap();
    client.write_all(b"hello").unwrap();
    let (mut server, _) = theirs.accept().unwrap();
    let mut buf = [0; 5];
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");
}

#[tokio::test]
async fn a_stale_socket_file_is_still_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("busd.sock");
    // A daemon that died: its socket file stays, nobody listens.
    drop(StdListener::bind(&path).unwrap());
    assert!(fs::symlink_metadata(&path).unwrap().file_type().is_socket());
    let mut listener = UnixListener::bind(&path).await.unwrap();
    serves(&mut listener).await;
}
