//! One soak client process: this test binary again (`--exact worker`),
//! told what to be by [`Spec`] in an environment variable: its identity,
//! and a seed from which it picks a transport, then for its lifetime does a mix
//! of what clients do: subscriptions of every overflow policy (some in a
//! queue group, some slow to read, some dropped early), a service (that
//! answers at once, late, with a failure or never), a publisher in bursts
//! of mixed sizes (segments over shm) and a requester. At the end it lets
//! go of everything, flushes and writes what it saw to its report file; a
//! worker the soak kills writes nothing.
//!
//! Every subscriber checks the daemon's promise that messages arrive in
//! publish order per publisher: each payload starts with its publisher's
//! sequence number, which must only grow per sender.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use busd_client::{
    Client, Error, ErrorKind, Message, Overflow, RequestOptions, ServeOptions, Service, Status,
    SubscribeOptions, Subscriber,
};
use futures::StreamExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::rng::Rng;
use crate::rules::{CAPABILITY, IDENTITIES, RETIRED};

/// The environment variable that carries a worker's [`Spec`].
pub(crate) const SPEC_VAR: &str = "BUSD_SOAK_WORKER";

/// Subjects published to; subscriptions take them, `soak.t.*` or `soak.>`.
const TOPICS: u64 = 4;
/// Services served; requests also go to `soak.svc.9`, which nobody serves.
const SERVICES: u64 = 3;

/// What the soak tells one worker.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) id: u64,
    pub(crate) seed: u64,
    /// Which of [`IDENTITIES`] it is (the soak's choice: see `Fleet::spawn`).
    pub(crate) identity: usize,
    pub(crate) life: Duration,
    pub(crate) tcp_url: String,
    pub(crate) unix_path: PathBuf,
    /// Where the packages' token files are.
    pub(crate) config_dir: PathBuf,
    pub(crate) report: PathBuf,
}

impl Spec {
    /// As the environment variable carries it: fields, one per line.
    pub(crate) fn encode(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.id,
            self.seed,
            self.identity,
            self.life.as_millis(),
            self.tcp_url,
            self.unix_path.display(),
            self.config_dir.display(),
            self.report.display()
        )
    }

    pub(crate) fn decode(text: &str) -> Self {
        let f: Vec<&str> = text.lines().collect();
        assert_eq!(f.len(), 8, "a worker spec: {text:?}");
        let num = |s: &str| s.parse::<u64>().expect("a number");
        Self {
            id: num(f[0]),
            seed: num(f[1]),
            identity: num(f[2]) as usize,
            life: Duration::from_millis(num(f[3])),
            tcp_url: f[4].to_owned(),
            unix_path: PathBuf::from(f[5]),
            config_dir: PathBuf::from(f[6]),
            report: PathBuf::from(f[7]),
        }
    }

    /// A URL of one of the three transports, picked by `rng`.
    fn url(&self, rng: &mut Rng) -> (&'static str, String) {
        match rng.range(0, 3) {
            0 => ("tcp", self.tcp_url.clone()),
            1 => ("unix", format!("unix://{}", self.unix_path.display())),
            _ => ("shm", format!("shm://{}", self.unix_path.display())),
        }
    }
}

/// What the worker saw, shared by its tasks.
#[derive(Debug, Default)]
struct Seen {
    published: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    order_violations: AtomicU64,
    requests_ok: AtomicU64,
    answered: AtomicU64,
    /// Failures by what failed and the error's kind, e.g. `request
    /// Timeout`: expected in a soak, reported to show what happened.
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Seen {
    fn error(&self, what: &str, e: &Error) {
        self.failure(&format!("{what} {:?}", e.kind()));
    }

    fn failure(&self, what: &str) {
        *self
            .errors
            .lock()
            .expect("not poisoned")
            .entry(what.to_owned())
            .or_default() += 1;
    }
}

/// Runs the worker described by `spec`, then writes its report.
pub(crate) fn run(spec: &Spec) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let seen = Arc::new(Seen::default());
    let choices = runtime.block_on(work(spec, &seen));
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let errors = seen.errors.lock().expect("not poisoned").clone();
    let report = serde_json::json!({
        "id": spec.id,
        "choices": choices,
        "published": n(&seen.published),
        "received": n(&seen.received),
        "dropped": n(&seen.dropped),
        "order_violations": n(&seen.order_violations),
        "requests_ok": n(&seen.requests_ok),
        "answered": n(&seen.answered),
        "errors": errors,
    });
    let tmp = spec.report.with_extension("tmp");
    std::fs::write(&tmp, report.to_string()).expect("write the report");
    std::fs::rename(&tmp, &spec.report).expect("publish the report");
}

