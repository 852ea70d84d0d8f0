//! Async frame I/O for the peer's single-thread engine (`peer::engine`): the same frames as
//! [`super::io`], over non-blocking sockets. Every read or write call gets `limit` to make
//! progress, as a blocking socket's `SO_RCVTIMEO` / `SO_SNDTIMEO` gives each system call, and
//! fails with `TimedOut` past it.

use super::codec::WireError;
use super::frame::{HEADER_LEN, Header};
use std::io::{self, IoSlice};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// `f`, or `TimedOut` if it does not finish within `limit`. A call that is ready at once never
/// touches the timer.
async fn timed<T>(limit: Duration, f: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// Writes a header and its payload with one vectored write while the socket takes it all.
pub async fn write_frame(
    w: &mut (impl AsyncWrite + Unpin),
    header: &Header,
    payload: &[u8],
    limit: Duration,
) -> io::Result<()> {
    let head = header.encode();
    let mut bufs = [IoSlice::new(&head), IoSlice::new(payload)];
    let mut slices: &mut [IoSlice<'_>] = &mut bufs;
    while !slices.is_empty() {
        match timed(limit, w.write_vectored(slices)).await {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads one header. `Ok(None)` on a clean end of stream before its first byte.
pub async fn read_header(
    r: &mut (impl AsyncRead + Unpin),
    max_payload: u32,
    limit: Duration,
) -> Result<Option<Header>, WireError> {
    let mut b = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match timed(limit, r.read(&mut b[got..])).await {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(WireError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    super::io::decode_header(&b, max_payload).map(Some)
}

/// Reads `dst.len()` payload bytes and checks them against the header's checksum.
pub async fn read_payload(
    r: &mut (impl AsyncRead + Unpin),
    header: &Header,
    dst: &mut [u8],
    limit: Duration,
) -> Result<(), WireError> {
    let mut got = 0;
    while got < dst.len() {
        match timed(limit, r.read(&mut dst[got..])).await {
            Ok(0) => return Err(WireError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(WireError::Io(e)),
        }
    }
    super::io::check_payload(header, dst)
}

#[cfg(test)]
mod tests {
    use super::super::frame::Kind;
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn write_then_read_and_the_same_bytes_as_blocking_io() {
        rt().block_on(async {
            let payload = b"twelve bytes";
            let h = Header::for_payload(Kind::Data, 3, payload);
            let mut out = Vec::new();
            write_frame(&mut out, &h, payload, Duration::from_secs(1))
                .await
                .expect("write");
            let mut blocking = Vec::new();
            super::super::io::write_frame(&mut blocking, &h, payload).expect("write");
            assert_eq!(out, blocking);
            let mut r = &out[..];
            let lim = Duration::from_secs(1);
            let got = read_header(&mut r, 100, lim)
                .await
                .expect("ok")
                .expect("frame");
            assert_eq!(got, h);
            let mut p = vec![0u8; got.len as usize];
            read_payload(&mut r, &got, &mut p, lim)
                .await
                .expect("payload");
            assert_eq!(&p, payload);
            assert!(read_header(&mut r, 100, lim).await.expect("eof").is_none());
        });
    }

    #[test]
    fn a_silent_stream_times_out_and_a_short_one_is_truncated() {
        rt().block_on(async {
            let (mut a, b) = tokio::io::duplex(64);
            let lim = Duration::from_millis(50);
            match read_header(&mut a, 100, lim).await {
                Err(WireError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::TimedOut),
                other => panic!("expected a timeout, got {other:?}"),
            }
            let h = Header::for_payload(Kind::Data, 3, b"abcd");
            let mut whole = Vec::new();
            super::super::io::write_frame(&mut whole, &h, b"abcd").expect("write");
            let (mut w, mut r) = (b, a);
            w.write_all(&whole[..HEADER_LEN + 2]).await.expect("write");
            drop(w);
            let got = read_header(&mut r, 100, lim)
                .await
                .expect("ok")
                .expect("frame");
            let mut p = [0u8; 4];
            assert!(matches!(
                read_payload(&mut r, &got, &mut p, lim).await,
                Err(WireError::Truncated)
            ));
        });
    }
}
