//! Attempts to pass as someone else, on every transport: wrong or borrowed
//! tokens, unknown packages, a replayed HMAC, a claim without a proof, a
//! forged sender, and a third party answering someone else's request.
//! Each must fail, and fail without disturbing anyone else.

use busd_client::{Error, ErrorKind};
use busd_e2e::access::{answer_with_caller, client_tag, next_call, next_msg, within};
use busd_e2e::{AuditLog, Package, RawClient, TestDaemon, Transport};
use busd_proto::{AuthKind, ErrorCode, Frame, Op, Pfn, Sender, Status, Subject, auth_mac};

const WEATHER: &str = "Contoso.Weather_8wekyb3d8bbwe";
const MAPS: &str = "Fabrikam.Maps_1234567890abc";
const UNKNOWN: &str = "Nobody.Knows_8wekyb3d8bbwe";

fn packages() -> Vec<Package> {
    vec![
        Package::new(WEATHER).sends_to(&[MAPS]).accepts(&[MAPS]),
        Package::new(MAPS).sends_to(&[WEATHER]).accepts(&[WEATHER]),
    ]
}

async fn daemon() -> TestDaemon {
    TestDaemon::start_with_packages("same-uid", &packages()).await
}

fn pfn(s: &str) -> Pfn {
    Pfn::parse(s).expect("valid pfn")
}

/// Frames until close, bounded.
async fn until_closed(c: &mut RawClient, what: &str) -> Vec<Frame> {
    within(what, c.recv_until_closed()).await
}

#[tokio::test]
async fn a_wrong_token_fails_at_connect() {
    let d = daemon().await;
    d.write_token("tokens/wrong.key", "not the secret of weather");
    for t in Transport::ALL {
        let e = d
            .try_connect_token(t, WEATHER, "tokens/wrong.key")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AuthFailed, "{t:?}: {e}");
        // The right token still works.
        d.connect_as(t, &Package::new(WEATHER)).await;
    }
}

#[tokio::test]
async fn another_packages_token_fails() {
    let d = daemon().await;
    let maps_token = Package::new(MAPS).token_rel();
    for t in Transport::ALL {
        let e = d
            .try_connect_token(t, WEATHER, &maps_token)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AuthFailed, "{t:?}: {e}");
    }
}

// Twelve failed proofs in a row from this uid: paused, the daemon's
// growing waits between them pass at once.
#[tokio::test(start_paused = true)]
async fn a_claim_of_an_unknown_package_fails_as_a_wrong_proof_does() {
    let audit = AuditLog::capture();
    let d = daemon().await;
    d.write_token("tokens/wrong.key", "not the secret of weather");
    let weather_token = Package::new(WEATHER).token_rel();
    // The client's words, but for the package name it claimed.
    let answer = |e: &Error, pfn: &str| e.to_string().replace(pfn, "<pfn>");
    for t in Transport::ALL {
        // Unknown, by token (even a real token of a configured package)
        // and by peer credentials…
        let unknown_token = d
            .try_connect_token(t, UNKNOWN, &weather_token)
            .await
            .unwrap_err();
        let unknown_peer = d.try_connect_peer(t, UNKNOWN).await.unwrap_err();
        // …and configured, with a wrong token and with a proof it does not
        // have (Weather proves itself by token only).
        let wrong_token = d
            .try_connect_token(t, WEATHER, "tokens/wrong.key")
            .await
            .unwrap_err();
        let no_such_proof = d.try_connect_peer(t, WEATHER).await.unwrap_err();
        for e in [&unknown_token, &unknown_peer, &wrong_token, &no_such_proof] {
            assert_eq!(e.kind(), ErrorKind::AuthFailed, "{t:?}: {e}");
        }
        let generic = answer(&wrong_token, WEATHER);
        assert_eq!(answer(&unknown_token, UNKNOWN), generic, "{t:?} token");
        assert_eq!(answer(&unknown_peer, UNKNOWN), generic, "{t:?} peer");
        assert_eq!(answer(&no_such_proof, WEATHER), generic, "{t:?} proof");
        assert!(!generic.contains("configured"), "{t:?}: {generic}");
    }
    // Why each failed is the audit log's to say, with the claim.
    for (pfn, reason, n) in [
        (UNKNOWN, "no such package is configured", 2 * 3),
        (WEATHER, "the token proof does not match", 3),
        (WEATHER, "no peer-credential proof configured", 3),
    ] {
        let records = audit.matching(&["authentication failed", pfn, reason]);
        assert_eq!(records.len(), n, "{reason}: {:?}", audit.lines());
    }
}

