//! DLPack export of a frame (`numpy.from_dlpack(frame)`, `torch.from_dlpack`):
//! a versioned capsule (`dltensor_versioned`, DLPack 1.0) marked read-only,
//! whose manager owns its own lease on the slot, so the tensor pins the
//! slot until the consumer frees it; a consumer that asks for no version
//! gets the legacy `dltensor` capsule (which cannot say read-only).

use std::ffi::{CStr, c_void};

use dav2d_frames::Lease;
use pyo3::ffi;
use pyo3::prelude::*;

const VERSIONED: &CStr = c"dltensor_versioned";
const LEGACY: &CStr = c"dltensor";
/// `kDLCPU`.
pub(crate) const DEVICE_CPU: i32 = 1;
/// `kDLUInt`.
const UINT: u8 = 1;
/// `DLPACK_FLAG_BITMASK_READ_ONLY`.
const READ_ONLY: u64 = 1;

#[repr(C)]
struct DlDevice {
    device_type: i32,
    device_id: i32,
}

#[repr(C)]
struct DlDataType {
    code: u8,
    bits: u8,
    lanes: u16,
}

#[repr(C)]
struct DlTensor {
    data: *mut c_void,
    device: DlDevice,
    ndim: i32,
    dtype: DlDataType,
    shape: *mut i64,
    strides: *mut i64,
    byte_offset: u64,
}

#[repr(C)]
struct DlPackVersion {
    major: u32,
    minor: u32,
}

#[repr(C)]
struct ManagedVersioned {
    version: DlPackVersion,
    manager_ctx: *mut c_void,
    deleter: Option<unsafe extern "C" fn(*mut ManagedVersioned)>,
    flags: u64,
    dl_tensor: DlTensor,
}

#[repr(C)]
struct ManagedLegacy {
    dl_tensor: DlTensor,
    manager_ctx: *mut c_void,
    deleter: Option<unsafe extern "C" fn(*mut ManagedLegacy)>,
}

/// What a capsule's tensor owns: the lease and the arrays its tensor points to.
struct Context {
    _lease: Lease,
    shape: [i64; 3],
    strides: [i64; 3],
}

unsafe extern "C" fn delete_versioned(tensor: *mut ManagedVersioned) {
    if tensor.is_null() {
        return;
    }
    // SAFETY: both were made by `Box::into_raw` in `capsule` and are freed once:
    // the deleter runs once, by the consumer or by our capsule destructor.
    unsafe {
        drop(Box::from_raw((*tensor).manager_ctx.cast::<Context>()));
        drop(Box::from_raw(tensor));
    }
}

unsafe extern "C" fn delete_legacy(tensor: *mut ManagedLegacy) {
    if tensor.is_null() {
        return;
    }
    // SAFETY: as in `delete_versioned`.
    unsafe {
        drop(Box::from_raw((*tensor).manager_ctx.cast::<Context>()));
        drop(Box::from_raw(tensor));
    }
}

/// Frees a capsule nobody consumed (a consumer renames it to `used_...`).
unsafe extern "C" fn destroy_capsule(capsule: *mut ffi::PyObject) {
    // SAFETY: called by Python with our capsule; the pointer is read only
    // while the capsule still carries its unconsumed name.
    unsafe {
        if ffi::PyCapsule_IsValid(capsule, VERSIONED.as_ptr()) == 1 {
            let tensor = ffi::PyCapsule_GetPointer(capsule, VERSIONED.as_ptr());
            delete_versioned(tensor.cast());
        } else if ffi::PyCapsule_IsValid(capsule, LEGACY.as_ptr()) == 1 {
            let tensor = ffi::PyCapsule_GetPointer(capsule, LEGACY.as_ptr());
            delete_legacy(tensor.cast());
        }
    }
}

/// The capsule of a tensor over `lease` (a lease of its own), `ndim`
/// dimensions of `shape` and `strides` in bytes (= elements: uint8).
pub(crate) fn capsule(
    py: Python<'_>,
    lease: Lease,
    ndim: usize,
    shape: [isize; 3],
    strides: [isize; 3],
    versioned: bool,
) -> PyResult<Bound<'_, PyAny>> {
    let data = lease.as_ptr().cast_mut().cast::<c_void>();
    let context = Box::into_raw(Box::new(Context {
        _lease: lease,
        shape: shape.map(|n| n as i64),
        strides: strides.map(|n| n as i64),
    }));
    // SAFETY: `context` is a valid box until a deleter frees it; the
    // tensor's shape and strides point into it.
    let (shape_ptr, strides_ptr) = unsafe {
        (
            (*context).shape.as_mut_ptr(),
            (*context).strides.as_mut_ptr(),
        )
    };
    let tensor = DlTensor {
        data,
        device: DlDevice {
            device_type: DEVICE_CPU,
            device_id: 0,
        },
        ndim: ndim as i32,
        dtype: DlDataType {
            code: UINT,
            bits: 8,
            lanes: 1,
        },
        shape: shape_ptr,
        strides: strides_ptr,
        byte_offset: 0,
    };
    let (pointer, name): (*mut c_void, &CStr) = if versioned {
        let managed = Box::new(ManagedVersioned {
            version: DlPackVersion { major: 1, minor: 0 },
            manager_ctx: context.cast(),
            deleter: Some(delete_versioned),
            flags: READ_ONLY,
            dl_tensor: tensor,
        });
        (Box::into_raw(managed).cast(), VERSIONED)
    } else {
        let managed = Box::new(ManagedLegacy {
            dl_tensor: tensor,
            manager_ctx: context.cast(),
            deleter: Some(delete_legacy),
        });
        (Box::into_raw(managed).cast(), LEGACY)
    };
    // SAFETY: the pointer and name are valid; on failure the tensor is freed.
    unsafe {
        let capsule = ffi::PyCapsule_New(pointer, name.as_ptr(), Some(destroy_capsule));
        if capsule.is_null() {
            if versioned {
                delete_versioned(pointer.cast());
            } else {
                delete_legacy(pointer.cast());
            }
            return Err(PyErr::fetch(py));
        }
        Ok(Bound::from_owned_ptr(py, capsule))
    }
}
