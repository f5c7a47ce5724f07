//! AOTInductor packages (`.pt2`, made by `torch.export` and
//! `torch._inductor.aoti_compile_and_package`), run through LibTorch's
//! package loader by a small C++ shim (`cpp/aoti_shim.cpp`). Tensors cross
//! as tch's own `at::Tensor` pointers: nothing is copied.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use tch::{Device, Tensor};

extern "C" {
    fn maas_aoti_load(path: *const c_char, device_index: c_int, error: *mut *mut c_char) -> *mut c_void;
    fn maas_aoti_device(loader: *mut c_void) -> *mut c_char;
    fn maas_aoti_run(
        loader: *mut c_void,
        inputs: *const *mut torch_sys::C_tensor,
        input_count: usize,
        outputs: *mut *mut *mut torch_sys::C_tensor,
        output_count: *mut usize,
        error: *mut *mut c_char,
    ) -> c_int;
    fn maas_aoti_free_outputs(outputs: *mut *mut torch_sys::C_tensor);
    fn maas_aoti_free(loader: *mut c_void);
    fn maas_aoti_free_message(message: *mut c_char);
}

/// Takes a message the shim allocated.
fn take_message(message: *mut c_char) -> String {
    if message.is_null() {
        return "no message".into();
    }
    // SAFETY: the shim returns NUL-terminated strings it allocated with
    // malloc, freed here once copied.
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned();
    unsafe { maas_aoti_free_message(message) };
    text
}

/// One loaded package. Its runner is not shared between threads at once:
/// an instance thread owns it.
pub struct AotiModel {
    loader: NonNull<c_void>,
}

// SAFETY: the loader is used by one thread at a time (its instance thread),
// and LibTorch's runner holds no thread-local state.
unsafe impl Send for AotiModel {}

/// Loads `libtorch.so` for everything after it to see: a package's
/// compiled model needs it, and a library opened at run time does not
/// search the binary's rpath. Tried from the LibTorch the build linked,
/// then wherever the dynamic loader looks (`LD_LIBRARY_PATH`).
fn preload_libtorch() -> Result<()> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    let loaded = LOADED.get_or_init(|| {
        let candidates = [format!("{}/libtorch.so", env!("MAAS_LIBTORCH_LIB_DIR")), "libtorch.so".to_string()];
        for candidate in &candidates {
            let name = CString::new(candidate.as_str()).map_err(|e| e.to_string())?;
            // SAFETY: dlopen of a library LibTorch already depends on; the
            // handle is kept for the life of the process.
            let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
            if !handle.is_null() {
                return Ok(());
            }
        }
        Err(format!("libtorch.so is not in {} nor on the library path", env!("MAAS_LIBTORCH_LIB_DIR")))
    });
    loaded.clone().map_err(|message| anyhow::anyhow!("{message}"))
}

impl AotiModel {
    /// Loads the package at `path` for `device`, checking that it was
    /// compiled for that kind of device.
    pub fn load(path: &Path, device: Device) -> Result<AotiModel> {
        preload_libtorch()?;
        let text = path.to_str().with_context(|| format!("package path {} is not UTF-8", path.display()))?;
        let c_path = CString::new(text).context("package path holds a NUL byte")?;
        let device_index = match device {
            Device::Cuda(index) => index as c_int,
            _ => -1,
        };
        let mut error = std::ptr::null_mut();
        // SAFETY: the path is a valid C string; `error` receives a message
        // the shim allocated when loading fails.
        let loader = unsafe { maas_aoti_load(c_path.as_ptr(), device_index, &mut error) };
        let Some(loader) = NonNull::new(loader) else {
            bail!("loading AOTInductor package {}: {}", path.display(), first_line(&take_message(error)));
        };
        let model = AotiModel { loader };
        let compiled_for = model.compiled_for();
        let wanted = if device.is_cuda() { "cuda" } else { "cpu" };
        if !compiled_for.is_empty() && compiled_for != wanted {
            bail!("the package was compiled for {compiled_for}, and this instance runs on {wanted}; export it for {wanted}");
        }
        Ok(model)
    }

    /// The device kind the package was compiled for, from its metadata.
    fn compiled_for(&self) -> String {
        // SAFETY: the loader is live; the shim returns a message to free.
        take_message(unsafe { maas_aoti_device(self.loader.as_ptr()) })
    }

    /// Runs the model on `inputs`, returning its outputs in order.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, String> {
        let pointers: Vec<*mut torch_sys::C_tensor> = inputs.iter().map(|t| t.as_ptr() as *mut _).collect();
        let mut outputs = std::ptr::null_mut();
        let mut count = 0usize;
        let mut error = std::ptr::null_mut();
        // SAFETY: the input pointers are live tch tensors for the call's
        // length; on success the shim hands over `count` new tensors.
        let status = unsafe {
            maas_aoti_run(self.loader.as_ptr(), pointers.as_ptr(), pointers.len(), &mut outputs, &mut count, &mut error)
        };
        if status != 0 {
            return Err(first_line(&take_message(error)));
        }
        // SAFETY: each output pointer is a heap `at::Tensor` now owned by
        // tch; the array itself is freed by the shim.
        let tensors = (0..count).map(|i| unsafe { Tensor::from_ptr(*outputs.add(i)) }).collect();
        unsafe { maas_aoti_free_outputs(outputs) };
        Ok(tensors)
    }
}

impl Drop for AotiModel {
    fn drop(&mut self) {
        // SAFETY: the loader was made by maas_aoti_load and is freed once.
        unsafe { maas_aoti_free(self.loader.as_ptr()) };
    }
}

/// The first line of a LibTorch error: the rest is a C++ backtrace.
fn first_line(message: &str) -> String {
    message.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("unknown error").to_string()
}
