//! Clients and the daemon's side of their connections, joined by byte
//! buffers: frames are encoded and decoded with the real codec, each
//! connection's ops go through its own [`Session`], and the steps it
//! returns are carried out on one [`Router`], as the daemon's tokio
//! session does, but with no socket, no runtime and a clock moved by hand.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use busd_core::{NONCE_LEN, Peer, ProtocolError, Router, RouterLimits, Session, Step};
use busd_policy::Policy;
use busd_proto::{ErrorCode, Frame, FrameCodec, Op, Ref, Status, Welcome};
use bytes::BytesMut;
use tokio_util::codec::Decoder;

/// The nonce every challenge here carries.
pub(crate) const NONCE: [u8; NONCE_LEN] = [7; NONCE_LEN];

/// One connection: the daemon's state machine and the bytes each way.
struct End {
    session: Session,
    uid: Option<u32>,
    /// Client → daemon.
    up: BytesMut,
    /// Daemon → client.
    down: BytesMut,
    closed: bool,
}

/// A bus of in-memory connections.
pub(crate) struct Pair {
    pub(crate) router: Router<u64>,
    policy: Arc<Policy>,
    pub(crate) now: Instant,
    ends: HashMap<u64, End>,
    /// Whether the request timer had to be woken by the last request.
    pub(crate) woke_timer: Option<bool>,
}

impl Pair {
    pub(crate) fn new(policy: Policy) -> Self {
        let policy = Arc::new(policy);
        Self {
            router: Router::new(Arc::clone(&policy), RouterLimits::default()),
            policy,
            now: Instant::now(),
            ends: HashMap::new(),
            woke_timer: None,
        }
    }

    /// A new connection `conn` from a peer of `uid`.
    pub(crate) fn open(&mut self, conn: u64, uid: u32) {
        let end = End {
            session: Session::new(),
            uid: Some(uid),
            up: BytesMut::new(),
            down: BytesMut::new(),
            closed: false,
        };
        self.ends.insert(conn, end);
    }

    /// The client of `conn` sends `op`; the daemon's side handles it.
    pub(crate) fn send(&mut self, conn: u64, op: Op) {
        let end = self.ends.get_mut(&conn).expect("open connection");
        Frame::new(op).encode(&mut end.up).expect("encode");
        let mut codec = FrameCodec::new(1 << 20);
        let mut frames = Vec::new();
        while let Some(frame) = codec.decode(&mut end.up).expect("decode") {
            frames.push(frame);
        }
        for frame in frames {
            self.handle(conn, frame.op);
        }
    }

    /// What the client of `conn` has received since last asked.
    pub(crate) fn recv(&mut self, conn: u64) -> Vec<Op> {
        let end = self.ends.get_mut(&conn).expect("open connection");
        let mut codec = FrameCodec::new(1 << 20);
        let mut ops = Vec::new();
        while let Some(frame) = codec.decode(&mut end.down).expect("decode") {
            ops.push(frame.op);
        }
        ops
    }

    /// Whether the daemon closed `conn`.
    pub(crate) fn is_closed(&self, conn: u64) -> bool {
        self.ends[&conn].closed
    }

    /// Whether `conn`'s last op was a request or a reply.
    pub(crate) fn is_exchanging(&self, conn: u64) -> bool {
        self.ends[&conn].session.is_exchanging()
    }

    /// Moves the clock on and answers `Timeout` to what is due, as the
    /// daemon's timer task does when it wakes.
    pub(crate) fn advance(&mut self, by: Duration) {
        self.now += by;
        for u in self.router.expire(self.now) {
            let op = Op::Resp {
                rid: u.rid,
                status: Status::Timeout,
                headers: None,
            };
            self.deliver(u.requester, op);
        }
        self.router.next_deadline();
    }

    fn deliver(&mut self, conn: u64, op: Op) {
        if let Some(end) = self.ends.get_mut(&conn) {
            Frame::new(op).encode(&mut end.down).expect("encode");
        }
    }

    fn handle(&mut self, conn: u64, op: Op) {
        let end = self.ends.get_mut(&conn).expect("open connection");
        let peer = Peer {
            uid: end.uid,
            ..Peer::default()
        };
        let now = self.now;
        let step = if end.session.is_open() {
            end.session.on_op(op, || now)
        } else {
            end.session.on_handshake(op, &self.policy, &peer)
        };
        match step {
            Ok(step) => self.carry_out(conn, step),
            Err(e) => self.refuse(conn, &e),
        }
    }

