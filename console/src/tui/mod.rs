//! `mrctl tui`: the live operator console.
//!
//! Built like ratatui's examples and gitui: one event loop (`live.rs`) turns key presses, the
//! daemons' gRPC streams and clock ticks into one [`Action`](action::Action) enum; [`update`](app::update)
//! is the only place state ([`App`](state::App)) changes; [`draw`](ui::draw) is a pure function of
//! that state, run at a steady frame rate. Network work happens in tokio tasks that only send
//! actions, so a slow or dead daemon never blocks the screen.

pub mod action;
pub mod app;
pub mod fixture;
pub mod live;
pub mod state;
pub mod terminal;
pub mod ui;

pub use live::{Connection, Connector, run};
