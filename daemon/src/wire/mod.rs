//! Data-plane wire format: frames and their codec, tensor dtypes, checksums, the signed handshake.
//! Knows nothing of daemons: both the relay and the peer library build on it.

pub mod aio;
pub mod codec;
pub mod dtype;
pub mod frame;
pub mod handshake;
pub mod io;
pub mod pool;
pub mod reader;
pub mod receipt;
#[cfg(target_arch = "x86_64")]
mod simd;

pub use codec::{Frame, FrameCodec, WireError, encode_frame};
pub use frame::{HEADER_LEN, Header, HeaderError, Kind, checksum};
pub use handshake::{HandshakeError, JobTicket, MinerSlot, SignedTicket, Verified};
pub use pool::BufPool;
pub use reader::FrameReader;
