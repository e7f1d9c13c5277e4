//! The size limit on request messages, enforced from each message's
//! length prefix, and the framing count it shares with the call record.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use tonic::Status;

/// The largest request message accepted, in bytes, for every method. Larger
/// messages are refused with RESOURCE_EXHAUSTED from their length prefix,
/// before anything is allocated for them.
pub(crate) const MAX_REQUEST_BYTES: usize = 4 * 1024;

/// Counts the gRPC messages in a body's bytes: each is a 5-byte header (a
/// flag and a 4-byte length) and that many bytes, and a message may span
/// data frames. It can refuse messages over a size limit from their header
/// alone.
#[derive(Debug)]
pub(super) struct FrameCounter {
    count: u64,
    limit: u64,
    /// Header bytes of the next message seen so far.
    header: [u8; 5],
    header_len: usize,
    /// Bytes of the current message still to come.
    remaining: u64,
}

impl Default for FrameCounter {
    fn default() -> Self {
        Self::with_limit(u64::MAX)
    }
}

impl FrameCounter {
    pub(super) fn with_limit(limit: u64) -> Self {
        Self {
            count: 0,
            limit,
            header: [0; 5],
            header_len: 0,
            remaining: 0,
        }
    }

    /// How many messages have begun.
    pub(super) fn count(&self) -> u64 {
        self.count
    }

    /// Counts whole messages, given apart from the byte stream.
    pub(super) fn count_whole(&mut self, messages: u64) {
        self.count += messages;
    }

    /// Counts what `data` holds; fails with the length a message header
    /// claims, if that is over the limit.
    pub(super) fn feed(&mut self, mut data: &[u8]) -> Result<(), u64> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let skip = data
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                data = &data[skip..];
                self.remaining -= skip as u64;
                continue;
            }
            let take = (5 - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
            self.header_len += take;
            data = &data[take..];
            if self.header_len == 5 {
                self.count += 1;
                self.header_len = 0;
                let [_, a, b, c, d] = self.header;
                self.remaining = u64::from(u32::from_be_bytes([a, b, c, d]));
                if self.remaining > self.limit {
                    return Err(self.remaining);
                }
            }
        }
        Ok(())
    }
}

/// A request body that refuses, from its length prefix alone, any message
/// over the size limit: RESOURCE_EXHAUSTED, as gRPC specifies (tonic's own
/// check answers OUT_OF_RANGE), before the message is read or allocated.
pub(super) struct RequestLimit<B> {
    inner: B,
    frames: FrameCounter,
}

impl<B> RequestLimit<B> {
    /// Limits `inner`'s messages to `limit` bytes each.
    pub(super) fn new(inner: B, limit: u64) -> Self {
        Self {
            inner,
            frames: FrameCounter::with_limit(limit),
        }
    }
}

impl<B> Body for RequestLimit<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref()
                    && let Err(claimed) = this.frames.feed(data.chunk())
                {
                    return Poll::Ready(Some(Err(Status::resource_exhausted(format!(
                        "a request message of {claimed} bytes is over the limit of {} bytes",
                        this.frames.limit
                    )))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(err)) => Poll::Ready(Some(Err(Status::from_error(err.into())))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_messages_across_and_within_frames() {
        let message = |len: u32| {
            let mut bytes = vec![0];
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend(std::iter::repeat_n(b'x', len as usize));
            bytes
        };
        let body = [message(3), message(0), message(1000), message(7)].concat();
        for split in [1, 2, 4, 5, 6, 100, body.len()] {
            let mut counter = FrameCounter::default();
            for piece in body.chunks(split) {
                counter.feed(piece).unwrap();
            }
            assert_eq!(counter.count, 4, "pieces of {split}");
            assert_eq!((counter.remaining, counter.header_len), (0, 0));
        }
    }

    #[test]
    fn refuses_a_message_over_the_limit_from_its_header() {
        let mut counter = FrameCounter::with_limit(4096);
        assert_eq!(counter.feed(&[0, 0, 0, 0x10, 0x00]), Ok(()));
        counter.feed(&[b'x'; 4096]).unwrap();
        assert_eq!(counter.feed(&[0, 0xff, 0xff]), Ok(()));
        assert_eq!(counter.feed(&[0xff, 0xff]), Err(u64::from(u32::MAX)));
    }
}