    fn refuse(&mut self, conn: u64, e: &ProtocolError) {
        let op = Op::Error {
            code: e.code(),
            message: e.to_string(),
            refers: e.refers(),
        };
        self.deliver(conn, op);
        if e.is_fatal() {
            self.ends.get_mut(&conn).expect("open").closed = true;
            self.router.disconnect(conn);
        }
    }

    fn router_error(&mut self, conn: u64, sid: u64, e: &busd_core::RouterError) {
        let op = Op::Error {
            code: e.code(),
            message: e.to_string(),
            refers: Some(Ref::Sid(sid)),
        };
        self.deliver(conn, op);
    }

    fn carry_out(&mut self, conn: u64, step: Step) {
        match step {
            Step::Challenge => {
                let end = self.ends.get_mut(&conn).expect("open");
                match end.session.challenge(Some(NONCE)) {
                    Ok(op) => self.deliver(conn, op),
                    Err(e) => self.refuse(conn, &e),
                }
            }
            Step::Welcome(identity) => {
                let pfn = identity.pfn.clone();
                match self.router.connect(conn, identity, conn) {
                    Ok(()) => self.deliver(conn, welcome(conn, pfn)),
                    Err(e) => self.deliver(conn, error(e.code(), e.to_string())),
                }
            }
            Step::Publish { subject, headers } => {
                let mut targets = Vec::new();
                self.router.publish(conn, &subject, &mut targets);
                let from = self.router.sender(conn).expect("registered").clone();
                for t in targets {
                    let msg = Op::Msg {
                        sid: t.sid,
                        subject: subject.clone(),
                        from: from.clone(),
                        headers: headers.clone(),
                    };
                    self.deliver(t.handle, msg);
                }
            }
            Step::Subscribe {
                sid,
                subject,
                queue,
                overflow,
            } => {
                if let Err(e) = self.router.subscribe(conn, sid, subject, queue, overflow) {
                    self.router_error(conn, sid, &e);
                }
            }
            Step::Serve {
                sid,
                service,
                require_capability,
            } => {
                if let Err(e) = self.router.serve(conn, sid, service, require_capability) {
                    self.router_error(conn, sid, &e);
                }
            }
            Step::Unsubscribe { sid } => {
                self.router.unsubscribe(conn, sid);
            }
            Step::Request {
                rid,
                service,
                received,
                deadline,
                headers,
            } => match self
                .router
                .request(conn, rid, &service, (received, deadline))
            {
                Ok(r) => {
                    self.woke_timer = Some(r.wake_timer);
                    let call = Op::Call {
                        rid: r.call_id,
                        sid: r.sid,
                        service,
                        from: r.from,
                        headers,
                    };
                    self.deliver(r.responder, call);
                }
                Err(e) => match e.status() {
                    Some(status) => self.deliver(conn, resp(rid, status)),
                    None => self.deliver(
                        conn,
                        Op::Error {
                            code: e.code(),
                            message: e.to_string(),
                            refers: Some(Ref::Rid(rid)),
                        },
                    ),
                },
            },
            Step::Respond {
                call_id,
                status,
                headers,
            } => {
                if let Some(u) = self.router.respond(conn, call_id, status) {
                    let op = Op::Resp {
                        rid: u.rid,
                        status,
                        headers,
                    };
                    self.deliver(u.requester, op);
                }
            }
            Step::Pong => self.deliver(conn, Op::Pong),
            // Ctl is the daemon's (it needs the daemon's state); nothing else to do.
            _ => {}
        }
    }
}

fn welcome(conn: u64, pfn: Option<busd_proto::Pfn>) -> Op {
    Op::Welcome(Welcome {
        client_id: conn,
        pfn,
        limits: busd_proto::Limits {
            max_frame: 1 << 20,
            max_pending_msgs: 1024,
            max_pending_bytes: 1 << 20,
        },
        fds: false,
        set_pools: false,
    })
}

fn error(code: ErrorCode, message: String) -> Op {
    Op::Error {
        code,
        message,
        refers: None,
    }
}

/// A daemon's answer to request `rid`.
pub(crate) fn resp(rid: u64, status: Status) -> Op {
    Op::Resp {
        rid,
        status,
        headers: None,
    }
}