/// Connects and runs the mix until the worker's life is over; what it
/// chose, for the report.
async fn work(spec: &Spec, seen: &Arc<Seen>) -> String {
    let mut rng = Rng::new(spec.seed);
    let (transport, url) = spec.url(&mut rng);
    let (name, pfn) = IDENTITIES[spec.identity];
    // Retired's reconnects would fail their proofs once a reload removed
    // it (see `Fleet::spawn`).
    let reconnect = pfn != Some(RETIRED) && rng.chance(20);
    let mut choices = format!("{transport} {name} reconnect={reconnect}");
    let client = match connect(&url, pfn, spec, reconnect).await {
        Ok(c) => c,
        Err(why) => {
            seen.failure(&format!("connect {why}"));
            return choices;
        }
    };
    // Some requesters use a client of their own (as the SDK advises for
    // requests made while messages pour in), over another transport.
    let requester = if rng.chance(30) {
        let (_, url) = spec.url(&mut rng);
        connect(&url, pfn, spec, reconnect).await.ok()
    } else {
        None
    };
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let roles = Roles {
        client: &client,
        requester: requester.as_ref().unwrap_or(&client),
        life: spec.life,
        stop: &stop,
        seen,
    };
    roles.start(&mut rng, &mut tasks, &mut choices).await;
    tokio::time::sleep(spec.life).await;
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    for c in std::iter::once(&client).chain(requester.as_ref()) {
        // Answers still owed reach the daemon before the worker exits.
        match tokio::time::timeout(Duration::from_secs(5), c.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => seen.error("flush", &e),
            Err(_) => seen.failure("flush hung"),
        }
    }
    choices
}

/// Connects to `url` as `pfn` (proven by its token), or unpackaged; the
/// error's kind if it cannot.
async fn connect(
    url: &str,
    pfn: Option<&str>,
    spec: &Spec,
    reconnect: bool,
) -> Result<Client, String> {
    let mut builder = Client::builder(url)
        .name(format!("soak-worker-{}", spec.id))
        .reconnect(reconnect);
    if let Some(pfn) = pfn {
        let token = spec.config_dir.join(format!("tokens/{pfn}.key"));
        builder = builder.pfn(pfn).token_file(token);
    }
    match tokio::time::timeout(Duration::from_secs(10), builder.connect()).await {
        Ok(connected) => connected.map_err(|e| format!("{:?}", e.kind())),
        Err(_) => Err("hung".to_owned()),
    }
}

/// What the worker's tasks share while they start.
struct Roles<'a> {
    client: &'a Client,
    requester: &'a Client,
    life: Duration,
    stop: &'a CancellationToken,
    seen: &'a Arc<Seen>,
}

