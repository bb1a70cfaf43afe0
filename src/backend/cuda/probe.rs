//! Is CUDA usable here? Probes for the driver and NVRTC libraries without touching cudarc's loaders, which panic
//! when a library is missing (../shared/docs/CUDA.md §3).
//!
//! NVRTC may also come from the pinned PyPI wheels (`nvidia-cuda-nvrtc==13.0.88`, installed by `scripts/test.sh`
//! into the ignored `.venv-cuda`): cudarc `dlopen`s NVRTC by name, so [`nvrtc_present`] first preloads
//! `libnvrtc-builtins.so.13.0` and `libnvrtc.so.13` by absolute path from `FGSSL_NVRTC_DIR` (or the project's
//! `.venv-cuda`), after which the by-name `dlopen("libnvrtc.so.13")` resolves by SONAME.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The two files NVRTC needs from a wheel's `lib/` folder. Without the builtins library every compile fails with
/// `NVRTC_ERROR_BUILTIN_OPERATION_FAILURE`.
const NVRTC_LIBS: [&str; 2] = ["libnvrtc-builtins.so.13.0", "libnvrtc.so.13"];

/// What to install when NVRTC is missing.
pub const NVRTC_HELP: &str = "NVRTC (libnvrtc.so) not found: install the CUDA toolkit (and put its lib folder on LD_LIBRARY_PATH), \
or `pip install nvidia-cuda-nvrtc==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-crt==13.0.88` and set \
FGSSL_NVRTC_DIR to the wheel's .../site-packages/nvidia/cu13/lib folder (scripts/test.sh does this in .venv-cuda)";

/// `true` when the CUDA driver library (`libcuda.so.1`) loads. Cached for the process.
pub fn driver_present() -> bool {
    static P: OnceLock<bool> = OnceLock::new();
    // SAFETY: dlopen/dlclose of the driver library by name; no symbol is called.
    *P.get_or_init(|| unsafe { cudarc::driver::sys::is_culib_present() })
}

/// `true` when NVRTC loads, after preloading it from the wheel folder if there is one. Cached for the process.
pub fn nvrtc_present() -> bool {
    static P: OnceLock<bool> = OnceLock::new();
    *P.get_or_init(|| {
        preload_nvrtc();
        // SAFETY: dlopen/dlclose of NVRTC by name; no symbol is called.
        unsafe { cudarc::nvrtc::sys::is_culib_present() }
    })
}

/// The NVRTC version `(major, minor)`, when NVRTC is present.
pub fn nvrtc_version() -> Option<(i32, i32)> {
    static V: OnceLock<Option<(i32, i32)>> = OnceLock::new();
    *V.get_or_init(|| {
        if !nvrtc_present() {
            return None;
        }
        let (mut major, mut minor) = (0, 0);
        // SAFETY: NVRTC is loadable (probed above); the out-pointers are valid locals.
        let rc = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
        (rc == cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS).then_some((major, minor))
    })
}

/// The folder the NVRTC libraries were preloaded from, if any.
pub fn nvrtc_preloaded_from() -> Option<&'static Path> {
    preload_nvrtc().as_deref()
}

/// Folders to search for CUDA headers (`cuda_fp16.h`, `cuda_bf16.h`, `mma.h`): `CUDA_INCLUDE_DIRS`
/// (colon-separated), else the wheel's `include/` next to the preloaded `lib/`.
pub fn include_dirs() -> Vec<String> {
    if let Some(v) = std::env::var_os("CUDA_INCLUDE_DIRS").filter(|v| !v.is_empty()) {
        return std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()).map(|p| p.to_string_lossy().into_owned()).collect();
    }
    nvrtc_preloaded_from()
        .and_then(|lib| lib.parent())
        .map(|cu13| cu13.join("include"))
        .filter(|inc| inc.is_dir())
        .map(|inc| vec![inc.to_string_lossy().into_owned()])
        .unwrap_or_default()
}

/// The wheel folder to preload from: `FGSSL_NVRTC_DIR`, else the project's
/// `.venv-cuda/lib/python3*/site-packages/nvidia/cu13/lib` (found relative to the crate's source folder).
fn wheel_lib_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("FGSSL_NVRTC_DIR").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-cuda").join("lib");
    let mut pythons: Vec<PathBuf> = std::fs::read_dir(&lib)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path().join("site-packages/nvidia/cu13/lib"))
        .filter(|p| p.is_dir())
        .collect();
    pythons.sort();
    pythons.pop()
}

/// Loads both NVRTC libraries by absolute path once and keeps them loaded for the life of the process. Returns the
/// folder on success. Does nothing when the folder lacks either file.
fn preload_nvrtc() -> &'static Option<PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = wheel_lib_dir()?;
        if !NVRTC_LIBS.iter().all(|f| dir.join(f).is_file()) {
            return None;
        }
        for f in NVRTC_LIBS {
            // SAFETY: loading NVIDIA's NVRTC libraries runs only their initialisers. The handle is leaked on purpose:
            // the library must stay loaded so that cudarc's later by-name dlopen resolves to it.
            match unsafe { libloading::Library::new(dir.join(f)) } {
                Ok(lib) => std::mem::forget(lib),
                Err(_) => return None,
            }
        }
        Some(dir)
    })
}
