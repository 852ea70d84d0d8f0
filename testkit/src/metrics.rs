//! Reading a daemon's Prometheus exporter the way a scraper does: plain HTTP over TCP.

use std::path::Path;
use std::time::{Duration, Instant};

/// The address a daemon logged ("Prometheus metrics at http://ADDR/metrics"), waited for 20 s.
pub fn metrics_addr(log: &Path) -> String {
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(rest) = text.split("Prometheus metrics at http://").nth(1)
            && let Some(addr) = rest.split("/metrics").next()
        {
            return addr.to_string();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no metrics address in {}", log.display())
}

/// GET /metrics over a plain TCP connection: (status line, body).
pub fn scrape(addr: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the exporter");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP response");
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

/// The value of the first sample of `series` (a name, optionally with a label prefix).
pub fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}
