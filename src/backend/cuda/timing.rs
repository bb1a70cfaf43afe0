//! Stream-ordered timing for `fgssl bench` (CUDA.md §11: time with events, not with the host clock).
//!
//! A mark is an event with timing enabled, recorded on the engine's one stream: it completes when every kernel
//! queued before it has finished, so the time between two marks is device time, launch gaps included. Events are
//! created per mark (microseconds each) because only benchmarks mark; the training path never does.

use cudarc::driver::{sys, CudaEvent};

use super::{cuda_err, CudaDevice};
use crate::error::Result;

/// Records a timing event after the work queued so far.
pub fn mark(dev: &CudaDevice) -> Result<CudaEvent> {
    // `new_event(None)` would create an event with timing disabled, which `elapsed_ms` rejects.
    let event =
        dev.ctx.new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT)).map_err(|e| cuda_err(format!("cannot create a timing event: {e:?}")))?;
    event.record(&dev.stream).map_err(|e| cuda_err(format!("cannot record a timing event: {e:?}")))?;
    Ok(event)
}

/// Milliseconds between two recorded events; waits for both (and so surfaces asynchronous kernel faults).
pub fn elapsed_ms(from: &CudaEvent, to: &CudaEvent) -> Result<f64> {
    from.elapsed_ms(to).map(f64::from).map_err(|e| cuda_err(format!("cannot read the time between two events: {e:?}")))
}
