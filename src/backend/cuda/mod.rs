//! The CUDA device runtime (cudarc 0.19, dynamic loading, CUDA 13.0) and the NVRTC kernel registry.
//!
//! Nothing here panics on a machine without CUDA: [`probe`] checks for the driver and NVRTC libraries before any
//! cudarc loader is touched (those panic when a library is missing). The `Backend` implementation ([`Cuda`]; its
//! GPU runs are recorded in `docs/GPU-STATUS.md`) builds on [`CudaDevice`].

pub mod backend;
pub mod launch;
pub mod pool;
pub mod probe;
pub mod registry;
pub mod timing;

pub use backend::Cuda;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cudarc::driver::{sys::CUresult, CudaContext, CudaFunction, CudaModule, CudaStream, DriverError};
use cudarc::nvrtc::Ptx;

use crate::error::{Error, Result};

fn cuda_err(reason: impl Into<String>) -> Error {
    Error::Backend { backend: "cuda".into(), reason: reason.into() }
}

/// One opened GPU: its context, the single stream the engine uses, and the kernel modules loaded so far.
pub struct CudaDevice {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    pub ordinal: usize,
    /// The card's name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Compute capability `(major, minor)`.
    pub cc: (i32, i32),
    /// NVRTC target for this card (`sm_90` on H100/H200), `None` for an architecture this build does not know.
    pub arch: Option<&'static str>,
    modules: Mutex<HashMap<String, Arc<CudaModule>>>,
}

impl std::fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaDevice").field("ordinal", &self.ordinal).field("name", &self.name).field("cc", &self.cc).finish()
    }
}

/// Why `CudaContext::new` failed, in words.
fn describe_open_error(ordinal: usize, e: DriverError) -> String {
    match e.0 {
        CUresult::CUDA_ERROR_NO_DEVICE => "no CUDA device".into(),
        CUresult::CUDA_ERROR_INVALID_DEVICE => {
            let count = CudaContext::device_count().unwrap_or(0);
            format!("no CUDA device cuda:{ordinal} ({count} device(s) found)")
        }
        CUresult::CUDA_ERROR_STUB_LIBRARY => "libcuda.so.1 is the CUDA toolkit's stub library, not a driver".into(),
        other => format!("cannot open cuda:{ordinal}: {other:?}"),
    }
}

impl CudaDevice {
    /// Opens GPU `ordinal`: probes for the driver library first, then creates the context (event tracking off: one
    /// stream) and takes the default stream. `Err(Error::Backend)` with a plain reason when CUDA is unavailable.
    pub fn open(ordinal: usize) -> Result<Self> {
        if !probe::driver_present() {
            return Err(cuda_err("no CUDA driver (libcuda.so.1 not found)"));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| cuda_err(describe_open_error(ordinal, e)))?;
        // SAFETY: called right after creation, before any allocation or second stream; the engine uses one stream.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let name = ctx.name().map_err(|e| cuda_err(format!("cuda:{ordinal}: cannot read the device name: {e:?}")))?;
        let cc = ctx.compute_capability().map_err(|e| cuda_err(format!("cuda:{ordinal}: cannot read the compute capability: {e:?}")))?;
        Ok(CudaDevice { ctx, stream, ordinal, name, cc, arch: registry::arch_for(cc.0, cc.1), modules: Mutex::new(HashMap::new()) })
    }

    /// The NVRTC target for this card, or an error naming the unknown compute capability.
    pub fn arch(&self) -> Result<&'static str> {
        self.arch.ok_or_else(|| cuda_err(format!("{}: compute capability {}.{} is not supported by this build", self.name, self.cc.0, self.cc.1)))
    }

    /// The module compiled from the embedded `kernels/<file_name>`: compiled with NVRTC on first use (or read from
    /// `FGSSL_KERNEL_CACHE`), loaded once per device.
    pub fn module(&self, file_name: &str) -> Result<Arc<CudaModule>> {
        let mut modules = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = modules.get(file_name) {
            return Ok(m.clone());
        }
        let cubin = registry::cubin(file_name, self.arch()?)?;
        let module =
            self.ctx.load_module(Ptx::from_binary(cubin.to_vec())).map_err(|e| cuda_err(format!("{file_name}: cannot load the module: {e:?}")))?;
        modules.insert(file_name.to_string(), module.clone());
        Ok(module)
    }

    /// Kernel `kernel` from `kernels/<file_name>`.
    pub fn function(&self, file_name: &str, kernel: &str) -> Result<CudaFunction> {
        self.module(file_name)?.load_function(kernel).map_err(|e| cuda_err(format!("{file_name}: no kernel '{kernel}': {e:?}")))
    }

    /// `cuda:N (name, sm_XX)`, for the `device:` line commands print.
    pub fn describe(&self) -> String {
        format!("cuda:{} ({}, compute capability {}.{})", self.ordinal, self.name, self.cc.0, self.cc.1)
    }
}
