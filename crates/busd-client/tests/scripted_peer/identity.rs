//! Package identity against the scripted peer: the token proof (checked with
//! the same `auth_mac` the daemon uses), peer-credential claims, refusals,
//! capability-gated services and ctl commands.

use busd_client::{CtlCommand, ErrorKind, Pfn, ServeOptions, Status};
use busd_proto::{AuthKind, ErrorCode, Hello, Ref, auth_mac};
use serde_bytes::ByteBuf;

use super::*;

const PFN: &str = "Contoso.Weather_8wekyb3d8bbwe";

fn pfn() -> Pfn {
    Pfn::parse(PFN).unwrap()
}

fn welcome(client_id: u64, pfn: Option<Pfn>) -> Op {
    Op::Welcome(Welcome {
        client_id,
        pfn,
        limits: LIMITS,
        fds: false,
        set_pools: false,
    })
}

/// Plays the daemon's side of a token proof: checks the claim, challenges
/// with `nonce` and returns whether the client's MAC is the one `token` gives.
async fn challenge(conn: &mut PeerConn, hello: &Hello, token: &[u8], nonce: &[u8]) -> bool {
    assert_eq!(
        (hello.pfn.as_ref(), hello.auth),
        (Some(&pfn()), AuthKind::Token)
    );
    let nonce_buf = ByteBuf::from(nonce.to_vec());
    conn.send(Op::Challenge { nonce: nonce_buf }).await;
    let op = conn.recv().await.op;
    let Op::Auth { hmac } = op else {
        panic!("expected Auth, got {op:?}");
    };
    hmac.as_slice() == auth_mac(token, nonce, &pfn()).as_slice()
}

#[tokio::test]
async fn token_proof_answers_the_challenge_and_again_on_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("weather.key");
    std::fs::write(&token_file, "first-token\n").unwrap();
    let (peer, url) = Peer::bind().await;
    let connecting = Client::builder(&url)
        .pfn(PFN)
        .token_file(&token_file)
        .connect();
    let daemon = async {
        let (mut conn, hello) = peer.accept_hello().await;
        assert!(challenge(&mut conn, &hello, b"first-token", b"nonce-1").await);
        conn.send(welcome(7, Some(pfn()))).await;
        conn
    };
    let (client, mut conn) = tokio::join!(connecting, daemon);
    let client = client.expect("the token proof is accepted");
    assert_eq!(client.pfn(), Some(pfn()));

    let serving = tokio::spawn({
        let client = client.clone();
        async move {
            let options = ServeOptions {
                require_capability: Some("contoso.hsa".into()),
            };
            client.serve_with("contoso.hsa.telemetry", options).await
        }
    });
    let serve_op = conn.confirm().await;
    assert!(
        matches!(&serve_op, Op::Serve { require_capability: Some(cap), .. } if cap == "contoso.hsa"),
        "{serve_op:?}"
    );
    let _service = serving.await.unwrap().unwrap();

    // The token is rotated while the daemon restarts: the reconnect reads
    // the file again and proves the same package with the new token.
    std::fs::write(&token_file, "second-token").unwrap();
    drop(conn);
    let (mut conn, hello) = peer.accept_hello().await;
    assert!(challenge(&mut conn, &hello, b"second-token", b"nonce-2").await);
    conn.send(welcome(8, Some(pfn()))).await;
    assert_eq!(
        conn.recv().await.op,
        serve_op,
        "Serve again, capability kept"
    );
    assert_eq!((client.client_id(), client.pfn()), (8, Some(pfn())));
}

