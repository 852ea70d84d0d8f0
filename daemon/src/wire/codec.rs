//! tokio-util codec for frames: the relay reads with `FramedRead<_, FrameCodec>`.
//!
//! The decoder checks the header, refuses payloads above its limit before buffering them, reserves
//! exactly one frame (so a socket is never read far ahead: backpressure stays TCP's), and verifies
//! the checksum. Writers use [`encode_frame`]; large payloads go out with vectored writes instead
//! of being copied into a buffer.

use super::frame::{HEADER_LEN, Header, HeaderError, checksum};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// One frame: its header and its (checksum-verified) payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub header: Header,
    pub payload: Bytes,
}

/// Why a byte stream is not a valid frame sequence. Any of these closes the connection.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{0}")]
    Header(#[from] HeaderError),
    #[error("frame of {len} bytes is over this connection's limit of {max} bytes")]
    TooLarge { len: u32, max: u32 },
    #[error("checksum mismatch in a {kind:?} frame (block {block}): the data was corrupted")]
    Checksum {
        kind: super::frame::Kind,
        block: u32,
    },
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Decoder/encoder with a payload limit.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_payload: u32,
    pending: Option<Header>,
}

impl FrameCodec {
    pub fn new(max_payload: u32) -> Self {
        FrameCodec {
            max_payload,
            pending: None,
        }
    }

    /// Tightens (or loosens) the limit once the job, and so the largest block, is known.
    pub fn set_max_payload(&mut self, max: u32) {
        self.max_payload = max;
    }

    pub fn max_payload(&self) -> u32 {
        self.max_payload
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        let header = match self.pending {
            Some(h) => h,
            None => {
                if src.len() < HEADER_LEN {
                    src.reserve(HEADER_LEN - src.len());
                    return Ok(None);
                }
                let mut hb = [0u8; HEADER_LEN];
                hb.copy_from_slice(&src[..HEADER_LEN]);
                let h = Header::decode(&hb)?;
                if h.len > self.max_payload {
                    return Err(WireError::TooLarge {
                        len: h.len,
                        max: self.max_payload,
                    });
                }
                src.advance(HEADER_LEN);
                self.pending = Some(h);
                h
            }
        };
        let len = header.len as usize;
        if src.len() < len {
            // Room for this payload only: reading further ahead would defeat backpressure.
            src.reserve(len - src.len());
            return Ok(None);
        }
        self.pending = None;
        let payload = src.split_to(len).freeze();
        if checksum(&payload) != header.checksum {
            return Err(WireError::Checksum {
                kind: header.kind,
                block: header.block,
            });
        }
        Ok(Some(Frame { header, payload }))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        match self.decode(buf)? {
            Some(f) => Ok(Some(f)),
            None if buf.is_empty() && self.pending.is_none() => Ok(None),
            None => Err(WireError::Truncated),
        }
    }
}

/// Appends a whole frame (small frames: handshakes, errors, begins).
pub fn encode_frame(header: &Header, payload: &[u8], dst: &mut BytesMut) {
    dst.reserve(HEADER_LEN + payload.len());
    dst.put_slice(&header.encode());
    dst.put_slice(payload);
}

impl Encoder<Frame> for FrameCodec {
    type Error = WireError;
    fn encode(&mut self, item: Frame, dst: &mut BytesMut) -> Result<(), WireError> {
        encode_frame(&item.header, &item.payload, dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::Kind;
    use super::*;

    fn frame(kind: Kind, payload: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        encode_frame(&Header::for_payload(kind, 9, payload), payload, &mut b);
        b
    }

    #[test]
    fn decodes_byte_by_byte() {
        let mut all = frame(Kind::Data, b"hello world");
        all.extend_from_slice(&frame(Kind::End, b""));
        let mut codec = FrameCodec::new(1024);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for b in all.iter() {
            buf.put_u8(*b);
            while let Some(f) = codec.decode(&mut buf).expect("valid") {
                out.push(f);
            }
        }
        assert_eq!(out.len(), 2);
        assert_eq!(&out[0].payload[..], b"hello world");
        assert_eq!(out[1].header.kind, Kind::End);
    }

    #[test]
    fn oversized_frames_are_refused_before_buffering() {
        let mut b = frame(Kind::Data, &[0u8; 100]);
        b.truncate(HEADER_LEN);
        let err = FrameCodec::new(99).decode(&mut b).expect_err("too large");
        assert!(matches!(err, WireError::TooLarge { len: 100, max: 99 }));
    }

    #[test]
    fn corruption_is_caught() {
        let mut b = frame(Kind::Data, b"abcdef");
        let n = b.len();
        b[n - 1] ^= 1;
        let err = FrameCodec::new(99).decode(&mut b).expect_err("corrupt");
        assert!(matches!(err, WireError::Checksum { .. }));
    }

    proptest::proptest! {
        /// Arbitrary bytes, fed in arbitrary pieces: frames or a clean error, never a panic, and
        /// never a buffer reserved beyond the limit.
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            cut in 1usize..64,
            valid_prefix in proptest::prelude::any::<bool>(),
        ) {
            let mut input = if valid_prefix { frame(Kind::Data, b"ok").to_vec() } else { Vec::new() };
            input.extend_from_slice(&bytes);
            let mut codec = FrameCodec::new(128);
            let mut buf = BytesMut::new();
            'feed: for piece in input.chunks(cut) {
                buf.extend_from_slice(piece);
                loop {
                    match codec.decode(&mut buf) {
                        Ok(Some(f)) => proptest::prop_assert!(f.payload.len() <= 128),
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
                proptest::prop_assert!(buf.capacity() <= 4096, "reserved {}", buf.capacity());
            }
        }
    }

    #[test]
    fn truncation_at_eof_is_an_error() {
        let mut b = frame(Kind::Data, b"abcdef");
        b.truncate(b.len() - 1);
        let mut c = FrameCodec::new(99);
        assert!(c.decode(&mut b).expect("partial").is_none());
        assert!(matches!(c.decode_eof(&mut b), Err(WireError::Truncated)));
    }
}
