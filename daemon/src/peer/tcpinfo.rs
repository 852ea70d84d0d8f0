//! The kernel's own byte counters of a TCP connection (`TCP_INFO`), for measuring what really
//! crossed a link: bytes the other end acknowledged (not merely handed to our send buffer) and
//! bytes that arrived (not merely read by the application, which may lag on a busy machine).
//! The bench bot samples them during an operation (see `bench::linkwatch`).

use std::io;
use std::net::TcpStream;

/// A snapshot of one connection's counters (Linux 4.6+; elsewhere `counters` is `Unsupported`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpCounters {
    /// Bytes sent and acknowledged by the other end, since the connection opened.
    pub bytes_acked: u64,
    /// Bytes received (in order), since the connection opened.
    pub bytes_received: u64,
    /// Segments sent and not yet acknowledged.
    pub unacked: u32,
    /// Bytes in the send buffer not yet sent.
    pub notsent: u32,
}

/// The counters of `s` now.
#[cfg(target_os = "linux")]
pub fn counters(s: &TcpStream) -> io::Result<TcpCounters> {
    use std::os::fd::AsRawFd;
    // SAFETY: an all-zero tcp_info is a valid value (plain integers).
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the fd is open for the borrow of `s`; `info` and `len` describe a writable buffer
    // of `len` bytes, and the kernel writes at most that many.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // Older kernels fill a shorter struct: without the byte counters the figures would be 0.
    let need = std::mem::offset_of!(libc::tcp_info, tcpi_notsent_bytes) + 4;
    if (len as usize) < need {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("TCP_INFO of {len} bytes has no byte counters (kernel older than 4.6)"),
        ));
    }
    Ok(TcpCounters {
        bytes_acked: info.tcpi_bytes_acked,
        bytes_received: info.tcpi_bytes_received,
        unacked: info.tcpi_unacked,
        notsent: info.tcpi_notsent_bytes,
    })
}

#[cfg(not(target_os = "linux"))]
pub fn counters(_s: &TcpStream) -> io::Result<TcpCounters> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "TCP_INFO byte counters are read on Linux only",
    ))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::{Duration, Instant};

    #[test]
    fn counts_what_the_other_end_acknowledged_and_what_arrived() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut a = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (mut b, _) = l.accept().expect("accept");
        let a0 = counters(&a).expect("tcp_info");
        let b0 = counters(&b).expect("tcp_info");
        let msg = vec![7u8; 300_000];
        let reader = std::thread::spawn(move || {
            let mut got = vec![0u8; 300_000];
            b.read_exact(&mut got).expect("read");
            let c = counters(&b).expect("tcp_info");
            (
                c.bytes_received - b0.bytes_received,
                got == vec![7u8; 300_000],
            )
        });
        a.write_all(&msg).expect("write");
        let (received, same) = reader.join().expect("reader");
        assert!(same);
        assert_eq!(received, 300_000, "bytes_received counts the payload");
        // Acknowledgements follow the data within an RTT (microseconds on loopback).
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let c = counters(&a).expect("tcp_info");
            if c.bytes_acked - a0.bytes_acked == 300_000 {
                assert_eq!((c.unacked, c.notsent), (0, 0));
                break;
            }
            assert!(
                Instant::now() < end,
                "never acknowledged: {c:?} from {a0:?}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
