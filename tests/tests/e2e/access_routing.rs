//! The matrix where the daemon picks among receivers or routes back: queue
//! groups and services with allowed and denied members, capability-gated
//! services, replies the responder could not send on its own, a stream of
//! allowed and denied publishers, and a package without loopback. On every
//! transport, with the packages of `access_matrix` and its way of proving
//! non-delivery.

use busd_client::{Client, ErrorKind, ServeOptions};
use busd_e2e::Transport;
use busd_e2e::access::{
    answer_with_caller, assert_nothing_delivered, client_tag, next_call, next_msg, within,
};

use crate::access_matrix::{
    BOTH_R, BOTH_S, CAPABLE, HSA, INCAPABLE, OFFLINE, OUT_S, Pkg, STRANGER_2, Unpackaged, connect,
    daemon,
};

#[tokio::test]
async fn loopback_false_blocks_even_its_own_connection() {
    for t in Transport::ALL {
        let d = daemon().await;
        let offline = connect(&d, t, Pkg(OFFLINE)).await;
        let mut sub = offline.subscribe("matrix.self").await.unwrap();
        offline.publish("matrix.self", "to myself").await.unwrap();
        assert_nothing_delivered(
            &offline,
            &mut sub,
            &format!("{t:?} loopback=false to itself"),
        )
        .await;
        // Nor may it serve itself.
        let svc = offline.serve("matrix.self.svc").await.unwrap();
        answer_with_caller(svc, "offline");
        let e = within("self request", offline.request("matrix.self.svc", "?"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAuthorized, "{t:?}: {e}");
    }
}

#[tokio::test]
async fn a_reply_gets_back_where_the_responder_may_not_send() {
    // BOTH_R accepts BOTH_S but may not send to it: its answer still arrives,
    // while a publish from BOTH_R to BOTH_S does not.
    for t in Transport::ALL {
        let d = daemon().await;
        let asker = connect(&d, t, Pkg(BOTH_S)).await;
        let responder = connect(&d, t, Pkg(BOTH_R)).await;
        let mut svc = responder.serve("matrix.reply").await.unwrap();
        let mut inbox = asker.subscribe("matrix.inbox").await.unwrap();
        let pending = {
            let asker = asker.clone();
            tokio::spawn(async move { asker.request("matrix.reply", "hi").await })
        };
        let call = next_call(&mut svc, "the call").await;
        assert_eq!(
            call.from.pfn.as_ref().map(ToString::to_string).as_deref(),
            Some(BOTH_S)
        );
        responder
            .publish("matrix.inbox", "not allowed")
            .await
            .unwrap();
        call.respond("allowed reply").await.unwrap();
        let resp = within("reply", pending).await.unwrap().unwrap();
        assert_eq!(&resp.payload[..], b"allowed reply", "{t:?}");
        asker.publish("matrix.inbox", "marker").await.unwrap();
        assert_eq!(
            &next_msg(&mut inbox, "marker").await.payload[..],
            b"marker",
            "{t:?}"
        );
    }
}

#[tokio::test]
async fn a_queue_group_gives_everything_to_its_allowed_member() {
    const N: usize = 20;
    for t in Transport::ALL {
        let d = daemon().await;
        let sender = connect(&d, t, Pkg(BOTH_S)).await;
        let allowed = connect(&d, t, Pkg(BOTH_R)).await;
        let denied = connect(&d, t, Pkg(STRANGER_2)).await;
        let mut allowed_sub = allowed
            .queue_subscribe("matrix.jobs", "workers")
            .await
            .unwrap();
        let mut denied_sub = denied
            .queue_subscribe("matrix.jobs", "workers")
            .await
            .unwrap();
        for i in 0..N {
            sender.publish("matrix.jobs", format!("{i}")).await.unwrap();
        }
        within("sender flush", sender.flush()).await.unwrap();
        for i in 0..N {
            let m = next_msg(&mut allowed_sub, &format!("{t:?} job {i}")).await;
            assert_eq!(m.payload, format!("{i}").as_bytes(), "{t:?}");
            assert_eq!(
                m.from.pfn.as_ref().map(ToString::to_string).as_deref(),
                Some(BOTH_S)
            );
        }
        // Each member's marker can only reach itself: it is the next
        // message each sees, so the denied member got none of the jobs and
        // the allowed one nothing extra.
        denied
            .publish("matrix.jobs", "denied marker")
            .await
            .unwrap();
        let m = next_msg(&mut denied_sub, &format!("{t:?} denied member marker")).await;
        assert_eq!(
            &m.payload[..],
            b"denied marker",
            "{t:?}: a job went to the denied member"
        );
        allowed
            .publish("matrix.jobs", "allowed marker")
            .await
            .unwrap();
        let m = next_msg(&mut allowed_sub, &format!("{t:?} allowed member marker")).await;
        assert_eq!(&m.payload[..], b"allowed marker", "{t:?}");
    }
}

#[tokio::test]
async fn a_service_picks_only_allowed_responders() {
    for t in Transport::ALL {
        let d = daemon().await;
        let asker = connect(&d, t, Pkg(BOTH_S)).await;
        let allowed = connect(&d, t, Pkg(BOTH_R)).await;
        let denied = connect(&d, t, Pkg(STRANGER_2)).await;
        answer_with_caller(denied.serve("matrix.pick").await.unwrap(), "denied");
        answer_with_caller(allowed.serve("matrix.pick").await.unwrap(), "allowed");
        answer_with_caller(denied.serve("matrix.pick").await.unwrap(), "denied");
        for i in 0..6 {
            let resp = within("pick", asker.request("matrix.pick", "?"))
                .await
                .unwrap();
            let body = String::from_utf8(resp.payload.to_vec()).unwrap();
            assert_eq!(
                body,
                format!("allowed|{}", client_tag(&asker)),
                "{t:?} call {i}"
            );
        }
        // Only denied responders left: NotAuthorized, not NoResponders.
        answer_with_caller(denied.serve("matrix.only.denied").await.unwrap(), "denied");
        let e = within("only denied", asker.request("matrix.only.denied", "?"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAuthorized, "{t:?}: {e}");
    }
}

#[tokio::test]
async fn a_capability_gated_service_answers_only_holders() {
    for t in Transport::ALL {
        let d = daemon().await;
        let hsa = connect(&d, t, Pkg(HSA)).await;
        let options = ServeOptions {
            require_capability: Some("contoso.hsa".into()),
        };
        answer_with_caller(
            hsa.serve_with("contoso.hsa.telemetry", options)
                .await
                .unwrap(),
            "hsa",
        );
        // An ungated service of the same package: both callers are allowed
        // by the in/out rules.
        answer_with_caller(hsa.serve("contoso.hsa.open").await.unwrap(), "open");

        let capable = connect(&d, t, Pkg(CAPABLE)).await;
        let resp = within(
            "capable call",
            capable.request("contoso.hsa.telemetry", "?"),
        )
        .await
        .unwrap();
        let body = String::from_utf8(resp.payload.to_vec()).unwrap();
        assert_eq!(body, format!("hsa|{}", client_tag(&capable)), "{t:?}");

        let incapable = connect(&d, t, Pkg(INCAPABLE)).await;
        let resp = within(
            "incapable open call",
            incapable.request("contoso.hsa.open", "?"),
        )
        .await
        .unwrap_or_else(|e| panic!("{t:?}: the rules allow INCAPABLE -> HSA: {e}"));
        assert!(resp.is_success());
        let e = within(
            "incapable gated call",
            incapable.request("contoso.hsa.telemetry", "?"),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAuthorized, "{t:?}: {e}");
        // The caller is told why, in words about itself alone.
        assert!(
            e.to_string().ends_with(&format!(
                "not authorized to call service contoso.hsa.telemetry: service \
                 contoso.hsa.telemetry requires capability contoso.hsa, which {INCAPABLE} \
                 does not hold"
            )),
            "{t:?}: {e}"
        );

        // Unpackaged callers hold no capability (and HSA is not exempt).
        let anon = connect(&d, t, Unpackaged).await;
        let e = within(
            "unpackaged gated call",
            anon.request("contoso.hsa.telemetry", "?"),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAuthorized, "{t:?}: {e}");
    }
}

#[tokio::test]
async fn subscriptions_stream_only_what_is_allowed_under_load() {
    // Interleaved allowed and denied publishers on one subject: the
    // receiver sees exactly the allowed sequence, in order.
    const N: usize = 200;
    for t in Transport::ALL {
        let d = daemon().await;
        let receiver = connect(&d, t, Pkg(BOTH_R)).await;
        let good = connect(&d, t, Pkg(BOTH_S)).await;
        let bad = connect(&d, t, Pkg(OUT_S)).await;
        let mut sub = receiver.subscribe("matrix.mixed.>").await.unwrap();
        let send = |c: Client, tag: &'static str| async move {
            for i in 0..N {
                c.publish(format!("matrix.mixed.{tag}").as_str(), format!("{i}"))
                    .await
                    .unwrap();
            }
            c.flush().await.unwrap();
        };
        within("both publishers", async {
            tokio::join!(send(good, "good"), send(bad, "bad"))
        })
        .await;
        for i in 0..N {
            let m = next_msg(&mut sub, &format!("{t:?} good {i}")).await;
            assert_eq!(m.subject.as_str(), "matrix.mixed.good", "{t:?}");
            assert_eq!(m.payload, format!("{i}").as_bytes(), "{t:?}");
        }
        receiver.publish("matrix.mixed.marker", "m").await.unwrap();
        let m = next_msg(&mut sub, "marker").await;
        assert_eq!(
            m.subject.as_str(),
            "matrix.mixed.marker",
            "{t:?}: a denied message got through"
        );
    }
}
