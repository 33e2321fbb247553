//! [`PayloadBuffer`]: a large payload written straight into shared memory
//! (a block of the connection's payload pool, or a fresh memfd), so that
//! over `shm://` the client never copies it.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use busd_proto::Headers;
use busd_transport::{PoolOut, PoolSlot, SegmentBuffer};

use crate::client::Client;
use crate::error::{Error, ErrorKind};
use crate::subject::{IntoSubject, literal};

/// A payload built in place in shared memory: get one from
/// [`Client::payload_buffer`], write into it (it dereferences to
/// `[u8]`), then [`Client::publish_buffer`] sends it. Over `shm://` it is
/// a block of the connection's payload pool (or, when that has no room, a
/// fresh memfd, sealed against any change when sent): the client never
/// copies the payload, as [`Client::publish`] copies it once into shared
/// memory. Over tcp or unix (or with segments turned off) its bytes are
/// sent as usual.
#[derive(Debug)]
pub struct PayloadBuffer(Kind);

#[derive(Debug)]
enum Kind {
    Segment(SegmentBuffer),
    Pooled(Lent),
}

/// A block of the pool, given back if it is never sent.
#[derive(Debug)]
struct Lent {
    slot: Option<PoolSlot>,
    pool: Arc<PoolOut>,
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.pool.cancel(slot);
        }
    }
}

impl Deref for PayloadBuffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Kind::Segment(buffer) => buffer.as_slice(),
            Kind::Pooled(lent) => lent.slot.as_ref().map_or(&[], PoolSlot::as_slice),
        }
    }
}

impl DerefMut for PayloadBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.0 {
            Kind::Segment(buffer) => buffer.as_mut_slice(),
            Kind::Pooled(lent) => lent.slot.as_mut().map_or(&mut [], PoolSlot::as_mut_slice),
        }
    }
}

impl Client {
    /// A zeroed buffer of `len` bytes in shared memory, to write a large
    /// payload into and send with [`publish_buffer`](Client::publish_buffer):
    /// over `shm://` a block of the connection's payload pool (waiting
    /// briefly for one as the daemon hands blocks back, as `publish` does;
    /// given back if dropped unsent), else a fresh memfd.
    ///
    /// # Errors
    /// [`ErrorKind::LimitExceeded`] when no memfd can be made (out of fds
    /// or memory), [`ErrorKind::FrameTooLarge`] for `len` 0 or over the
    /// daemon's `max_frame`.
    ///
    /// ```no_run
    /// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
    /// let mut frame = client.payload_buffer(4 << 20).await?;
    /// frame.fill(0x80); // e.g. render an image straight into it
    /// client.publish_buffer("camera.front.frame", None, frame).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn payload_buffer(&self, len: usize) -> Result<PayloadBuffer, Error> {
        self.buffer(len, true).await
    }

    /// As [`payload_buffer`](Client::payload_buffer), but not zeroed, for a
    /// writer that fills every byte anyway (zeroing a 1 MiB block is about
    /// a fifth of the CPU time a message costs): a block of the pool may
    /// still hold bytes this client itself sent in an earlier payload
    /// (never another process's, as only this client writes its pool).
    /// Write all of it, or the receivers of this payload may read what
    /// was meant for the receivers of that one.
    ///
    /// # Errors
    /// As [`payload_buffer`](Client::payload_buffer).
    pub async fn payload_buffer_unzeroed(&self, len: usize) -> Result<PayloadBuffer, Error> {
        self.buffer(len, false).await
    }

    async fn buffer(&self, len: usize, zeroed: bool) -> Result<PayloadBuffer, Error> {
        let max = self.shared.max_frame() as usize;
        if len == 0 || len > max {
            return Err(Error::new(
                ErrorKind::FrameTooLarge,
                format!("a payload buffer of {len} bytes: it must be 1 to {max} bytes (max_frame)"),
            ));
        }
        // A block of the pool (zeroed if asked, as a fresh memfd is: a
        // block is reused); else a fresh memfd.
        if let Some(pool) = self.shared.pool().filter(|_| self.shared.passes_segments()) {
            let slot = pool.slot_waiting(len, crate::shared::POOL_PATIENCE).await;
            if let Some(mut slot) = slot {
                if zeroed {
                    slot.as_mut_slice().fill(0);
                }
                let lent = Lent {
                    slot: Some(slot),
                    pool,
                };
                return Ok(PayloadBuffer(Kind::Pooled(lent)));
            }
        }
        let fresh = SegmentBuffer::new(len).map(|b| PayloadBuffer(Kind::Segment(b)));
        fresh.map_err(|e| {
            Error::new(
                ErrorKind::LimitExceeded,
                format!("cannot make a {len}-byte payload buffer: {e}"),
            )
            .with_source(e)
        })
    }

    /// Publishes `buffer` to the literal `subject`, with `headers` if given:
    /// a pool block as it is, a memfd sealed first.
    ///
    /// # Errors
    /// As [`publish`](Client::publish); [`ErrorKind::LimitExceeded`] when
    /// the buffer cannot be sealed.
    pub async fn publish_buffer(
        &self,
        subject: impl IntoSubject,
        headers: Option<Headers>,
        buffer: PayloadBuffer,
    ) -> Result<(), Error> {
        let subject = literal(subject, "publish to")?;
        let headers = headers.as_ref();
        let segment = match buffer.0 {
            Kind::Segment(segment) => segment,
            Kind::Pooled(mut lent) => {
                let Some(slot) = lent.slot.take() else {
                    return Ok(());
                };
                let outside = crate::state::Outside::Pooled {
                    offset: slot.offset(),
                    len: slot.len() as u64,
                    pool: Arc::clone(&lent.pool),
                };
                // The bytes go along in case the connection changed since
                // (they then go in the stream; the block goes back).
                return self
                    .submit_pub(&subject, headers, slot.as_slice(), Some(outside))
                    .await;
            }
        };
        let seal_error = |e: std::io::Error| {
            Error::new(
                ErrorKind::LimitExceeded,
                format!("cannot seal a payload buffer: {e}"),
            )
            .with_source(e)
        };
        let fd = segment.seal().map_err(seal_error)?;
        if self.shared.passes_segments() {
            return self
                .submit_pub(
                    &subject,
                    headers,
                    &[],
                    Some(crate::state::Outside::Segment(fd)),
                )
                .await;
        }
        // tcp or unix: the sealed bytes go in the stream.
        let bytes = busd_transport::map_segment(&fd).map_err(seal_error)?;
        self.submit_pub(&subject, headers, &bytes, None).await
    }
}
