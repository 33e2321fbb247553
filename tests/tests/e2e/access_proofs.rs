//! Packages proven by peer credentials rather than tokens, through a real
//! daemon: by uid on every transport, by executable only where the
//! transport tells it (the unix socket), and a wrong uid, executable or
//! token claim refused.

use busd_client::ErrorKind;
use busd_e2e::access::{current_uid, next_msg};
use busd_e2e::{Package, TestDaemon, Transport};

const BY_UID: &str = "Proof.ByUid_8wekyb3d8bbwe";
const BY_EXE: &str = "Proof.ByExe_8wekyb3d8bbwe";
const WRONG_EXE: &str = "Proof.WrongExe_8wekyb3d8bbwe";
const WRONG_UID: &str = "Proof.WrongUid_8wekyb3d8bbwe";

fn proof_packages() -> Vec<Package> {
    let uid = current_uid();
    let me = std::env::current_exe().expect("test exe");
    let other = std::fs::canonicalize("/bin/sh").expect("/bin/sh exists");
    assert_ne!(me, other);
    vec![
        Package::new(BY_UID)
            .no_token()
            .peer(&[uid], &[])
            .sends_to(&[BY_EXE]),
        Package::new(BY_EXE)
            .no_token()
            .peer(&[uid], &[me])
            .accepts(&[BY_UID]),
        Package::new(WRONG_EXE).no_token().peer(&[uid], &[other]),
        Package::new(WRONG_UID)
            .no_token()
            .peer(&[uid.wrapping_add(1)], &[]),
    ]
}

// Two failed proofs per transport from this uid: paused, the daemon's
// growing waits for the claims after them pass at once.
#[tokio::test(start_paused = true)]
async fn peer_credentials_prove_a_package_on_every_transport() {
    let d = TestDaemon::start_with_packages("same-uid", &proof_packages()).await;
    for t in Transport::ALL {
        let a = d
            .try_connect_peer(t, BY_UID)
            .await
            .unwrap_or_else(|e| panic!("{t:?}: uid proof: {e}"));
        assert_eq!(
            a.pfn().map(|p| p.to_string()).as_deref(),
            Some(BY_UID),
            "{t:?}"
        );
        let b = d
            .try_connect_peer(t, BY_UID)
            .await
            .unwrap_or_else(|e| panic!("{t:?}: uid proof: {e}"));
        let mut sub = b.subscribe("proof.uid").await.unwrap();
        a.publish("proof.uid", "by uid").await.unwrap();
        let m = next_msg(&mut sub, &format!("{t:?} same package by uid")).await;
        assert_eq!(m.from.client_id, a.client_id(), "{t:?}");
        assert_eq!(
            m.from.pfn.as_ref().map(ToString::to_string).as_deref(),
            Some(BY_UID)
        );

        let e = d.try_connect_peer(t, WRONG_UID).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AuthFailed, "{t:?}: {e}");
        // A token claim for a package that has no token configured.
        d.write_token("tokens/guess.key", "a guessed secret");
        let e = d
            .try_connect_token(t, BY_UID, "tokens/guess.key")
            .await
            .unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::AuthFailed,
            "{t:?}: token claim for a uid-only package: {e}"
        );
    }
}

#[tokio::test]
async fn executable_proof_on_the_unix_socket() {
    let d = TestDaemon::start_with_packages("same-uid", &proof_packages()).await;
    let t = Transport::Unix;
    let by_exe = d
        .try_connect_peer(t, BY_EXE)
        .await
        .unwrap_or_else(|e| panic!("exe proof with this test's own executable: {e}"));
    assert_eq!(by_exe.pfn().map(|p| p.to_string()).as_deref(), Some(BY_EXE));
    let mut sub = by_exe.subscribe("proof.exe").await.unwrap();
    let by_uid = d.try_connect_peer(t, BY_UID).await.unwrap();
    by_uid.publish("proof.exe", "uid to exe").await.unwrap();
    let m = next_msg(&mut sub, "BY_UID -> BY_EXE").await;
    assert_eq!(m.from.client_id, by_uid.client_id());
    assert_eq!(
        m.from.pfn.as_ref().map(ToString::to_string).as_deref(),
        Some(BY_UID)
    );

    let e = d.try_connect_peer(t, WRONG_EXE).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AuthFailed, "{e}");
}

#[tokio::test]
async fn executable_proof_cannot_pass_over_tcp() {
    // TCP tells the peer's uid, not its executable: an exe-pinned package
    // cannot be proven there.
    let d = TestDaemon::start_with_packages("same-uid", &proof_packages()).await;
    let e = d
        .try_connect_peer(Transport::Tcp, BY_EXE)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AuthFailed, "{e}");
}
