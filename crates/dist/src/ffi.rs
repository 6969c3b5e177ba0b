//! The only unsafe code of the crate: the C functions of cxx/shim.h and owning handles over
//! what they return.
//!
//! Unsafe is allowed here (the workspace denies it) because libtorch's c10d is C++: the shim
//! gives it a C interface, and calling C is unsafe in Rust. Every call below keeps the
//! shim's contract: handles come from the shim and are freed once, strings are
//! NUL-terminated, tensors are tch's `at::Tensor*` handles that outlive the call, and every
//! error string the shim returns is freed after copying.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};

use tch::Tensor;

#[repr(C)]
struct CStore {
    _private: [u8; 0],
}

#[repr(C)]
struct CGroup {
    _private: [u8; 0],
}

/// `swerl_backend_factory` of shim.h.
pub type BackendFactory = unsafe extern "C" fn(
    store: *mut c_void,
    rank: c_int,
    size: c_int,
    timeout_ms: i64,
    error: *mut *mut c_char,
) -> *mut c_void;

extern "C" {
    fn swerl_free_string(s: *mut c_char);
    fn swerl_store_new(
        host: *const c_char,
        port: u16,
        is_server: c_int,
        wait_workers: c_int,
        timeout_ms: i64,
        out: *mut *mut CStore,
    ) -> *mut c_char;
    fn swerl_store_port(store: *const CStore) -> u16;
    fn swerl_store_free(store: *mut CStore);
    fn swerl_group_new_gloo(
        store: *mut CStore,
        prefix: *const c_char,
        rank: c_int,
        size: c_int,
        timeout_ms: i64,
        out: *mut *mut CGroup,
    ) -> *mut c_char;
    fn swerl_group_new_plugin(
        store: *mut CStore,
        prefix: *const c_char,
        rank: c_int,
        size: c_int,
        timeout_ms: i64,
        factory: BackendFactory,
        out: *mut *mut CGroup,
    ) -> *mut c_char;
    fn swerl_group_free(group: *mut CGroup);
    fn swerl_group_set_timeout(group: *mut CGroup, timeout_ms: i64) -> *mut c_char;
    fn swerl_all_reduce(group: *mut CGroup, tensor: *mut c_void, op: c_int) -> *mut c_char;
    fn swerl_reduce_scatter(
        group: *mut CGroup,
        output: *mut c_void,
        input: *mut c_void,
        op: c_int,
    ) -> *mut c_char;
    fn swerl_all_gather(group: *mut CGroup, output: *mut c_void, input: *mut c_void)
        -> *mut c_char;
    fn swerl_broadcast(group: *mut CGroup, tensor: *mut c_void, root: c_int) -> *mut c_char;
    fn swerl_barrier(group: *mut CGroup) -> *mut c_char;
    fn swerl_tensor_drop_grad(tensor: *mut c_void) -> *mut c_char;
}

/// Turns the shim's error convention (NULL or a malloc'd message) into a `Result`.
fn check(err: *mut c_char) -> Result<(), String> {
    if err.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null return is a NUL-terminated string from the shim's malloc; it is
    // copied, then freed exactly once.
    let message = unsafe { CStr::from_ptr(err) }
        .to_string_lossy()
        .into_owned();
    unsafe { swerl_free_string(err) };
    Err(message)
}

fn c_string(text: &str) -> Result<CString, String> {
    CString::new(text).map_err(|_| format!("{text:?} contains a NUL byte"))
}

fn tensor_ptr(t: &mut Tensor) -> *mut c_void {
    t.as_mut_ptr().cast()
}

/// A c10d `TCPStore`, server or client.
#[derive(Debug)]
pub struct RawStore(*mut CStore);

// SAFETY: TCPStore serialises its own socket use; the handle is only moved between threads.
unsafe impl Send for RawStore {}

impl RawStore {
    pub fn new(
        host: &str,
        port: u16,
        is_server: bool,
        wait_workers: usize,
        timeout_ms: i64,
    ) -> Result<Self, String> {
        let host = c_string(host)?;
        let mut out = std::ptr::null_mut();
        // SAFETY: valid C string, out-pointer to a local; the shim sets `out` only on success.
        check(unsafe {
            swerl_store_new(
                host.as_ptr(),
                port,
                c_int::from(is_server),
                wait_workers.try_into().unwrap_or(c_int::MAX),
                timeout_ms,
                &mut out,
            )
        })?;
        Ok(RawStore(out))
    }

    pub fn port(&self) -> u16 {
        // SAFETY: self.0 is a live store from swerl_store_new.
        unsafe { swerl_store_port(self.0) }
    }
}

impl Drop for RawStore {
    fn drop(&mut self) {
        // SAFETY: freed exactly once; a process group built on it holds its own reference.
        unsafe { swerl_store_free(self.0) }
    }
}

/// A c10d `Backend` (ProcessGroupGloo, or ProcessGroupNCCL from the plugin).
#[derive(Debug)]
pub struct RawGroup(*mut CGroup);

// SAFETY: c10d backends are used from one thread at a time here; the handle only moves.
unsafe impl Send for RawGroup {}

