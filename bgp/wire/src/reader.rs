//! A bounds-checked cursor over a byte slice (internal). Every read returns `None` instead of
//! panicking, and the cursor knows its absolute offset in the message for error reasons.
//!
//! Pure: no I/O.

#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    /// Absolute offset of `buf[0]` within the whole message (header included).
    base: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, base }
    }

    pub(crate) fn offset(&self) -> usize {
        self.base
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        self.base = self.base.saturating_add(n);
        Some(head)
    }

    /// Split off the next `n` bytes as a sub-reader.
    pub(crate) fn sub(&mut self, n: usize) -> Option<Reader<'a>> {
        let base = self.base;
        self.take(n).map(|b| Reader::new(b, base))
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        let (&b, tail) = self.buf.split_first()?;
        self.buf = tail;
        self.base = self.base.saturating_add(1);
        Some(b)
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array::<2>().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array::<4>().map(u32::from_be_bytes)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let b = self.take(N)?;
        b.try_into().ok()
    }
}
