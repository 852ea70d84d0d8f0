//! A bounded pool of block buffers, one per relay job: payloads read off the sockets and the
//! f32 sums go back to it when the last reference drops, and are handed out again for the next
//! block. No block is allocated, zeroed or page-faulted afresh once the window is warm
//! (`memset` and `clear_page` were ~7% of a relay's profile with a fresh `vec![0; n]` per block).
//!
//! The pool keeps at most `max` buffers of each kind, each of at most the job's block size, so
//! what it holds never exceeds the job's memory reservation (the window already counts them);
//! it is freed with the job.

use bytes::Bytes;
use std::sync::{Arc, Mutex, Weak};

/// Payloads smaller than this are plain allocations (Begin, End, the short last block).
const MIN_POOLED: usize = 64 * 1024;

/// Cheap to clone; all clones share the same buffers.
#[derive(Debug, Clone)]
pub struct BufPool(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// Capacity of every pooled byte buffer (the job's largest block in wire bytes).
    block_bytes: usize,
    /// Capacity of every pooled f32 buffer (the job's largest block in elements).
    block_floats: usize,
    /// Most buffers kept of each kind.
    max: usize,
    bytes: Mutex<Vec<Vec<u8>>>,
    floats: Mutex<Vec<Vec<f32>>>,
}

impl BufPool {
    /// A pool for blocks of `block_bytes` wire bytes and `block_floats` elements, keeping at
    /// most `max` buffers of each kind.
    pub fn new(block_bytes: usize, block_floats: usize, max: usize) -> BufPool {
        BufPool(Arc::new(Inner {
            block_bytes,
            block_floats,
            max,
            bytes: Mutex::new(Vec::new()),
            floats: Mutex::new(Vec::new()),
        }))
    }

    /// An empty buffer with room for `len` bytes: a pooled one when `len` is a block's size.
    pub fn bytes_buf(&self, len: usize) -> Vec<u8> {
        let mut v = self.take_bytes(len);
        v.clear();
        v
    }

    /// A buffer of exactly `len` bytes whose contents are unspecified (left from an earlier
    /// block): the caller overwrites every byte.
    pub fn bytes_filled(&self, len: usize) -> Vec<u8> {
        let mut v = self.take_bytes(len);
        // A pooled buffer comes back at its old length: only bytes past it are written here.
        v.resize(len, 0);
        v
    }

    /// A pooled buffer as it was left (any length), or a new empty one.
    fn take_bytes(&self, len: usize) -> Vec<u8> {
        if !self.0.pooled(len) {
            return Vec::with_capacity(len);
        }
        lock(&self.0.bytes)
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.0.block_bytes))
    }

    /// `v` as `Bytes`; when the last clone drops, the buffer goes back to the pool.
    pub fn freeze(&self, v: Vec<u8>) -> Bytes {
        if !self.0.pooled(v.capacity()) {
            return Bytes::from(v);
        }
        Bytes::from_owner(PooledBytes {
            v,
            pool: Arc::downgrade(&self.0),
        })
    }

    /// A buffer of exactly `len` f32s whose contents are unspecified (left from an earlier
    /// block): the caller overwrites every element.
    pub fn floats(&self, len: usize) -> Vec<f32> {
        if !self.0.pooled_floats(len) {
            // Small (a short last block): a plain allocation of its own size, never kept.
            return vec![0.0; len];
        }
        let mut v = lock(&self.0.floats).pop().unwrap_or_default();
        if v.capacity() < self.0.block_floats {
            v = Vec::with_capacity(self.0.block_floats);
        }
        // Only elements past the old length are written here (never on a warm pool of
        // full blocks); shrinking is free.
        v.resize(len, 0.0);
        v
    }

    /// Gives an f32 buffer back.
    pub fn recycle_floats(&self, v: Vec<f32>) {
        self.0.put_floats(v);
    }

    /// `v`'s bytes as `Bytes` (an f32 result sent as it is); the buffer comes back on drop.
    pub fn freeze_floats(&self, v: Vec<f32>) -> Bytes {
        Bytes::from_owner(PooledFloats {
            v,
            pool: Arc::downgrade(&self.0),
        })
    }

    /// Buffers held now (for tests).
    pub fn held(&self) -> (usize, usize) {
        (lock(&self.0.bytes).len(), lock(&self.0.floats).len())
    }
}

