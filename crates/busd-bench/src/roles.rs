//! A worker's life, the same in a task and in a process: connect and
//! register (then report ready), wait for the start signal, play the role.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, Conn};
use crate::error::{BenchError, chain};
use crate::spec::{Role, RoleResult, WorkerSpec};
use crate::{pubsub, reqrep};

/// A worker connected and registered, waiting for the start signal.
enum Prepared<C: Conn> {
    Subscriber {
        messages: BoxStream<'static, Bytes>,
        pubs: u16,
        count: Option<u64>,
        idle: Duration,
        /// Held so the connection lives as long as the subscription.
        _conn: C,
    },
    Publisher {
        conn: C,
        subject: C::Subject,
        index: u16,
        count: u64,
        duration: Option<Duration>,
        size: usize,
        window: Option<u64>,
    },
    Responder {
        calls: BoxStream<'static, C::Call>,
        _conn: C,
    },
    Requester {
        conn: C,
        service: C::Subject,
        count: u64,
        duration: Option<Duration>,
        size: usize,
        timeout: Duration,
    },
}

async fn prepare<B: Bus>(spec: &WorkerSpec<B>) -> Result<Prepared<B::Conn>, BenchError> {
    let bus = |what: &str| {
        let what = what.to_owned();
        move |e| BenchError::bus(what, e)
    };
    let url = &spec.url;
    let conn = (spec.bus.connect(url, &spec.name).await)
        .map_err(bus(&format!("cannot connect to {url}")))?;
    Ok(match &spec.role {
        Role::Subscriber {
            subject,
            pubs,
            count,
            idle_timeout_ms,
        } => Prepared::Subscriber {
            messages: (conn.subscribe(subject).await).map_err(bus("cannot subscribe"))?,
            pubs: *pubs,
            count: *count,
            idle: Duration::from_millis(*idle_timeout_ms),
            _conn: conn,
        },
        Role::Publisher {
            subject,
            index,
            count,
            duration_ms,
            size,
            window,
        } => {
            let subject = conn.subject(subject).map_err(bus("invalid subject"))?;
            // The subscriptions are in place: make sure the server has
            // handled them before the clock starts.
            (conn.flush().await).map_err(bus("cannot flush"))?;
            Prepared::Publisher {
                conn,
                subject,
                index: *index,
                count: *count,
                duration: duration_ms.map(Duration::from_millis),
                size: *size,
                window: *window,
            }
        }
        Role::Responder { service } => Prepared::Responder {
            calls: (conn.serve(service).await).map_err(bus("cannot serve"))?,
            _conn: conn,
        },
        Role::Requester {
            service,
            count,
            duration_ms,
            size,
            timeout_ms,
        } => Prepared::Requester {
            service: conn.subject(service).map_err(bus("invalid service name"))?,
            conn,
            count: *count,
            duration: duration_ms.map(Duration::from_millis),
            size: *size,
            timeout: Duration::from_millis(*timeout_ms),
        },
    })
}

impl<C: Conn> Prepared<C> {
    async fn run(self, progress: Arc<AtomicU64>, stop: CancellationToken) -> RoleResult {
        match self {
            Self::Subscriber {
                messages,
                pubs,
                count,
                idle,
                _conn,
            } => pubsub::subscribe(messages, pubs, count, idle, progress, stop).await,
            Self::Publisher {
                conn,
                subject,
                index,
                count,
                duration,
                size,
                window,
            } => {
                let plan = pubsub::Plan {
                    index,
                    count,
                    duration,
                    size,
                    window,
                };
                pubsub::publish(conn, subject, plan).await
            }
            Self::Responder { calls, _conn } => reqrep::respond(calls, stop).await,
            Self::Requester {
                conn,
                service,
                count,
                duration,
                size,
                timeout,
            } => {
                let plan = reqrep::Plan {
                    count,
                    duration,
                    size,
                    timeout,
                };
                reqrep::request(conn, service, plan, progress, stop).await
            }
        }
    }
}

/// Runs one worker: prepares it, sends the outcome on `ready`, waits for
/// `go` (a dropped sender means "never": the worker ends with an error),
/// then plays its role until done or `stop` fires.
///
/// # Errors
/// When preparing fails (also reported on `ready`) or the start never comes.
pub(crate) async fn drive<B: Bus>(
    spec: WorkerSpec<B>,
    ready: oneshot::Sender<Result<(), String>>,
    go: oneshot::Receiver<()>,
    progress: Arc<AtomicU64>,
    stop: CancellationToken,
) -> Result<RoleResult, String> {
    let prepared = match prepare(&spec).await {
        Ok(p) => {
            let _ = ready.send(Ok(()));
            p
        }
        Err(e) => {
            let message = format!(
                "{} worker {}: {}",
                role_name(&spec.role),
                spec.name,
                chain(&e)
            );
            let _ = ready.send(Err(message.clone()));
            return Err(message);
        }
    };
    if go.await.is_err() {
        return Err(format!("{}: the runner never said go", spec.name));
    }
    Ok(prepared.run(progress, stop).await)
}

fn role_name(role: &Role) -> &'static str {
    match role {
        Role::Subscriber { .. } => "subscriber",
        Role::Publisher { .. } => "publisher",
        Role::Responder { .. } => "responder",
        Role::Requester { .. } => "requester",
    }
}
