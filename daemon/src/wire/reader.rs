//! Async frame reader for the relay's data path: each payload is read from the socket straight
//! into a buffer of exactly its size, which then travels on as `Bytes` (into the accumulator or
//! to the writers) without another copy.
//!
//! The codec (`FrameCodec` in a `FramedRead`) is kept for the handshake; there, its buffer is
//! shared with the frames it splits off, so every large frame cost a reallocation and a copy of
//! what had already arrived of it (memmove was ~8% of a relay's profile). Here nothing is read
//! beyond the current frame: backpressure stays TCP's.
//!
//! With a pool (`with_pool`, the relay's per-job [`super::pool::BufPool`]) the buffers are reused
//! from block to block instead of allocated and page-faulted afresh.

use super::codec::{Frame, WireError};
use super::frame::{HEADER_LEN, Header, checksum};
use super::pool::BufPool;
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Reads frames from `io`, starting with `leftover` (what a codec had already buffered).
#[derive(Debug)]
pub struct FrameReader<R> {
    io: R,
    leftover: BytesMut,
    max_payload: u32,
    /// Where payload buffers come from (and go back to), when the caller has a pool.
    pool: Option<BufPool>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(io: R, leftover: BytesMut, max_payload: u32) -> Self {
        FrameReader {
            io,
            leftover,
            max_payload,
            pool: None,
        }
    }

    /// Reads payloads into buffers of `pool` (returned to it when the frame's last `Bytes`
    /// drops) instead of fresh allocations.
    pub fn with_pool(mut self, pool: BufPool) -> Self {
        self.pool = Some(pool);
        self
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.io
    }

    /// Fills `dst` from the leftover first, then the socket. Returns how many bytes it got before
    /// a clean end of stream (`dst.len()` when it filled it).
    async fn fill(&mut self, dst: &mut [u8]) -> Result<usize, WireError> {
        let n = self.leftover.len().min(dst.len());
        dst[..n].copy_from_slice(&self.leftover[..n]);
        self.leftover.advance(n);
        let mut got = n;
        while got < dst.len() {
            match self.io.read(&mut dst[got..]).await {
                Ok(0) => return Ok(got),
                Ok(k) => got += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(got)
    }

    /// The next frame, its checksum verified; `None` on a clean end of stream between frames.
    /// Not cancel-safe: a caller that drops it mid-frame must stop reading this stream.
    pub async fn next(&mut self) -> Option<Result<Frame, WireError>> {
        self.next_inner().await.transpose()
    }

    async fn next_inner(&mut self) -> Result<Option<Frame>, WireError> {
        let mut hb = [0u8; HEADER_LEN];
        match self.fill(&mut hb).await? {
            0 => return Ok(None),
            HEADER_LEN => {}
            _ => return Err(WireError::Truncated),
        }
        let header = Header::decode(&hb)?;
        if header.len > self.max_payload {
            return Err(WireError::TooLarge {
                len: header.len,
                max: self.max_payload,
            });
        }
        let len = header.len as usize;
        let mut buf = match &self.pool {
            Some(p) => p.bytes_buf(len),
            None => Vec::with_capacity(len),
        };
        let from_leftover = self.leftover.len().min(len);
        buf.extend_from_slice(&self.leftover[..from_leftover]);
        self.leftover.advance(from_leftover);
        while buf.len() < len {
            // `take` keeps the read inside this frame (and within the buffer's capacity).
            let want = (len - buf.len()) as u64;
            match (&mut self.io).take(want).read_buf(&mut buf).await {
                Ok(0) => return Err(WireError::Truncated),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        let payload = match &self.pool {
            Some(p) => p.freeze(buf),
            None => Bytes::from(buf),
        };
        if checksum(&payload) != header.checksum {
            return Err(WireError::Checksum {
                kind: header.kind,
                block: header.block,
            });
        }
        Ok(Some(Frame { header, payload }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::encode_frame;
    use super::super::frame::Kind;
    use super::*;

    fn frames() -> BytesMut {
        let mut b = BytesMut::new();
        for (kind, p) in [
            (Kind::Data, &b"hello world"[..]),
            (Kind::Data, &[7u8; 3000][..]),
            (Kind::End, &b""[..]),
        ] {
            encode_frame(&Header::for_payload(kind, 9, p), p, &mut b);
        }
        b
    }

    #[tokio::test]
    async fn reads_frames_across_leftover_and_stream() {
        let all = frames();
        for cut in [0, 5, HEADER_LEN, HEADER_LEN + 3, 200, all.len()] {
            let leftover = BytesMut::from(&all[..cut]);
            let rest = all[cut..].to_vec();
            let mut r = FrameReader::new(&rest[..], leftover, 4096);
            let a = r.next().await.expect("frame").expect("valid");
            assert_eq!(&a.payload[..], b"hello world");
            let b = r.next().await.expect("frame").expect("valid");
            assert_eq!(&b.payload[..], &[7u8; 3000][..]);
            let c = r.next().await.expect("frame").expect("valid");
            assert_eq!(c.header.kind, Kind::End);
            assert!(r.next().await.is_none(), "clean end at cut {cut}");
        }
    }

    #[tokio::test]
    async fn errors_are_named() {
        let all = frames();
        let short = all[..all.len() - HEADER_LEN - 1].to_vec();
        let mut r = FrameReader::new(&short[..], BytesMut::new(), 4096);
        r.next().await.expect("frame").expect("valid");
        assert!(matches!(r.next().await, Some(Err(WireError::Truncated))));

        let mut r = FrameReader::new(&all[..], BytesMut::new(), 100);
        r.next().await.expect("frame").expect("valid");
        assert!(matches!(
            r.next().await,
            Some(Err(WireError::TooLarge {
                len: 3000,
                max: 100
            }))
        ));

        let mut bad = all.to_vec();
        bad[HEADER_LEN] ^= 1;
        let mut r = FrameReader::new(&bad[..], BytesMut::new(), 4096);
        assert!(matches!(
            r.next().await,
            Some(Err(WireError::Checksum { .. }))
        ));
    }
}