impl Roles<'_> {
    /// Picks and starts the worker's subscriptions, service, publisher and
    /// requester, noting each in `choices`.
    async fn start(&self, rng: &mut Rng, tasks: &mut JoinSet<()>, choices: &mut String) {
        for _ in 0..rng.range(0, 4) {
            let Some(sub) = self.subscribe(rng, choices).await else {
                continue;
            };
            let pace = Pace {
                slow: rng
                    .chance(30)
                    .then(|| Duration::from_millis(rng.range(2, 30))),
                slow_for: self.life.mul_f64(0.6),
                until: rng.chance(20).then(|| self.life.mul_f64(0.5)),
            };
            let seen = Arc::clone(self.seen);
            tasks.spawn(consume(sub, pace, self.stop.clone(), seen));
        }
        if rng.chance(40) {
            let service = format!("soak.svc.{}", rng.range(0, SERVICES));
            let options = ServeOptions {
                require_capability: rng.chance(25).then(|| CAPABILITY.to_owned()),
            };
            choices.push_str(&format!(" serve={service}"));
            match self.client.serve_with(service.as_str(), options).await {
                Ok(svc) => {
                    let seen = Arc::clone(self.seen);
                    tasks.spawn(answer(svc, rng.fork(), self.stop.clone(), seen));
                }
                Err(e) => self.seen.error("serve", &e),
            }
        }
        if rng.chance(60) {
            choices.push_str(" publish");
            let (client, seen) = (self.client.clone(), Arc::clone(self.seen));
            tasks.spawn(publish(client, rng.fork(), self.stop.clone(), seen));
        }
        if rng.chance(50) {
            choices.push_str(" request");
            let (client, seen) = (self.requester.clone(), Arc::clone(self.seen));
            tasks.spawn(request(client, rng.fork(), self.stop.clone(), seen));
        }
    }

    /// A subscription to a topic, `soak.t.*` or `soak.>`, with any
    /// overflow policy, sometimes in a queue group.
    async fn subscribe(&self, rng: &mut Rng, choices: &mut String) -> Option<Subscriber> {
        let subject = match rng.range(0, 6) {
            0 => "soak.t.*".to_owned(),
            1 => "soak.>".to_owned(),
            _ => format!("soak.t.{}", rng.range(0, TOPICS)),
        };
        let overflow = *rng.pick(&[
            Overflow::Disconnect,
            Overflow::Disconnect,
            Overflow::DropOldest,
            Overflow::Block,
        ]);
        let queue = rng.chance(20).then(|| "workers".to_owned());
        choices.push_str(&format!(" sub={subject}/{overflow:?}"));
        let options = SubscribeOptions { queue, overflow };
        match self.client.subscribe_with(subject.as_str(), options).await {
            Ok(sub) => Some(sub),
            Err(e) => {
                self.seen.error("subscribe", &e);
                None
            }
        }
    }
}

/// How a subscriber reads: `slow` sleeps after each message for the
/// first `slow_for` of its life (so that its queue overflows), then it
/// catches up (so that it is told what was dropped before it leaves); it
/// lets go of its subscription after `until` (an unsubscribe mid-life).
#[derive(Debug, Clone, Copy)]
struct Pace {
    slow: Option<Duration>,
    slow_for: Duration,
    until: Option<Duration>,
}

/// Reads `sub` until stopped, checking publish order per sender; then,
/// leaving, takes what is already on its way for a moment (so that drop
/// notices behind it arrive too).
async fn consume(mut sub: Subscriber, pace: Pace, stop: CancellationToken, seen: Arc<Seen>) {
    let start = tokio::time::Instant::now();
    let deadline = pace.until.map(|until| start + until);
    let mut order = Order::default();
    loop {
        let leave = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let msg = tokio::select! {
            () = stop.cancelled() => break,
            () = leave => break,
            msg = sub.next() => msg,
        };
        // Ended by the daemon (a slow consumer cut off, a reload).
        let Some(msg) = msg else { break };
        order.check(&msg, &seen);
        if let Some(pause) = pace.slow.filter(|_| start.elapsed() < pace.slow_for) {
            tokio::time::sleep(pause).await;
        }
    }
    let catch_up = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < catch_up {
        match tokio::time::timeout(Duration::from_millis(100), sub.next()).await {
            Ok(Some(msg)) => order.check(&msg, &seen),
            Ok(None) | Err(_) => break,
        }
    }
    seen.dropped.fetch_add(sub.dropped(), Ordering::Relaxed);
}

/// The last sequence number seen from each sender, on one subscription.
#[derive(Debug, Default)]
struct Order(HashMap<u64, u64>);

