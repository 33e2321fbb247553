//! A received payload as the daemon passes it on: bytes, or a sealed
//! segment whose bytes are mapped only if a receiver cannot take its fd.
//!
//! Most segments go to shm receivers as the same fd, so the daemon never
//! needs their bytes; mapping each one anyway (and unmapping it, with the
//! TLB flush that costs) was a tenth of its time under large fan-outs.

use std::sync::Arc;

use busd_proto::{Lease, SegmentFd};
use bytes::Bytes;

/// One frame's payload, for every receiver of that frame.
#[derive(Debug)]
pub(crate) enum Payload {
    /// Bytes that came in the stream.
    Inline(Bytes),
    /// A segment, and its bytes once a receiver needed them.
    Segment {
        fd: SegmentFd,
        mapped: Option<Bytes>,
    },
    /// A block of the sender's pool, copied straight into each receiver's
    /// pool, and copied out once for the receivers without one. Its block
    /// goes back when this is dropped.
    Leased { lease: Lease, copied: Option<Bytes> },
}

impl Payload {
    /// The payload of a decoded frame: `bytes`, or when the frame came with
    /// a `segment`, that (the decoder left `bytes` empty: see
    /// [`busd_transport::Mapping::Unmapped`]); a payload lent from the
    /// sender's pool is copied out, and the block handed back with the
    /// `lease` (as the last holder of it).
    pub(crate) fn new(bytes: Bytes, segment: Option<SegmentFd>, lease: Option<Arc<Lease>>) -> Self {
        match (segment, lease) {
            (Some(fd), _) => Self::Segment { fd, mapped: None },
            // The decoder's is the only reference; a shared one (never, in
            // the daemon) is copied out.
            (None, Some(lease)) => match Arc::try_unwrap(lease) {
                Ok(lease) => Self::Leased {
                    lease,
                    copied: None,
                },
                Err(shared) => Self::Inline(Bytes::from(shared.to_vec())),
            },
            (None, None) => Self::Inline(bytes),
        }
    }

    /// Its length in bytes.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Inline(bytes) => bytes.len(),
            // Checked against max_frame (a u32) when decoded.
            Self::Segment { fd, .. } => usize::try_from(fd.len()).unwrap_or(usize::MAX),
            Self::Leased { lease, .. } => usize::try_from(lease.len()).unwrap_or(usize::MAX),
        }
    }

    /// The bytes, if they came in the stream.
    pub(crate) fn inline(&self) -> Option<&[u8]> {
        match self {
            Self::Inline(bytes) => Some(bytes),
            Self::Segment { .. } | Self::Leased { .. } => None,
        }
    }

    /// What one receiver gets: the same fd if it takes fds (`passes_fds`)
    /// and this is a segment, else the bytes (a segment is mapped the first
    /// time a receiver needs them, and once for all of them). The `last`
    /// receiver is handed the bytes themselves rather than a second
    /// reference, which saves two atomic reference-count updates.
    ///
    /// # Errors
    /// The error of mapping the segment (it was checked when decoded, so
    /// only a lack of memory or address space).
    pub(crate) fn for_receiver(
        &mut self,
        passes_fds: bool,
        last: bool,
    ) -> std::io::Result<(Option<SegmentFd>, Bytes)> {
        let share = |bytes: &mut Bytes| {
            if last {
                std::mem::take(bytes)
            } else {
                bytes.clone()
            }
        };
        match self {
            Self::Inline(bytes) => Ok((None, share(bytes))),
            Self::Segment { fd, .. } if passes_fds => Ok((Some(fd.clone()), Bytes::new())),
            Self::Segment {
                mapped: Some(bytes),
                ..
            } => Ok((None, share(bytes))),
            Self::Segment { fd, mapped } => {
                let bytes = busd_transport::map_segment(fd)?;
                *mapped = Some(bytes.clone());
                Ok((None, bytes))
            }
            Self::Leased {
                copied: Some(bytes),
                ..
            } => Ok((None, share(bytes))),
            Self::Leased { lease, copied } => {
                let bytes = Bytes::from(lease.to_vec());
                *copied = Some(bytes.clone());
                Ok((None, bytes))
            }
        }
    }

    /// Copies the payload into `dst` (exactly its length: a block of a
    /// receiver's pool), mapping a segment once as `for_receiver` does.
    ///
    /// # Errors
    /// The error of mapping the segment.
    pub(crate) fn copy_to(&mut self, dst: &mut [u8]) -> std::io::Result<()> {
        match self {
            // Straight from the sender's block, with no bytes made between.
            Self::Leased {
                lease,
                copied: None,
            } => lease.copy_to(dst),
            _ => dst.copy_from_slice(&self.for_receiver(false, false)?.1),
        }
        Ok(())
    }
}
