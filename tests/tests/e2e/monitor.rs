//! `busd monitor` through a real daemon: an admin's monitor sees every
//! publish (receivers, and receivers the rules denied, marked so),
//! request and reply that its subject matches; it never holds delivery
//! up, and one that falls behind is told what it missed. (A non-admin's
//! refusal needs a second uid: see `cli_monitor`.)

use busd_client::{
    Client, EventKind, Monitor, MonitorEvent, MonitorOptions, Observed, Overflow, Status, Subject,
};
use busd_e2e::access::{answer_with_caller, next_msg, within};
use busd_e2e::{AuditLog, Package, RawClient, TestDaemon, Transport};
use busd_proto::{Frame, Op};
use futures::StreamExt;

const SENDER: &str = "Monitor.Sender_8wekyb3d8bbwe";
const RECEIVER: &str = "Monitor.Receiver_8wekyb3d8bbwe";
const STRANGER: &str = "Monitor.Stranger_8wekyb3d8bbwe";

/// SENDER may reach RECEIVER; STRANGER accepts nobody.
async fn daemon() -> TestDaemon {
    let packages = [
        Package::new(SENDER).sends_to(&[RECEIVER, STRANGER]),
        Package::new(RECEIVER).accepts(&[SENDER]),
        Package::new(STRANGER),
    ];
    TestDaemon::start_with_packages("same-uid", &packages).await
}

/// The next event on `monitor`, bounded; panics on a drop notice.
async fn next_event(monitor: &mut Monitor, what: &str) -> (MonitorEvent, bytes::Bytes) {
    match within(what, monitor.next()).await {
        Some(Observed::Event(event, payload)) => (event, payload),
        other => panic!("{what}: expected an event, got {other:?}"),
    }
}

/// A connection of its own at `url` running monitor 1 on `subject`.
async fn raw_monitor(url: &str, subject: &'static str, contents: bool) -> RawClient {
    let (mut raw, _) = RawClient::connect_hello(url).await;
    raw.send(Op::Monitor {
        sid: 1,
        subject: Subject::from_static(subject),
        contents,
    })
    .await;
    assert_eq!(RawClient::error_code(&raw.ping().await), None, "started");
    raw
}

fn pfn(event_party: &busd_client::Party) -> Option<String> {
    event_party.pfn.as_ref().map(ToString::to_string)
}

#[tokio::test]
async fn an_admin_sees_each_publish_with_its_receivers_and_the_denied_marked() {
    let audit = AuditLog::capture();
    for t in Transport::ALL {
        let d = daemon().await;
        let admin = d.connect_unpackaged(t).await;
        let mut monitor = admin.monitor(">").await.expect("an admin may monitor");
        let sender = d.connect_as(t, &Package::new(SENDER)).await;
        let receiver = d.connect_as(t, &Package::new(RECEIVER)).await;
        let stranger = d.connect_as(t, &Package::new(STRANGER)).await;
        let mut sub = receiver.subscribe("weather.>").await.unwrap();
        let _denied = stranger.subscribe("weather.>").await.unwrap();
        sender
            .publish("weather.today.paris", "sunny")
            .await
            .unwrap();

        let (event, payload) = next_event(&mut monitor, "the publish").await;
        assert_eq!(event.kind, EventKind::Publish, "{t:?}");
        assert_eq!(event.subject.as_str(), "weather.today.paris");
        assert_eq!(event.from.client_id, sender.client_id());
        assert_eq!(pfn(&event.from).as_deref(), Some(SENDER));
        let to: Vec<u64> = event.to.iter().map(|p| p.client_id).collect();
        assert_eq!(to, [receiver.client_id()], "{t:?}: who it reached");
        let denied: Vec<u64> = event.denied.iter().map(|p| p.client_id).collect();
        assert_eq!(denied, [stranger.client_id()], "{t:?}: who was denied");
        assert_eq!(pfn(&event.denied[0]).as_deref(), Some(STRANGER));
        assert_eq!(event.size, 5);
        assert!(payload.is_empty() && event.headers.is_none(), "size only");
        // Delivery itself is unchanged.
        assert_eq!(
            &next_msg(&mut sub, "the message").await.payload[..],
            b"sunny"
        );
    }
    assert_eq!(audit.matching(&["monitor started", "subject=>"]).len(), 3);
}

#[tokio::test]
async fn contents_come_only_when_asked_for() {
    let d = TestDaemon::start().await;
    let admin = d.connect_unpackaged(Transport::Unix).await;
    let options = MonitorOptions { contents: true };
    let mut monitor = admin.monitor_with("notes", options).await.unwrap();
    let mut headers = busd_client::Headers::new();
    headers.insert("unit".into(), "celsius".into());
    admin
        .publish_with_headers("notes", headers.clone(), "21")
        .await
        .unwrap();
    let (event, payload) = next_event(&mut monitor, "the publish").await;
    assert_eq!(&payload[..], b"21");
    assert_eq!(event.headers, Some(headers));
    assert_eq!(event.to, [], "nobody subscribes");
}