#[tokio::test]
async fn a_replayed_hmac_fails_and_the_first_connection_is_unharmed() {
    let d = daemon().await;
    let secret = Package::new(WEATHER).secret();
    let weather = pfn(WEATHER);
    for t in Transport::ALL {
        let url = d.url(t);
        let (mut first, nonce1, mac1, answer) = within(
            "first token handshake",
            RawClient::connect_token(&url, WEATHER, |n| {
                auth_mac(secret.as_bytes(), n, &weather).to_vec()
            }),
        )
        .await;
        match &answer {
            Some(Op::Welcome(w)) => {
                assert_eq!(w.pfn.as_ref(), Some(&weather), "{t:?}");
            }
            other => panic!("{t:?}: the honest handshake was refused: {other:?}"),
        }

        // A second connection replays the first connection's MAC.
        let (mut second, nonce2, _, answer) = within(
            "replayed handshake",
            RawClient::connect_token(&url, WEATHER, |_| mac1.clone()),
        )
        .await;
        assert_ne!(nonce1, nonce2, "{t:?}: nonces must be fresh per connection");
        match &answer {
            Some(Op::Error { code, .. }) => assert_eq!(*code, ErrorCode::AuthFailed, "{t:?}"),
            other => panic!("{t:?}: a replayed MAC must be refused with AuthFailed, got {other:?}"),
        }
        let rest = until_closed(&mut second, "the refused connection to close").await;
        assert!(
            !rest.iter().any(|f| matches!(f.op, Op::Welcome(_))),
            "{t:?}: {rest:?}"
        );

        // The first connection still works.
        let before = within("ping on the first connection", first.ping()).await;
        assert!(before.is_empty(), "{t:?}: {before:?}");
    }
}

#[tokio::test]
async fn a_mac_for_another_package_name_fails() {
    // The MAC binds the package name: Maps' secret over the right nonce,
    // but claimed as Weather, proves nothing.
    let d = daemon().await;
    let maps_secret = Package::new(MAPS).secret();
    let maps = pfn(MAPS);
    for t in Transport::ALL {
        let (mut c, _, _, answer) = within(
            "cross-package MAC",
            RawClient::connect_token(&d.url(t), WEATHER, |n| {
                auth_mac(maps_secret.as_bytes(), n, &maps).to_vec()
            }),
        )
        .await;
        assert!(
            matches!(
                answer,
                Some(Op::Error {
                    code: ErrorCode::AuthFailed,
                    ..
                })
            ),
            "{t:?}: {answer:?}"
        );
        until_closed(&mut c, "close after AuthFailed").await;
    }
}

#[tokio::test]
async fn a_package_claim_without_proof_is_refused() {
    let d = daemon().await;
    for t in Transport::ALL {
        let mut c = RawClient::connect(&d.url(t)).await;
        c.hello(Some(WEATHER), AuthKind::None).await;
        let frames = until_closed(&mut c, "refusal of a claim without proof").await;
        assert!(
            !frames.iter().any(|f| matches!(f.op, Op::Welcome(_))),
            "{t:?}: welcomed without proof: {frames:?}"
        );
        assert_eq!(
            RawClient::error_code(&frames),
            Some(ErrorCode::AuthFailed),
            "{t:?}: {frames:?}"
        );

        // A token proof offered without a package claim is no better.
        let mut c = RawClient::connect(&d.url(t)).await;
        c.hello(None, AuthKind::Token).await;
        let frames = until_closed(&mut c, "refusal of a proof without claim").await;
        assert!(
            !frames.iter().any(|f| matches!(f.op, Op::Welcome(_))),
            "{t:?}: {frames:?}"
        );
        assert!(
            RawClient::error_code(&frames).is_some(),
            "{t:?}: {frames:?}"
        );
    }
}

