//! systemd's notify protocol for `Type=notify` units (scripts/systemd/): READY once the daemon
//! serves, STOPPING when it begins to shut down, and watchdog pings from the async runtime, so a
//! wedged runtime is restarted. Outside systemd (`$NOTIFY_SOCKET` unset) every call does nothing.

use sd_notify::NotifyState;

/// The daemon serves: tell systemd, with a one-line status for `systemctl status`, and start
/// pinging the watchdog if the unit has one.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
    if let Some(period) = sd_notify::watchdog_enabled() {
        // Twice per period, as sd_watchdog_enabled(3) advises.
        let every = (period / 2).max(std::time::Duration::from_millis(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                notify(&[NotifyState::Watchdog]);
            }
        });
    }
}

/// Shutdown has begun (jobs drain, then the process exits).
pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("telling systemd {states:?}: {e}");
    }
}