impl Inner {
    fn pooled(&self, bytes: usize) -> bool {
        bytes >= MIN_POOLED.min(self.block_bytes) && bytes <= self.block_bytes && self.max > 0
    }

    fn pooled_floats(&self, len: usize) -> bool {
        4 * len >= MIN_POOLED.min(4 * self.block_floats) && len <= self.block_floats && self.max > 0
    }

    fn put_bytes(&self, v: Vec<u8>) {
        if v.capacity() == self.block_bytes {
            let mut g = lock(&self.bytes);
            if g.len() < self.max {
                g.push(v);
            }
        }
    }

    fn put_floats(&self, v: Vec<f32>) {
        if v.capacity() == self.block_floats {
            let mut g = lock(&self.floats);
            if g.len() < self.max {
                g.push(v);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct PooledBytes {
    v: Vec<u8>,
    pool: Weak<Inner>,
}

impl AsRef<[u8]> for PooledBytes {
    fn as_ref(&self) -> &[u8] {
        &self.v
    }
}

impl Drop for PooledBytes {
    fn drop(&mut self) {
        if let Some(p) = self.pool.upgrade() {
            p.put_bytes(std::mem::take(&mut self.v));
        }
    }
}

struct PooledFloats {
    v: Vec<f32>,
    pool: Weak<Inner>,
}

impl AsRef<[u8]> for PooledFloats {
    fn as_ref(&self) -> &[u8] {
        super::dtype::f32_bytes(&self.v)
    }
}

impl Drop for PooledFloats {
    fn drop(&mut self) {
        if let Some(p) = self.pool.upgrade() {
            p.put_floats(std::mem::take(&mut self.v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_and_the_pool_stays_bounded() {
        let pool = BufPool::new(1 << 20, 1 << 18, 2);
        let mut held = Vec::new();
        for i in 0..4u8 {
            let mut v = pool.bytes_buf(1 << 20);
            v.resize(1 << 20, i);
            held.push(pool.freeze(v));
        }
        assert_eq!(pool.held(), (0, 0));
        let clone = held[0].clone();
        drop(held);
        // Three buffers are back, but only two are kept; the clone still holds the fourth.
        assert_eq!(pool.held(), (2, 0));
        assert!(clone.iter().all(|&b| b == 0));
        drop(clone);
        assert_eq!(pool.held(), (2, 0));
        let v = pool.bytes_buf(1 << 20);
        assert!(v.is_empty() && v.capacity() == 1 << 20);
        assert_eq!(pool.held(), (1, 0));
    }

    #[test]
    fn floats_are_reused_and_sized() {
        let pool = BufPool::new(1 << 20, 1 << 18, 4);
        let a = pool.floats(1 << 18);
        assert_eq!(a.len(), 1 << 18);
        let bytes = pool.freeze_floats(a);
        assert_eq!(bytes.len(), 1 << 20);
        drop(bytes);
        assert_eq!(pool.held(), (0, 1));
        // A shorter last block reuses the same buffer at its own length.
        let b = pool.floats(1 << 17);
        assert_eq!(b.len(), 1 << 17);
        assert_eq!(pool.held(), (0, 0));
        pool.recycle_floats(b);
        assert_eq!(pool.held(), (0, 1));
        assert_eq!(pool.floats(1 << 18).len(), 1 << 18);
        // A tiny one is a plain allocation, not kept.
        pool.recycle_floats(pool.floats(1000));
        assert_eq!(pool.held(), (0, 0));
    }

    #[test]
    fn small_and_foreign_buffers_are_not_kept() {
        let pool = BufPool::new(1 << 20, 1 << 18, 4);
        drop(pool.freeze(b"begin".to_vec()));
        drop(pool.freeze(vec![0u8; 3 << 20]));
        assert_eq!(pool.held(), (0, 0));
        // A pool that outlives nothing: buffers dropped after it are simply freed.
        let b = pool.freeze({
            let mut v = pool.bytes_buf(1 << 20);
            v.resize(1 << 20, 1);
            v
        });
        drop(pool);
        drop(b);
    }
}
