//! A writable, C-contiguous tensor exported through the buffer protocol, seen as a Rust slice.
//!
//! numpy arrays export one directly; torch CPU tensors through `.numpy()` (float32, float16) or
//! `.view(torch.int16).numpy()` (bfloat16), which share the tensor's memory.

use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

/// The element kind a session expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    F32,
    /// 16-bit floats (f16 or bf16), or their bits as int16/uint16.
    Half,
}

pub struct TensorBuf {
    buf: PyUntypedBuffer,
    len: usize,
}

/// The struct-module format code without its byte-order/size prefix.
fn code(format: &str) -> &str {
    format.trim_start_matches(['@', '=', '<'])
}

impl TensorBuf {
    pub fn get(obj: &Bound<'_, PyAny>, elem: Elem) -> PyResult<TensorBuf> {
        let buf = PyUntypedBuffer::get(obj).map_err(|e| {
            PyTypeError::new_err(format!(
                "expected a numpy array or torch tensor (buffer protocol): {e}"
            ))
        })?;
        let format = buf.format().to_string_lossy().into_owned();
        let (size, ok) = match elem {
            Elem::F32 => (4, code(&format) == "f"),
            Elem::Half => (2, matches!(code(&format), "e" | "h" | "H")),
        };
        if !ok || buf.item_size() != size {
            return Err(PyTypeError::new_err(format!(
                "buffer of format {format:?} ({} bytes per item): this session moves {}",
                buf.item_size(),
                match elem {
                    Elem::F32 => "float32",
                    Elem::Half => "16-bit floats",
                }
            )));
        }
        if buf.readonly() {
            return Err(PyValueError::new_err(
                "the tensor is read-only: collectives write their result in place",
            ));
        }
        if !buf.is_c_contiguous() {
            return Err(PyValueError::new_err(
                "the tensor is not C-contiguous (mapreduce.Peer copies such tensors in and out)",
            ));
        }
        if !(buf.buf_ptr() as usize).is_multiple_of(size) {
            return Err(PyValueError::new_err(
                "the tensor's memory is not aligned to its element size",
            ));
        }
        let len = buf.item_count();
        Ok(TensorBuf { buf, len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// # Safety
    /// The buffer was checked writable, C-contiguous, aligned and of 4-byte float items, and
    /// stays exported while `self` lives. Like torch's own in-place ops, nothing stops other
    /// Python threads from touching the same memory meanwhile: that is the caller's business.
    pub unsafe fn f32_mut(&mut self) -> &mut [f32] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: as documented above.
        unsafe { std::slice::from_raw_parts_mut(self.buf.buf_ptr().cast::<f32>(), self.len) }
    }

    /// # Safety
    /// As [`TensorBuf::f32_mut`], for 2-byte items.
    pub unsafe fn u16_mut(&mut self) -> &mut [u16] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: as documented above.
        unsafe { std::slice::from_raw_parts_mut(self.buf.buf_ptr().cast::<u16>(), self.len) }
    }
}
