//! busd-shm's ring read (and written) while a hostile peer scribbles on
//! the shared memory, and memfds that lie about being a ring.
//!
//! Input: a byte of set-up (bit 7: a lying memfd instead of a ring; bits
//! 0-2: the capacity, 16 B to 2 KiB), a byte for both sides'
//! `max_message` (0: the ring's), then either a ring's script of
//! [`Step`]s or a [`Liar`] (see their `write` for the bytes).
//!
//! Checks: no panic, never a wake-up error, and never a read or write
//! outside the ring (the ring's copies assert their bounds, so one would
//! panic). While no byte was poked, pops give back exactly what was
//! pushed, in order, and nothing is `Corrupt`; once poked, a pop gives a
//! message no longer than the consumer's `max_message`, nothing, or
//! `Corrupt`. A lying memfd opens only if its size, seals and header
//! (read back) are a fresh ring's, and a genuine one always opens.

use busd_shm::{RING_SEALS, SealFlags};

use crate::script::Reader;

mod liar;
mod ring;

pub use liar::open_liar;
pub use ring::run_ring;

/// The header's first field, at offset 0: "BUSDRING" read as a
/// little-endian `u64`.
const MAGIC: u64 = u64::from_le_bytes(*b"BUSDRING");
/// The offsets of the header's other fields (`busd-shm/src/header.rs`
/// pins them with size asserts): capacity, version, header size; the
/// producer's tail and the consumer's flag; the consumer's head and the
/// producer's flag. The peer writes them through its own fd, as another
/// process would.
const CAPACITY: u64 = 8;
const VERSION: u64 = 16;
const HEADER_SIZE_FIELD: u64 = 20;
const TAIL: u64 = 64;
const CONSUMER_WAITING: u64 = 72;
const HEAD: u64 = 128;
const PRODUCER_WAITING: u64 = 136;

/// The positions and flags a [`Step::Set`] or [`Step::Nudge`] writes:
/// positions are 8 bytes, flags 4.
pub const FIELDS: [u64; 4] = [TAIL, HEAD, CONSUMER_WAITING, PRODUCER_WAITING];

/// One move of the producer, the consumer or the hostile peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The producer pushes a message of this many bytes.
    Push(u8),
    /// The consumer pops into its own vector.
    Pop,
    /// The consumer pops into a buffer of this many bytes.
    PopInto(u8),
    /// The peer writes 1 to 8 bytes at this offset in the memfd (modulo
    /// its size).
    Poke(u16, Vec<u8>),
    /// The peer sets `FIELDS[i]` to a value.
    Set(u8, u64),
    /// The peer moves `FIELDS[i]` by a few records (8 bytes each).
    Nudge(u8, i8),
    /// Both sides arm their waits (the producer for this many bytes).
    Arm(u8),
    /// The peer writes a record length where a record could start: at the
    /// consumer's head (`None`), or at `8 * i` (`i` below 128) in the data.
    Length(Option<u8>, u32),
}

impl Step {
    fn read(r: &mut Reader<'_>) -> Self {
        match r.byte() % 7 {
            0 => Self::Push(r.byte()),
            1 => Self::Pop,
            2 => Self::PopInto(r.byte()),
            3 => {
                let at = r.u16();
                let n = 1 + usize::from(r.byte() % 8);
                Self::Poke(at, r.bytes(n).to_vec())
            }
            4 => {
                let how = r.byte();
                let i = how % 4;
                if how & 4 == 0 {
                    Self::Set(i, r.u64())
                } else {
                    Self::Nudge(i, r.byte() as i8)
                }
            }
            5 => Self::Arm(r.byte()),
            _ => {
                let at = r.byte();
                let at = (at & 0x80 != 0).then_some(at & 0x7f);
                Self::Length(at, r.u32())
            }
        }
    }

    /// Appends the bytes [`read`](Self::read) reads back as this step.
    ///
    /// # Panics
    /// For a poke of no or more than 8 bytes, a field past [`FIELDS`], or
    /// a length's offset of 128 or more.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Self::Push(n) => out.extend([0, *n]),
            Self::Pop => out.push(1),
            Self::PopInto(n) => out.extend([2, *n]),
            Self::Poke(at, bytes) => {
                assert!((1..=8).contains(&bytes.len()));
                out.push(3);
                out.extend(at.to_le_bytes());
                out.push(bytes.len() as u8 - 1);
                out.extend(bytes);
            }
            Self::Set(i, value) => {
                assert!(usize::from(*i) < FIELDS.len());
                out.extend([4, *i]);
                out.extend(value.to_le_bytes());
            }
            Self::Nudge(i, records) => {
                assert!(usize::from(*i) < FIELDS.len());
                out.extend([4, 4 | *i, *records as u8]);
            }
            Self::Arm(n) => out.extend([5, *n]),
            Self::Length(at, len) => {
                assert!(at.is_none_or(|i| i < 0x80));
                out.extend([6, at.map_or(0, |i| 0x80 | i)]);
                out.extend(len.to_le_bytes());
            }
        }
    }
}

