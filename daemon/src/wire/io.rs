//! Blocking frame I/O over `std::io` streams, used by the peer library's threads.

use super::codec::WireError;
use super::frame::{HEADER_LEN, Header, checksum};
use std::io::{self, IoSlice, Read, Write};

/// Writes a header and its payload with as few system calls as the kernel allows (vectored).
pub fn write_frame(w: &mut impl Write, header: &Header, payload: &[u8]) -> io::Result<()> {
    let head = header.encode();
    let mut bufs = [IoSlice::new(&head), IoSlice::new(payload)];
    let mut slices: &mut [IoSlice<'_>] = &mut bufs;
    while !slices.is_empty() {
        match w.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads one header. `Ok(None)` on a clean end of stream before its first byte.
pub fn read_header(r: &mut impl Read, max_payload: u32) -> Result<Option<Header>, WireError> {
    let mut b = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match r.read(&mut b[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(WireError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    decode_header(&b, max_payload).map(Some)
}

/// A received header, refused if it announces more than `max_payload` bytes (blocking and
/// async readers alike).
pub(super) fn decode_header(b: &[u8; HEADER_LEN], max_payload: u32) -> Result<Header, WireError> {
    let h = Header::decode(b)?;
    if h.len > max_payload {
        return Err(WireError::TooLarge {
            len: h.len,
            max: max_payload,
        });
    }
    Ok(h)
}

/// Reads `dst.len()` payload bytes and checks them against the header's checksum.
pub fn read_payload(r: &mut impl Read, header: &Header, dst: &mut [u8]) -> Result<(), WireError> {
    r.read_exact(dst).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => WireError::Truncated,
        _ => WireError::Io(e),
    })?;
    check_payload(header, dst)
}

/// A received payload against its header's checksum.
pub(super) fn check_payload(header: &Header, payload: &[u8]) -> Result<(), WireError> {
    if checksum(payload) != header.checksum {
        return Err(WireError::Checksum {
            kind: header.kind,
            block: header.block,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::frame::Kind;
    use super::*;

    #[test]
    fn write_then_read() {
        let payload = b"twelve bytes";
        let h = Header::for_payload(Kind::Data, 3, payload);
        let mut out = Vec::new();
        write_frame(&mut out, &h, payload).expect("write");
        let mut r = &out[..];
        let got = read_header(&mut r, 100).expect("ok").expect("frame");
        assert_eq!(got, h);
        let mut p = vec![0u8; got.len as usize];
        read_payload(&mut r, &got, &mut p).expect("payload");
        assert_eq!(&p, payload);
        assert!(read_header(&mut r, 100).expect("eof").is_none());
    }
}
