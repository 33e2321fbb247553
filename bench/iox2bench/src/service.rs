//! The two iceoryx2 services of a run: the publish-subscribe service that
//! carries the payloads and the event service the publisher notifies after
//! each send, which the subscribers sleep on.
//!
//! The parent creates both with the run's settings and holds them until
//! the end, so that they outlive every worker and are removed with its
//! node; the workers open them.

use anyhow::Context as _;
use clap::Args;
use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::event::PortFactory as EventFactory;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory as PubSubFactory;

/// The iceoryx2 services' flavour: inter-process, shared memory.
pub(crate) type Ipc = ipc::Service;

/// The payload service: a slice of bytes of the run's size.
pub(crate) type Data = PubSubFactory<Ipc, [u8], ()>;

/// The run as a worker is told it: which services, and what to expect.
#[derive(Debug, Clone, Args)]
pub(crate) struct Names {
    /// The publish-subscribe service.
    #[arg(long)]
    pub(crate) data: String,
    /// The event service the publisher notifies after each send.
    #[arg(long)]
    pub(crate) event: String,
    /// Payload size in bytes.
    #[arg(long)]
    pub(crate) size: usize,
    /// Messages the publisher sends.
    #[arg(long)]
    pub(crate) count: u64,
    /// Subscribers the publisher waits for before it is ready.
    #[arg(long)]
    pub(crate) subs: u32,
    /// Samples a subscriber's buffer holds.
    #[arg(long)]
    pub(crate) buffer: usize,
    /// A subscriber's wait for its next message, in milliseconds.
    #[arg(long)]
    pub(crate) idle_timeout_ms: u64,
}

impl Names {
    /// Names unique to this process and moment, so that concurrent runs
    /// never share a service.
    pub(crate) fn unique(args: &crate::RunArgs, subs: u32) -> Self {
        let run = format!("iox2bench/{}/{}", std::process::id(), unix_ns());
        Self {
            data: format!("{run}/data"),
            event: format!("{run}/sent"),
            size: args.size,
            count: args.count,
            subs,
            buffer: args.buffer,
            idle_timeout_ms: u64::try_from(args.idle_timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The arguments that give a worker these names.
    pub(crate) fn to_args(&self) -> Vec<String> {
        vec![
            "--data".into(),
            self.data.clone(),
            "--event".into(),
            self.event.clone(),
            "--size".into(),
            self.size.to_string(),
            "--count".into(),
            self.count.to_string(),
            "--subs".into(),
            self.subs.to_string(),
            "--buffer".into(),
            self.buffer.to_string(),
            "--idle-timeout-ms".into(),
            self.idle_timeout_ms.to_string(),
        ]
    }
}

/// A node of this process.
pub(crate) fn node() -> anyhow::Result<Node<Ipc>> {
    NodeBuilder::new()
        .create::<Ipc>()
        .context("cannot create an iceoryx2 node")
}

/// Creates the run's services (the parent's part).
///
/// The payload service never overflows (a full subscriber buffer makes
/// the publisher wait instead of overwriting the oldest sample) and keeps
/// no history; each subscriber buffers `buffer` samples and borrows one
/// at a time. iceoryx2 sizes the publisher's pool from these, so that a
/// loan never fails: subs × (buffer + 1) + 1 samples of `size` bytes.
pub(crate) fn create(node: &Node<Ipc>, names: &Names) -> anyhow::Result<(Data, EventFactory<Ipc>)> {
    let nodes = names.subs as usize + 2;
    let data = node
        .service_builder(&service_name(&names.data)?)
        .publish_subscribe::<[u8]>()
        .max_publishers(1)
        .max_subscribers(names.subs as usize)
        .max_nodes(nodes)
        .history_size(0)
        .subscriber_max_buffer_size(names.buffer)
        .subscriber_max_borrowed_samples(1)
        .enable_safe_overflow(false)
        .create()
        .with_context(|| format!("cannot create the service {}", names.data))?;
    let event = node
        .service_builder(&service_name(&names.event)?)
        .event()
        .max_notifiers(1)
        .max_listeners(names.subs as usize)
        .max_nodes(nodes)
        .create()
        .with_context(|| format!("cannot create the service {}", names.event))?;
    Ok((data, event))
}

/// Opens the payload service the parent created.
pub(crate) fn open_data(node: &Node<Ipc>, names: &Names) -> anyhow::Result<Data> {
    node.service_builder(&service_name(&names.data)?)
        .publish_subscribe::<[u8]>()
        .open()
        .with_context(|| format!("cannot open the service {}", names.data))
}

/// Opens the event service the parent created.
fn open_event(node: &Node<Ipc>, names: &Names) -> anyhow::Result<EventFactory<Ipc>> {
    node.service_builder(&service_name(&names.event)?)
        .event()
        .open()
        .with_context(|| format!("cannot open the service {}", names.event))
}

/// The publisher's end of the event service.
pub(crate) fn notifier(node: &Node<Ipc>, names: &Names) -> anyhow::Result<Notifier<Ipc>> {
    open_event(node, names)?
        .notifier_builder()
        .create()
        .context("cannot create the notifier")
}

/// A subscriber's end of the event service.
pub(crate) fn listener(node: &Node<Ipc>, names: &Names) -> anyhow::Result<Listener<Ipc>> {
    open_event(node, names)?
        .listener_builder()
        .create()
        .context("cannot create the listener")
}

fn service_name(name: &str) -> anyhow::Result<ServiceName> {
    ServiceName::new(name).with_context(|| format!("{name:?} is not a service name"))
}

/// Unix time in nanoseconds, as busd bench stamps its results.
pub(crate) fn unix_ns() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
