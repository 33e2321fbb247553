//! A received payload as the daemon passes it on: bytes, or a sealed
//! segment whose bytes are mapped only if a receiver cannot take its fd.
//!
//! Most segments go to shm receivers as the same fd, so the daemon never
//! needs their bytes; mapping each one anyway (and unmapping it, with the
//! TLB flush that costs) was a tenth of its time under large fan-outs.

use busd_proto::SegmentFd;
use bytes::Bytes;

/// One frame's payload, for every receiver of that frame.
#[derive(Debug)]
pub(crate) struct Payload {
    /// The inline bytes, or the segment's once mapped.
    bytes: Option<Bytes>,
    segment: Option<SegmentFd>,
}

impl Payload {
    /// The payload of a decoded frame: `bytes`, or when the frame came with
    /// a `segment`, that (the decoder left `bytes` empty: see
    /// [`busd_transport::Mapping::Unmapped`]).
    pub(crate) fn new(bytes: Bytes, segment: Option<SegmentFd>) -> Self {
        match segment {
            Some(segment) => Self {
                bytes: None,
                segment: Some(segment),
            },
            None => Self {
                bytes: Some(bytes),
                segment: None,
            },
        }
    }

    /// Its length in bytes.
    pub(crate) fn len(&self) -> usize {
        match (&self.segment, &self.bytes) {
            // Checked against max_frame (a u32) when decoded.
            (Some(segment), _) => usize::try_from(segment.len()).unwrap_or(usize::MAX),
            (None, Some(bytes)) => bytes.len(),
            (None, None) => 0,
        }
    }

    /// The segment, for a receiver that takes fds.
    pub(crate) fn segment(&self) -> Option<&SegmentFd> {
        self.segment.as_ref()
    }

    /// The bytes, for a receiver that does not take fds: the segment is
    /// mapped the first time one asks, and once for all of them.
    ///
    /// # Errors
    /// The error of mapping the segment (it was checked when decoded, so
    /// only a lack of memory or address space).
    pub(crate) fn bytes(&mut self) -> std::io::Result<Bytes> {
        if let Some(bytes) = &self.bytes {
            return Ok(bytes.clone());
        }
        let Some(segment) = &self.segment else {
            return Ok(Bytes::new());
        };
        let bytes = busd_transport::map_segment(segment)?;
        self.bytes = Some(bytes.clone());
        Ok(bytes)
    }
}