#[tokio::test]
async fn requests_and_replies_show_up_paired_by_their_call() {
    let d = TestDaemon::start().await;
    let admin = d.connect_unpackaged(Transport::Unix).await;
    let mut monitor = admin.monitor("svc.>").await.unwrap();
    let caller = d.connect_unpackaged(Transport::Tcp).await;
    let responder = d.connect_unpackaged(Transport::Shm).await;
    answer_with_caller(responder.serve("svc.echo").await.unwrap(), "hi ");
    let reply = within("the reply", caller.request("svc.echo", "ping"))
        .await
        .unwrap();

    let (req, _) = next_event(&mut monitor, "the request").await;
    assert_eq!(req.kind, EventKind::Request);
    assert_eq!(req.subject.as_str(), "svc.echo");
    assert_eq!(req.from.client_id, caller.client_id());
    assert_eq!(req.to[0].client_id, responder.client_id());
    assert_eq!((req.size, req.status), (4, None));
    let call = req.call.expect("a routed request names its call");
    let (rep, _) = next_event(&mut monitor, "the reply").await;
    assert_eq!(rep.kind, EventKind::Reply);
    assert_eq!(rep.subject.as_str(), "svc.echo", "shown under its service");
    assert_eq!(rep.call, Some(call));
    assert_eq!(rep.from.client_id, responder.client_id());
    assert_eq!(rep.to[0].client_id, caller.client_id());
    assert_eq!(rep.status, Some(Status::Success));
    assert_eq!(rep.size, reply.payload.len() as u64);

    // Answered by the daemon at once: one event, with its status.
    let e = within("no responders", caller.request("svc.none", "?")).await;
    assert!(e.is_err());
    let (none, _) = next_event(&mut monitor, "the unanswered request").await;
    assert_eq!(none.subject.as_str(), "svc.none");
    assert_eq!((none.status, none.call), (Some(Status::NoResponders), None));
    assert!(none.to.is_empty());
}

#[tokio::test]
async fn the_subject_filter_picks_what_a_monitor_sees() {
    let d = TestDaemon::start().await;
    let admin = d.connect_unpackaged(Transport::Unix).await;
    let mut paris = admin.monitor("weather.*.paris").await.unwrap();
    for subject in [
        "weather.today.london",
        "traffic.paris",
        "weather.today.paris",
    ] {
        admin.publish(subject, "x").await.unwrap();
    }
    let (event, _) = next_event(&mut paris, "the matching publish").await;
    assert_eq!(
        event.subject.as_str(),
        "weather.today.paris",
        "the others were skipped"
    );
}

/// A monitor that reads nothing: its connection's queue is small and its
/// events are large, so it falls behind at once.
#[tokio::test]
async fn a_monitor_that_never_reads_holds_nobody_up_and_is_told_what_it_missed() {
    let audit = AuditLog::capture();
    let d = TestDaemon::start_with(|c| {
        c.limits.max_pending_msgs = 8;
        c.limits.max_pending_bytes = 8 << 20;
    })
    .await;
    let url = d.url(Transport::Unix);
    let mut stuck = raw_monitor(&url, "ticks", true).await;

    let publisher = Client::connect(&url).await.unwrap();
    let subscriber = Client::connect(&url).await.unwrap();
    let options = busd_client::SubscribeOptions {
        queue: None,
        overflow: Overflow::Disconnect,
    };
    let mut sub = subscriber.subscribe_with("ticks", options).await.unwrap();
    const N: u64 = 400;
    let reader = tokio::spawn(async move {
        for _ in 0..N {
            next_msg(&mut sub, "a tick").await;
        }
    });
    for _ in 0..N {
        publisher
            .publish("ticks", vec![7u8; 32 * 1024])
            .await
            .unwrap();
    }
    within("the publisher's flush", publisher.flush())
        .await
        .unwrap();
    // Every message reached the subscriber, none was dropped or refused,
    // while the monitor read nothing.
    within("every tick delivered", reader).await.unwrap();

    // Now it reads: each publish is an event it got or one it was told of.
    let (mut events, mut dropped) = (0, 0);
    while events + dropped < N {
        let f: Frame = within("the monitor's frames", stuck.recv())
            .await
            .expect("the monitor stays connected");
        match f.op {
            Op::Event { sid: 1, event } => {
                assert_eq!(event.size, 32 * 1024);
                events += 1;
            }
            Op::Dropped { sid: 1, count } => dropped += count,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(events + dropped, N);
    assert!(dropped > 0, "{events} events of 32 KiB fit nowhere near");
    // Its end is audited with what it missed.
    stuck.send(Op::Unsub { sid: 1 }).await;
    stuck.ping().await;
    let ended = format!("events={events} dropped={dropped}");
    let lines = audit.matching(&["monitor ended", &ended]);
    assert_eq!(lines.len(), 1, "{:?}", audit.lines());
}

#[tokio::test]
async fn a_stopped_monitor_sees_nothing_more() {
    let d = TestDaemon::start().await;
    let url = d.url(Transport::Unix);
    let mut stopped = raw_monitor(&url, ">", false).await;
    let other = d.connect_unpackaged(Transport::Unix).await;
    let mut watching = other.monitor(">").await.unwrap();
    let publisher = d.connect_unpackaged(Transport::Unix).await;
    publisher.publish("before", "1").await.unwrap();
    let (event, _) = next_event(&mut watching, "before").await;
    assert_eq!(event.subject.as_str(), "before");
    let got = within("the event before the stop", stopped.recv()).await;
    assert!(matches!(got.map(|f| f.op), Some(Op::Event { sid: 1, .. })));

    stopped.send(Op::Unsub { sid: 1 }).await;
    stopped.ping().await;
    publisher.publish("after", "2").await.unwrap();
    let (event, _) = next_event(&mut watching, "after").await;
    assert_eq!(event.subject.as_str(), "after");
    // The stop came before the publish was routed: nothing was queued for
    // the stopped monitor, then or since.
    assert!(stopped.ping().await.is_empty(), "no event after the stop");
    // `busd ctl subs` lists the one monitor left.
    let listed = other.ctl(busd_client::CtlCommand::Subs).await.unwrap();
    let monitors: Vec<_> = listed
        .as_array()
        .expect("a list")
        .iter()
        .filter(|r| r["kind"] == "monitor")
        .collect();
    assert_eq!(monitors.len(), 1, "{listed}");
    assert_eq!(monitors[0]["client"], other.client_id());
}