#[tokio::test]
async fn a_wrong_token_fails_with_auth_failed() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("weather.key");
    std::fs::write(&token_file, "not-the-token").unwrap();
    let (peer, url) = Peer::bind().await;
    let connecting = Client::builder(&url)
        .pfn(PFN)
        .token_file(&token_file)
        .connect();
    let daemon = async {
        let (mut conn, hello) = peer.accept_hello().await;
        assert!(!challenge(&mut conn, &hello, b"the-token", b"nonce").await);
        conn.send(Op::Error {
            code: ErrorCode::AuthFailed,
            message: "the token proof does not match".into(),
            refers: None,
        })
        .await;
    };
    let (result, ()) = tokio::join!(connecting, daemon);
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AuthFailed, "{err}");
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[tokio::test]
async fn a_peer_claim_sends_no_token_and_cannot_answer_a_challenge() {
    let (peer, url) = Peer::bind().await;
    let connecting = Client::builder(&url).pfn(PFN).connect();
    let daemon = async {
        let (mut conn, hello) = peer.accept_hello().await;
        assert_eq!(
            (hello.pfn.as_ref(), hello.auth),
            (Some(&pfn()), AuthKind::Peer)
        );
        let nonce = ByteBuf::from(b"nonce".to_vec());
        conn.send(Op::Challenge { nonce }).await;
        assert!(
            conn.try_recv().await.is_none(),
            "no Auth, connection closed"
        );
    };
    let (result, ()) = tokio::join!(connecting, daemon);
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AuthFailed, "{err}");
    assert!(err.to_string().contains("no token file"), "{err}");

    // Refused outright: the daemon's AuthFailed keeps its kind.
    let connecting = Client::builder(&url).pfn(PFN).connect();
    let daemon = async {
        let (mut conn, _) = peer.accept_hello().await;
        conn.send(Op::Error {
            code: ErrorCode::AuthFailed,
            message: "uid 1000 does not prove package".into(),
            refers: None,
        })
        .await;
    };
    let (result, ()) = tokio::join!(connecting, daemon);
    assert_eq!(result.unwrap_err().kind(), ErrorKind::AuthFailed);
}

#[tokio::test]
async fn a_welcome_for_another_identity_is_refused() {
    let (peer, url) = Peer::bind().await;
    let connecting = Client::builder(&url).pfn(PFN).connect();
    let daemon = async {
        let (mut conn, _) = peer.accept_hello().await;
        conn.send(welcome(7, None)).await;
    };
    let (result, ()) = tokio::join!(connecting, daemon);
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(err.to_string().contains("unpackaged"), "{err}");

    // Unpackaged: no claim, no proof.
    let (client, (_conn, hello)) = tokio::join!(Client::connect(&url), peer.accept(9));
    assert_eq!((hello.pfn, hello.auth), (None, AuthKind::None));
    assert_eq!(client.unwrap().pfn(), None);
}

#[tokio::test]
async fn ctl_returns_json_and_refusals_as_kinds() {
    let (peer, url) = Peer::bind().await;
    let (client, mut conn) = connect(&peer, &url, true).await;
    let running = tokio::spawn(async move {
        (
            client.ctl(CtlCommand::Stats).await,
            client.ctl(CtlCommand::Reload).await,
            client.ctl(CtlCommand::Clients).await,
        )
    });
    let answers: [(CtlCommand, Option<Status>, &str); 3] = [
        (
            CtlCommand::Stats,
            Some(Status::Success),
            r#"{"connections": 2}"#,
        ),
        (CtlCommand::Reload, Some(Status::NotAuthorized), ""),
        (CtlCommand::Clients, None, ""),
    ];
    for (expected, status, payload) in answers {
        let op = conn.recv().await.op;
        let Op::Ctl { rid, command } = op else {
            panic!("expected Ctl, got {op:?}");
        };
        assert_eq!(command, expected);
        match status {
            Some(status) => {
                let resp = Op::Resp {
                    rid,
                    status,
                    headers: None,
                };
                conn.send_with(resp, payload).await;
            }
            None => {
                conn.send(Op::Error {
                    code: ErrorCode::NotAuthorized,
                    message: "not an admin".into(),
                    refers: Some(Ref::Rid(rid)),
                })
                .await;
            }
        }
    }
    let (stats, reload, clients) = running.await.unwrap();
    assert_eq!(stats.unwrap()["connections"], 2);
    let err = reload.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotAuthorized);
    assert!(err.to_string().contains("ctl reload"), "{err}");
    assert_eq!(clients.unwrap_err().kind(), ErrorKind::NotAuthorized);
}
