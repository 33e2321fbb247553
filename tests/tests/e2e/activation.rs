//! Services started on demand (`[[package.service]] exec`): real child
//! processes (`busd-test-service`, `sh`, `sleep`) started by a real daemon.

use std::path::PathBuf;

use busd_client::{Client, CtlCommand, ErrorKind};
use busd_e2e::access::{config_toml, poll_until, within};
use busd_e2e::{Package, TestDaemon, Transport, busd_bin};
use serde_json::Value;

const OWNER: &str = "Activated.Weather_8wekyb3d8bbwe";
const CALLER: &str = "Activated.Caller_8wekyb3d8bbwe";

/// The test service, built beside the tests.
fn test_service() -> PathBuf {
    busd_bin().with_file_name("busd-test-service")
}

/// A daemon where OWNER (provable by no token: only by a uid nobody has)
/// owns `svc.NAME` for each `(NAME, TOML)` service entry, and CALLER may
/// call OWNER.
async fn daemon(services: &[(&str, String)], limits: &str) -> (TestDaemon, Package) {
    let owner = Package::new(OWNER)
        .no_token()
        .peer(&[4_294_967_294], &[])
        .accepts(&[CALLER])
        .sends_to(&[CALLER]);
    let caller = Package::new(CALLER).sends_to(&[OWNER]).accepts(&[OWNER]);
    let mut owner_toml = owner.toml();
    for (name, keys) in services {
        owner_toml.push_str(&format!(
            "\n[[package.service]]\nname = \"svc.{name}\"\n{keys}\n"
        ));
    }
    let packages = [owner, caller];
    let mut toml = config_toml("same-uid", &packages).replace(&packages[0].toml(), &owner_toml);
    toml.push_str(&format!("\n[limits]\n{limits}\n"));
    let d = TestDaemon::start_with_packages_toml(&toml, &packages).await;
    let [_, caller] = packages;
    (d, caller)
}

fn exec(argv: &[&str]) -> String {
    let quoted: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
    format!("exec = [{}]", quoted.join(", "))
}

fn service_exec() -> String {
    exec(&[test_service().to_str().expect("utf-8 path")])
}

/// `busd ctl services`' line for `svc.NAME`.
async fn service_state(admin: &Client, name: &str) -> Value {
    let doc = within("ctl services", admin.ctl(CtlCommand::Services))
        .await
        .expect("ctl services");
    doc.as_array()
        .expect("a list")
        .iter()
        .find(|s| s["name"] == format!("svc.{name}"))
        .cloned()
        .unwrap_or_else(|| panic!("svc.{name} not listed: {doc}"))
}

#[tokio::test]
async fn a_first_request_starts_the_service_which_is_its_package_without_a_token() {
    for t in [Transport::Unix, Transport::Shm, Transport::Tcp] {
        let (d, caller) = daemon(&[("weather", service_exec())], "").await;
        let client = d.connect_as(t, &caller).await;
        let answer = within("the activated answer", client.request("svc.weather", "?"))
            .await
            .expect("answered by the started service");
        let text = String::from_utf8(answer.payload.to_vec()).unwrap();
        let (who, pid) = text.split_once(' ').expect("`PFN PID`");
        // Proven by the connection the daemon made: the package has no token
        // and a uid nobody has.
        assert_eq!(who, OWNER, "{t:?}");
        let admin = d.connect_unpackaged(t).await;
        let state = service_state(&admin, "weather").await;
        assert_eq!(state["owner"], OWNER, "{state}");
        assert_eq!(state["starts"], 1, "{state}");
        assert_eq!(state["responders"], 1, "{state}");
        assert_eq!(state["pids"][0].to_string(), pid, "{state}");
        // Warm: the same process answers.
        let again = client.request("svc.weather", "?").await.unwrap();
        assert_eq!(again.payload, answer.payload, "{t:?}");
        let state = service_state(&admin, "weather").await;
        assert_eq!(state["requests"]["success"], 2, "{state}");
        assert_eq!(state["activated_requests"], 1, "{state}");
    }
}

#[tokio::test]
async fn fifty_concurrent_first_requests_start_it_once() {
    let (d, caller) = daemon(&[("crowd", service_exec())], "").await;
    let client = d.connect_as(Transport::Unix, &caller).await;
    let asks = (0..50).map(|_| client.request("svc.crowd", "?"));
    let answers = within("fifty answers", futures::future::join_all(asks)).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    let pids: std::collections::HashSet<_> = answers
        .iter()
        .map(|a| a.as_ref().unwrap().payload.clone())
        .collect();
    assert_eq!(pids.len(), 1, "one process answered all: {pids:?}");
    let admin = d.connect_unpackaged(Transport::Unix).await;
    let state = service_state(&admin, "crowd").await;
    assert_eq!(state["starts"], 1, "{state}");
    assert_eq!(state["activated_requests"], 50, "{state}");
}

