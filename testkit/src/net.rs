//! Ports for daemons that cannot bind port 0 (a port written in a config before start, kept
//! across a restart).

use std::net::TcpListener;

/// A TCP port on 127.0.0.1 free at the time of the call (bound, then released).
pub fn free_port() -> u16 {
    free_port_on("127.0.0.1")
}

/// A TCP port on `ip` (a loopback address) free at the time of the call.
pub fn free_port_on(ip: &str) -> u16 {
    let l = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
    l.local_addr().expect("local addr").port()
}
