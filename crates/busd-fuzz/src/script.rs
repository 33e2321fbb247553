//! Reading a fuzz input as a script: every byte string is one, so a
//! fuzzer's mutations always reach the code under test.

/// The unread rest of an input. Past its end it reads zeros (and
/// [`bytes`](Self::bytes) fewer bytes), so an input cut anywhere is still
/// a script.
#[derive(Debug)]
pub(crate) struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self(data)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }

    /// Up to `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }

    /// Little-endian, zeros past the end.
    pub(crate) fn u64(&mut self) -> u64 {
        let mut b = [0; 8];
        let taken = self.bytes(8);
        b[..taken.len()].copy_from_slice(taken);
        u64::from_le_bytes(b)
    }

    /// Little-endian, zeros past the end.
    pub(crate) fn u32(&mut self) -> u32 {
        let mut b = [0; 4];
        let taken = self.bytes(4);
        b[..taken.len()].copy_from_slice(taken);
        u32::from_le_bytes(b)
    }

    /// Little-endian, zeros past the end.
    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
}