impl Order {
    /// Counts `msg`, and a violation if its sender's sequence went back.
    fn check(&mut self, msg: &Message, seen: &Seen) {
        seen.received.fetch_add(1, Ordering::Relaxed);
        let seq = msg
            .payload
            .get(..8)
            .map_or(0, |b| u64::from_be_bytes(b.try_into().expect("8 bytes")));
        let previous = self.0.insert(msg.from.client_id, seq);
        if previous.is_some_and(|p| p >= seq) {
            seen.order_violations.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Answers calls until stopped: mostly at once, some late, some with a
/// failure, some never (the requester times out).
async fn answer(mut svc: Service, mut rng: Rng, stop: CancellationToken, seen: Arc<Seen>) {
    let mut late = JoinSet::new();
    loop {
        let request = tokio::select! {
            () = stop.cancelled() => break,
            r = svc.next() => r,
        };
        let Some(request) = request else { break };
        let roll = rng.range(0, 100);
        let seen = Arc::clone(&seen);
        let reply = async move {
            let sent = if roll < 7 {
                request.respond_failure("no").await
            } else {
                request.respond("yes").await
            };
            match sent {
                Ok(()) => seen.answered.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    seen.error("answer", &e);
                    0
                }
            };
        };
        match roll {
            0..85 => reply.await,
            85..92 => drop(reply), // never answered
            _ => {
                let delay = Duration::from_millis(rng.range(0, 400));
                late.spawn(async move {
                    tokio::time::sleep(delay).await;
                    reply.await;
                });
            }
        }
    }
    late.abort_all();
}

/// Publishes in bursts at 20 to 800 messages a second until stopped:
/// mostly small payloads, some of a few KiB, a few of 70 KiB (sealed
/// segments over shm). Each starts with its sequence number.
async fn publish(client: Client, mut rng: Rng, stop: CancellationToken, seen: Arc<Seen>) {
    let rate = rng.range(20, 800);
    let mut seq = 0_u64;
    while !stop.is_cancelled() {
        let burst = rng.range(1, 50);
        for _ in 0..burst {
            seq += 1;
            let len = match rng.range(0, 100) {
                0..3 => 70 * 1024,
                3..18 => rng.range(1024, 8192),
                _ => rng.range(8, 256),
            } as usize;
            let mut payload = vec![0x5a; len];
            payload[..8].copy_from_slice(&seq.to_be_bytes());
            let subject = format!("soak.t.{}", rng.range(0, TOPICS));
            match client.publish(subject.as_str(), payload).await {
                Ok(()) => seen.published.fetch_add(1, Ordering::Relaxed),
                Err(e) if e.kind() == ErrorKind::Closed => return seen.error("publish", &e),
                Err(e) => {
                    seen.error("publish", &e);
                    0
                }
            };
        }
        let pause = Duration::from_millis(burst * 1000 / rate);
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// Calls services (one that nobody serves among them) until stopped,
/// with timeouts of 0.1 to 1 s.
async fn request(client: Client, mut rng: Rng, stop: CancellationToken, seen: Arc<Seen>) {
    while !stop.is_cancelled() {
        let n = rng.range(0, SERVICES + 1);
        let service = if n == SERVICES {
            "soak.svc.9".to_owned()
        } else {
            format!("soak.svc.{n}")
        };
        let options = RequestOptions {
            timeout: Some(Duration::from_millis(rng.range(100, 1000))),
            headers: None,
        };
        let asked = tokio::select! {
            () = stop.cancelled() => return,
            r = client.request_with(service.as_str(), "q", options) => r,
        };
        match asked {
            Ok(resp) if resp.status == Status::Success => {
                seen.requests_ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => seen.failure("request Failure"),
            Err(e) if e.kind() == ErrorKind::Closed => return seen.error("request", &e),
            Err(e) => seen.error("request", &e),
        }
        let pause = Duration::from_millis(rng.range(5, 100));
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(pause) => {}
        }
    }
}