/// A memfd that claims to be a ring: a genuine header for its capacity, in
/// a memfd of some size with some seals, then poked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Liar {
    /// The memfd's size in 16-byte units (below 128), or `None` for the
    /// ring's own.
    pub size: Option<u8>,
    /// 0: no seals; 1: only `SEAL_SHRINK`; else a ring's.
    pub seals: u8,
    /// Up to 3 pokes into the header: an offset (modulo its size) and 1
    /// to 8 bytes.
    pub pokes: Vec<(u8, Vec<u8>)>,
}

impl Liar {
    fn read(r: &mut Reader<'_>) -> Self {
        let size = r.byte();
        let size = (size & 0x80 != 0).then_some(size & 0x7f);
        let seals = r.byte() % 4;
        let pokes = (0..r.byte() % 4)
            .map(|_| {
                let at = r.byte();
                let n = 1 + usize::from(r.byte() % 8);
                (at, r.bytes(n).to_vec())
            })
            .collect();
        Self { size, seals, pokes }
    }

    /// Appends the bytes [`read`](Self::read) reads back as this liar.
    ///
    /// # Panics
    /// For a size of 128 units or more, more than 3 pokes, or a poke of no
    /// or more than 8 bytes.
    pub fn write(&self, out: &mut Vec<u8>) {
        assert!(self.size.is_none_or(|s| s < 0x80) && self.pokes.len() < 4);
        out.extend([self.size.map_or(0, |s| 0x80 | s), self.seals]);
        out.push(self.pokes.len() as u8);
        for (at, bytes) in &self.pokes {
            assert!((1..=8).contains(&bytes.len()));
            out.extend([*at, bytes.len() as u8 - 1]);
            out.extend(bytes);
        }
    }

    /// The seals it asks for.
    fn seal_flags(&self) -> SealFlags {
        match self.seals % 4 {
            0 => SealFlags::empty(),
            1 => SealFlags::SHRINK,
            _ => RING_SEALS,
        }
    }
}

/// What an input holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A ring of `16 << capacity` bytes (`capacity` below 8), both sides
    /// taking messages of up to `max_message` bytes (0: the ring's cap),
    /// run through the steps.
    Ring {
        /// `log2(capacity / 16)`.
        capacity: u8,
        /// Both sides' limit, 0 for the ring's.
        max_message: u8,
        /// What happens, in order.
        steps: Vec<Step>,
    },
    /// A lying memfd for a ring of `16 << capacity` bytes, opened.
    Liar {
        /// `log2(capacity / 16)`.
        capacity: u8,
        /// How it lies.
        liar: Liar,
    },
}

impl Input {
    /// Reads an input: every byte string is one.
    pub fn parse(data: &[u8]) -> Self {
        let mut r = Reader::new(data);
        let setup = r.byte();
        let capacity = setup & 7;
        let max_message = r.byte();
        if setup & 0x80 != 0 {
            let liar = Liar::read(&mut r);
            return Self::Liar { capacity, liar };
        }
        let mut steps = Vec::new();
        while !r.is_empty() {
            steps.push(Step::read(&mut r));
        }
        Self::Ring {
            capacity,
            max_message,
            steps,
        }
    }

    /// The bytes [`parse`](Self::parse) reads back as this input.
    ///
    /// # Panics
    /// For a capacity of 8 or more, or as the steps' or liar's `write`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Self::Ring {
                capacity,
                max_message,
                steps,
            } => {
                assert!(*capacity < 8);
                out.extend([*capacity, *max_message]);
                for step in steps {
                    step.write(&mut out);
                }
            }
            Self::Liar { capacity, liar } => {
                assert!(*capacity < 8);
                out.extend([0x80 | *capacity, 0]);
                liar.write(&mut out);
            }
        }
        out
    }

    /// Runs it.
    ///
    /// # Panics
    /// On any broken invariant.
    pub fn run(&self) {
        match self {
            Self::Ring {
                capacity,
                max_message,
                steps,
            } => run_ring(16 << capacity, usize::from(*max_message), steps),
            Self::Liar { capacity, liar } => open_liar(16 << capacity, liar),
        }
    }
}

/// Checks one input (see the module's documentation).
///
/// # Panics
/// On any broken invariant.
pub fn check(data: &[u8]) {
    Input::parse(data).run();
}
