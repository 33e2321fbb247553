//! A cluster that wants a token: the bridge connects with the one in its
//! credentials file, and a bridge with the wrong one never does, saying
//! why in the log, while its local bus goes on.

use std::os::unix::fs::PermissionsExt;

use busd_e2e::access::poll_until;

use crate::fleet::{Fleet, SENSOR};

const TOKEN: &str = "fleet-secret-5e1f";

/// A credentials file holding `token`, mode 0600; its dir and path.
fn credentials(token: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.token");
    std::fs::write(&path, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let path = path.display().to_string();
    (dir, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, ip netns and nats-server; run by .ci/run"]
async fn the_bridge_proves_itself_to_the_cluster_with_its_credentials() {
    let (_dir, path) = credentials(TOKEN);
    let extra = format!("credentials = {path:?}");
    let auth = format!("authorization {{ token: \"{TOKEN}\" }}");
    let fleet = Fleet::start_with(&["h1"], &extra, &auth).await;
    let b = fleet.hosts[0].bridge().await;
    assert_eq!(b["state"], "connected", "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, ip netns and nats-server; run by .ci/run"]
async fn a_wrong_token_keeps_the_bridge_out_and_the_local_bus_going() {
    let (_dir, path) = credentials("not-the-token");
    let extra = format!("credentials = {path:?}");
    let auth = format!("authorization {{ token: \"{TOKEN}\" }}");
    let fleet = Fleet::launch(&["h1"], &extra, &auth);
    let h1 = &fleet.hosts[0];
    let b = poll_until(
        "the refusal shown",
        || h1.bridge(),
        |b| b["error"].is_string(),
    )
    .await;
    let why = b["error"].as_str().unwrap().to_lowercase();
    assert!(why.contains("authorization"), "{b}");
    assert_ne!(b["state"], "connected", "{b}");
    // The local bus is not the bridge's to stop.
    let (a, c) = (h1.client(SENSOR).await, h1.client(SENSOR).await);
    let mut sub = c.subscribe("local.x").await.unwrap();
    a.publish("local.x", "still here").await.unwrap();
    let m = busd_e2e::access::next_msg(&mut sub, "a local message").await;
    assert_eq!(&m.payload[..], b"still here");
}
