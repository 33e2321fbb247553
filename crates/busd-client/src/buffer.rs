//! [`PayloadBuffer`]: a large payload written straight into shared memory,
//! so that over `shm://` it reaches every receiver without a single copy.

use std::ops::{Deref, DerefMut};

use busd_proto::Headers;
use busd_transport::SegmentBuffer;

use crate::client::Client;
use crate::error::{Error, ErrorKind};
use crate::subject::{IntoSubject, literal};

/// A payload built in place in a fresh memfd: get one from
/// [`Client::payload_buffer`], write into it (it dereferences to
/// `[u8]`), then [`Client::publish_buffer`] seals it against any change
/// and sends it. Over `shm://` the daemon passes that very memory to every
/// allowed shm receiver: the payload is never copied, not even once into
/// shared memory as [`Client::publish`] does. Over tcp or unix (or with
/// segments turned off) its bytes are sent as usual.
#[derive(Debug)]
pub struct PayloadBuffer(SegmentBuffer);

impl Deref for PayloadBuffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

impl DerefMut for PayloadBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.0.as_mut_slice()
    }
}

impl Client {
    /// A zeroed buffer of `len` bytes in shared memory, to write a large
    /// payload into and send with [`publish_buffer`](Client::publish_buffer).
    ///
    /// # Errors
    /// [`ErrorKind::LimitExceeded`] when no memfd can be made (out of fds
    /// or memory), [`ErrorKind::FrameTooLarge`] for `len` 0 or over the
    /// daemon's `max_frame`.
    ///
    /// ```no_run
    /// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
    /// let mut frame = client.payload_buffer(4 << 20)?;
    /// frame.fill(0x80); // e.g. render an image straight into it
    /// client.publish_buffer("camera.front.frame", None, frame).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn payload_buffer(&self, len: usize) -> Result<PayloadBuffer, Error> {
        let max = self.shared.max_frame() as usize;
        if len == 0 || len > max {
            return Err(Error::new(
                ErrorKind::FrameTooLarge,
                format!("a payload buffer of {len} bytes: it must be 1 to {max} bytes (max_frame)"),
            ));
        }
        SegmentBuffer::new(len).map(PayloadBuffer).map_err(|e| {
            Error::new(
                ErrorKind::LimitExceeded,
                format!("cannot make a {len}-byte payload buffer: {e}"),
            )
            .with_source(e)
        })
    }

    /// Seals `buffer` and publishes it to the literal `subject`, with
    /// `headers` if given.
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
        let seal_error = |e: std::io::Error| {
            Error::new(
                ErrorKind::LimitExceeded,
                format!("cannot seal a payload buffer: {e}"),
            )
            .with_source(e)
        };
        let fd = buffer.0.seal().map_err(seal_error)?;
        let headers = headers.as_ref();
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