impl RawGroup {
    pub fn gloo(
        store: &mut RawStore,
        prefix: &str,
        rank: usize,
        size: usize,
        timeout_ms: i64,
    ) -> Result<Self, String> {
        let prefix = c_string(prefix)?;
        let mut out = std::ptr::null_mut();
        // SAFETY: live store, valid C string, out-pointer to a local.
        check(unsafe {
            swerl_group_new_gloo(
                store.0,
                prefix.as_ptr(),
                rank as c_int,
                size as c_int,
                timeout_ms,
                &mut out,
            )
        })?;
        Ok(RawGroup(out))
    }

    /// A backend built by a plugin's factory (see `nccl.rs`).
    pub fn from_plugin(
        store: &mut RawStore,
        prefix: &str,
        rank: usize,
        size: usize,
        timeout_ms: i64,
        factory: BackendFactory,
    ) -> Result<Self, String> {
        let prefix = c_string(prefix)?;
        let mut out = std::ptr::null_mut();
        // SAFETY: as for `gloo`; `factory` is the plugin's exported function with the
        // signature shim.h declares, and the plugin stays loaded for the process's life.
        check(unsafe {
            swerl_group_new_plugin(
                store.0,
                prefix.as_ptr(),
                rank as c_int,
                size as c_int,
                timeout_ms,
                factory,
                &mut out,
            )
        })?;
        Ok(RawGroup(out))
    }

    pub fn set_timeout(&mut self, timeout_ms: i64) -> Result<(), String> {
        // SAFETY: live group.
        check(unsafe { swerl_group_set_timeout(self.0, timeout_ms) })
    }

    pub fn all_reduce(&mut self, t: &mut Tensor, op: i32) -> Result<(), String> {
        // SAFETY: live group; the tensor handle is valid for the (blocking) call.
        check(unsafe { swerl_all_reduce(self.0, tensor_ptr(t), op) })
    }

    pub fn reduce_scatter(
        &mut self,
        output: &mut Tensor,
        input: &mut Tensor,
        op: i32,
    ) -> Result<(), String> {
        // SAFETY: as for all_reduce.
        check(unsafe { swerl_reduce_scatter(self.0, tensor_ptr(output), tensor_ptr(input), op) })
    }

    pub fn all_gather(&mut self, output: &mut Tensor, input: &mut Tensor) -> Result<(), String> {
        // SAFETY: as for all_reduce.
        check(unsafe { swerl_all_gather(self.0, tensor_ptr(output), tensor_ptr(input)) })
    }

    pub fn broadcast(&mut self, t: &mut Tensor, root: usize) -> Result<(), String> {
        // SAFETY: as for all_reduce.
        check(unsafe { swerl_broadcast(self.0, tensor_ptr(t), root as c_int) })
    }

    pub fn barrier(&mut self) -> Result<(), String> {
        // SAFETY: live group.
        check(unsafe { swerl_barrier(self.0) })
    }
}

impl Drop for RawGroup {
    fn drop(&mut self) {
        // SAFETY: freed exactly once.
        unsafe { swerl_group_free(self.0) }
    }
}

/// Sets `t.grad` to undefined (PyTorch's `t.grad = None`): the next backward allocates a
/// fresh gradient shaped like `t` is then. tch has no call for it.
pub fn drop_grad(t: &mut Tensor) -> Result<(), String> {
    // SAFETY: a valid tensor handle for the duration of the call.
    check(unsafe { swerl_tensor_drop_grad(tensor_ptr(t)) })
}

/// Loads a backend plugin from bytes (through a memfd, so nothing is written to disk) and
/// returns its factory `symbol`. The library is never unloaded. `bytes` must be a plugin
/// built from cxx/nccl_plugin.cpp by build.rs, whose `symbol` has [`BackendFactory`]'s
/// signature.
#[cfg_attr(not(swerl_nccl_plugin), allow(dead_code))]
pub fn load_backend_plugin(
    name: &str,
    bytes: &[u8],
    symbol: &str,
) -> Result<BackendFactory, String> {
    use std::io::Write;
    use std::os::fd::{AsRawFd, FromRawFd};
    let cname = c_string(name)?;
    // SAFETY: memfd_create with a valid name; the returned descriptor is owned by the File.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), 0) };
    if fd < 0 {
        return Err(format!("memfd_create: {}", std::io::Error::last_os_error()));
    }
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.write_all(bytes)
        .map_err(|e| format!("writing {name} to a memfd: {e}"))?;
    let path = c_string(&format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    let csym = c_string(symbol)?;
    // SAFETY: dlopen of a complete ELF image; the handle is kept for the process's life, so
    // the returned symbol stays valid after `file` (the descriptor) is closed.
    unsafe {
        let handle = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        if handle.is_null() {
            return Err(dl_error());
        }
        let sym = libc::dlsym(handle, csym.as_ptr());
        if sym.is_null() {
            return Err(dl_error());
        }
        // The plugin is ours and exports `symbol` with this signature (shim.h).
        Ok(std::mem::transmute::<*mut c_void, BackendFactory>(sym))
    }
}

/// The message of the last failed dl* call.
#[cfg_attr(not(swerl_nccl_plugin), allow(dead_code))]
fn dl_error() -> String {
    // SAFETY: dlerror returns a thread-local C string valid until the next dl* call, copied
    // out at once.
    unsafe {
        let err = libc::dlerror();
        if err.is_null() {
            "unknown dynamic loader error".to_string()
        } else {
            CStr::from_ptr(err).to_string_lossy().into_owned()
        }
    }
}