#[tokio::test]
async fn skipping_the_challenge_is_refused() {
    // Claim with a token, then answer the challenge with something else.
    let d = daemon().await;
    for t in Transport::ALL {
        let mut c = RawClient::connect(&d.url(t)).await;
        c.hello(Some(WEATHER), AuthKind::Token).await;
        let challenge = within("challenge", c.recv()).await.map(|f| f.op);
        assert!(
            matches!(challenge, Some(Op::Challenge { .. })),
            "{t:?}: {challenge:?}"
        );
        c.send(Op::Sub {
            sid: 1,
            subject: Subject::from_static("weather.>"),
            queue: None,
            overflow: Default::default(),
        })
        .await;
        let frames = until_closed(&mut c, "refusal of a Sub instead of Auth").await;
        assert!(
            !frames
                .iter()
                .any(|f| matches!(f.op, Op::Welcome(_) | Op::Msg { .. })),
            "{t:?}: {frames:?}"
        );
        assert!(
            RawClient::error_code(&frames).is_some(),
            "{t:?}: {frames:?}"
        );
    }
}

#[tokio::test]
async fn the_sender_is_what_the_daemon_proved() {
    let d = daemon().await;
    for t in Transport::ALL {
        let maps = d.connect_as(t, &Package::new(MAPS)).await;
        let mut sub = maps.subscribe("spoof.from").await.unwrap();

        // A package: its proven PFN and connection id.
        let weather = d.connect_as(t, &Package::new(WEATHER)).await;
        weather.publish("spoof.from", "from weather").await.unwrap();
        let m = next_msg(&mut sub, "message from weather").await;
        assert_eq!(m.from.client_id, weather.client_id(), "{t:?}");
        assert_eq!(m.from.pfn, Some(pfn(WEATHER)), "{t:?}");

        // Unpackaged: its connection id and no PFN.
        let anon = d.connect_unpackaged(t).await;
        let mut anon_sub = anon.subscribe("spoof.anon").await.unwrap();
        let anon2 = d.connect_unpackaged(t).await;
        anon2.publish("spoof.anon", "from anon2").await.unwrap();
        let m = next_msg(&mut anon_sub, "message from an unpackaged client").await;
        assert_eq!(m.from.client_id, anon2.client_id(), "{t:?}");
        assert_eq!(m.from.pfn, None, "{t:?}");

        // A raw client's Pub has no sender field; the Msg names its Welcome id.
        let (mut raw, welcome) = RawClient::connect_hello(&d.url(t)).await;
        let Op::Welcome(w) = welcome else {
            panic!("{t:?}: {welcome:?}")
        };
        raw.send_frame(Frame::with_payload(
            Op::Pub {
                subject: Subject::from_static("spoof.anon"),
                headers: None,
            },
            bytes::Bytes::from_static(b"raw"),
        ))
        .await;
        let m = next_msg(&mut anon_sub, "message from the raw client").await;
        assert_eq!(
            m.from,
            Sender {
                client_id: w.client_id,
                pfn: None
            },
            "{t:?}"
        );

        // Sending a daemon-only frame with a forged sender: refused, and
        // nothing reaches the subscriber.
        raw.send_frame(Frame::with_payload(
            Op::Msg {
                sid: 1,
                subject: Subject::from_static("spoof.from"),
                from: Sender {
                    client_id: weather.client_id(),
                    pfn: Some(pfn(WEATHER)),
                },
                headers: None,
            },
            bytes::Bytes::from_static(b"forged"),
        ))
        .await;
        let frames = until_closed(&mut raw, "close after a forged Msg").await;
        assert_eq!(
            RawClient::error_code(&frames),
            Some(ErrorCode::ProtocolViolation),
            "{t:?}: {frames:?}"
        );
        weather.publish("spoof.from", "marker").await.unwrap();
        let m = next_msg(&mut sub, "marker after the forged Msg").await;
        assert_eq!(
            &m.payload[..],
            b"marker",
            "{t:?}: the forged Msg was delivered"
        );
    }
}