#[tokio::test]
async fn a_service_that_dies_at_start_is_unavailable_and_a_crash_loop_is_held_back() {
    let (d, caller) = daemon(&[("broken", exec(&["/bin/sh", "-c", "exit 3"]))], "").await;
    let client = d.connect_as(Transport::Unix, &caller).await;
    for i in 0..5 {
        let e = within("a failed start", client.request("svc.broken", "?"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AppUnavailable, "start {i}: {e}");
        assert!(e.to_string().contains("exited before it served"), "{e}");
    }
    let e = within("a held-back start", client.request("svc.broken", "?"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ResourceLimitsExceeded, "{e}");
    let admin = d.connect_unpackaged(Transport::Unix).await;
    let state = service_state(&admin, "broken").await;
    assert_eq!(
        (state["starts"].as_u64(), state["failed_starts"].as_u64()),
        (Some(5), Some(5)),
        "{state}"
    );
    assert!(
        state["state"].as_str().unwrap().starts_with("held back"),
        "{state}"
    );
}

#[tokio::test]
async fn a_service_that_never_serves_is_app_service_unavailable() {
    let (d, caller) = daemon(
        &[("mute", exec(&["/bin/sleep", "60"]))],
        "activation_timeout = \"300ms\"",
    )
    .await;
    let client = d.connect_as(Transport::Unix, &caller).await;
    let e = within("the activation timeout", client.request("svc.mute", "?"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AppServiceUnavailable, "{e}");
    // The process that did not serve was stopped.
    let admin = d.connect_unpackaged(Transport::Unix).await;
    wait_until(&admin, "mute", |s| {
        s["pids"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
}

#[tokio::test]
async fn an_idle_service_exits_and_the_next_request_starts_it_again() {
    let keys = format!("{}\nidle_exit = \"300ms\"", service_exec());
    let (d, caller) = daemon(&[("nap", keys)], "").await;
    let client = d.connect_as(Transport::Unix, &caller).await;
    let first = client.request("svc.nap", "?").await.expect("first start");
    let admin = d.connect_unpackaged(Transport::Unix).await;
    let idle = wait_until(&admin, "nap", |s| s["state"] == "idle").await;
    assert_eq!(idle["responders"], 0, "{idle}");
    let second = client.request("svc.nap", "?").await.expect("second start");
    assert_ne!(
        first.payload, second.payload,
        "another process (pid) answers"
    );
    let state = service_state(&admin, "nap").await;
    assert_eq!(state["starts"], 2, "{state}");
}

/// Polls `busd ctl services` until `ready` holds for `svc.NAME`, bounded.
async fn wait_until(admin: &Client, name: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let what = format!("the state wanted of svc.{name}");
    poll_until(&what, || service_state(admin, name), ready).await
}

#[tokio::test]
async fn a_monitor_sees_a_request_held_for_activation_when_it_is_routed() {
    let (d, caller) = daemon(&[("watched", service_exec())], "").await;
    let admin = d.connect_unpackaged(Transport::Unix).await;
    let mut monitor = within("monitor", admin.monitor("svc.>")).await.unwrap();
    let client = d.connect_as(Transport::Unix, &caller).await;
    within("the activated answer", client.request("svc.watched", "?"))
        .await
        .expect("answered by the started service");
    let mut events = Vec::new();
    while events.len() < 2 {
        match within("monitor events", futures::StreamExt::next(&mut monitor)).await {
            Some(busd_client::Observed::Event(event, _)) => events.push(event),
            other => panic!("expected an event, got {other:?}"),
        }
    }
    let (req, rep) = (&events[0], &events[1]);
    assert_eq!(req.kind, busd_proto::EventKind::Request, "{events:?}");
    assert_eq!(req.from.client_id, client.client_id());
    assert_eq!(
        req.from.pfn.as_ref().map(ToString::to_string).as_deref(),
        Some(CALLER)
    );
    let started = req.to[0].pfn.as_ref().map(ToString::to_string);
    assert_eq!(
        started.as_deref(),
        Some(OWNER),
        "routed to the started service"
    );
    assert_eq!(rep.kind, busd_proto::EventKind::Reply, "{events:?}");
    assert_eq!(rep.call, req.call, "paired by their call");
}
