//! A panic in one connection's task closes that connection only; the
//! daemon serves everyone else on (a test-only hook injects the panic).

use std::time::Duration;

use busd_daemon::Hooks;
use busd_e2e::{RawClient, TestDaemon, Transport};
use busd_proto::{Op, Overflow, Subject};

/// The sid whose `Unsub` panics the daemon's task for that connection.
const POISON: u64 = 666;

#[tokio::test]
async fn a_panic_in_one_connections_task_closes_only_that_connection() {
    let hooks = Hooks::on_op(|_, op| {
        if matches!(op, Op::Unsub { sid: POISON }) {
            panic!("injected fault");
        }
    });
    let d = TestDaemon::start_hooked(hooks).await;
    for t in Transport::ALL {
        let url = d.url(t);
        let (mut bystander, _) = RawClient::connect_hello(&url).await;
        let before = d.daemon().connection_count();
        let (mut victim, _) = RawClient::connect_hello(&url).await;
        victim
            .send(Op::Sub {
                sid: 1,
                subject: Subject::from_static("anything"),
                queue: None,
                overflow: Overflow::Disconnect,
            })
            .await;
        victim.ping().await;
        victim.send(Op::Unsub { sid: POISON }).await;
        // Its connection ends: the daemon closed it (bounded, so a
        // connection left open fails the test rather than hanging it).
        tokio::time::timeout(Duration::from_secs(20), victim.recv_until_closed())
            .await
            .unwrap_or_else(|_| panic!("{t:?}: the panicked connection was left open"));
        assert_eq!(
            d.daemon().connection_count(),
            before,
            "{t:?}: the panicked connection left the router"
        );
        // Everyone else is served on.
        bystander.ping().await;
        let (mut newcomer, welcome) = RawClient::connect_hello(&url).await;
        assert!(matches!(welcome, Op::Welcome(_)), "{t:?}: {welcome:?}");
        newcomer.ping().await;
    }
}