#[tokio::test]
async fn a_third_party_cannot_answer_someone_elses_request() {
    let d = daemon().await;
    for t in Transport::ALL {
        let responder = d.connect_as(t, &Package::new(MAPS)).await;
        let mut svc = responder.serve("spoof.maps.route").await.unwrap();
        let asker = d.connect_as(t, &Package::new(WEATHER)).await;
        let pending = {
            let asker = asker.clone();
            tokio::spawn(async move { asker.request("spoof.maps.route", "paris").await })
        };
        // The call is pending at the real responder, unanswered.
        let call = next_call(&mut svc, "the real call").await;
        assert_eq!(call.from.client_id, asker.client_id(), "{t:?}");

        // Attackers on both kinds of identity answer every plausible call id.
        let mut attackers = Vec::new();
        let (raw, _) = RawClient::connect_hello(&d.url(t)).await;
        attackers.push(raw);
        let secret = Package::new(WEATHER).secret();
        let weather = pfn(WEATHER);
        let (raw, _, _, answer) = RawClient::connect_token(&d.url(t), WEATHER, |n| {
            auth_mac(secret.as_bytes(), n, &weather).to_vec()
        })
        .await;
        assert!(matches!(answer, Some(Op::Welcome(_))), "{t:?}: {answer:?}");
        attackers.push(raw);
        for attacker in &mut attackers {
            for k in 0..=512u64 {
                attacker
                    .send_frame(Frame::with_payload(
                        Op::Resp {
                            rid: k,
                            status: Status::Success,
                            headers: None,
                        },
                        bytes::Bytes::from_static(b"forged"),
                    ))
                    .await;
            }
            // Every forged answer has been handled once the Pong is back;
            // none of them is for the attacker itself.
            let got = within("attacker ping", attacker.ping()).await;
            assert!(
                !got.iter().any(|f| matches!(f.op, Op::Resp { .. })),
                "{t:?}: {got:?}"
            );
        }
        // Any forged answer the daemon had taken would now be queued for
        // the asker ahead of the real one, and the SDK takes the first.
        call.respond("the real route").await.unwrap();
        let resp = within("the real answer", pending).await.unwrap().unwrap();
        assert_eq!(resp.status, Status::Success, "{t:?}");
        assert_eq!(&resp.payload[..], b"the real route", "{t:?}");
    }
}

#[tokio::test]
async fn only_the_chosen_responder_answers_and_only_once() {
    let d = daemon().await;
    for t in Transport::ALL {
        // Raw responder and raw requester, to see every frame on the wire.
        let (mut responder, _) = RawClient::connect_hello(&d.url(t)).await;
        responder
            .send(Op::Serve {
                sid: 7,
                service: Subject::from_static("spoof.once"),
                require_capability: None,
            })
            .await;
        assert!(within("serve", responder.ping()).await.is_empty(), "{t:?}");
        let (mut asker, _) = RawClient::connect_hello(&d.url(t)).await;
        asker
            .send(Op::Req {
                rid: 1,
                service: Subject::from_static("spoof.once"),
                timeout_ms: 60_000,
                headers: None,
            })
            .await;
        let call = within("the call", responder.recv()).await.expect("call").op;
        let Op::Call {
            rid: call_id,
            sid,
            from,
            ..
        } = call
        else {
            panic!("{t:?}: expected Call, got {call:?}")
        };
        assert_eq!(sid, 7);
        assert_eq!(from.pfn, None);
        for body in [&b"first"[..], b"second"] {
            responder
                .send_frame(Frame::with_payload(
                    Op::Resp {
                        rid: call_id,
                        status: Status::Success,
                        headers: None,
                    },
                    bytes::Bytes::copy_from_slice(body),
                ))
                .await;
        }
        within("responder ping", responder.ping()).await;
        let got = within("the answer", asker.recv()).await.expect("answer");
        assert!(
            matches!(
                got.op,
                Op::Resp {
                    rid: 1,
                    status: Status::Success,
                    ..
                }
            ),
            "{t:?}: {got:?}"
        );
        assert_eq!(&got.payload[..], b"first", "{t:?}");
        // The second answer went nowhere.
        let extra = within("asker ping", asker.ping()).await;
        assert!(
            extra.is_empty(),
            "{t:?}: a second answer arrived: {extra:?}"
        );
    }
}

#[tokio::test]
async fn answering_is_still_possible_for_an_allowed_reply_of_an_sdk_service() {
    // Sanity for the attack test: the same set-up answered honestly.
    let d = daemon().await;
    for t in Transport::ALL {
        let responder = d.connect_as(t, &Package::new(MAPS)).await;
        answer_with_caller(responder.serve("spoof.honest").await.unwrap(), "maps");
        let asker = d.connect_as(t, &Package::new(WEATHER)).await;
        let resp = within("honest answer", asker.request("spoof.honest", "?"))
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8(resp.payload.to_vec()).unwrap(),
            format!("maps|{}", client_tag(&asker)),
            "{t:?}"
        );
    }
}
