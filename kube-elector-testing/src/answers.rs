//! Faults in what answers say and when they arrive: write answers lost or
//! late after the write was applied, reads answered from an old snapshot.

use hyper::Response;

use crate::shared::Shared;
use crate::wire::{Body, Dropped};

/// The answer to a write of `client`, once the write was applied (or
/// refused): dropped with the connection, delayed, or as it is.
///
/// # Errors
/// [`Dropped`] when the client's write answers are lost.
pub(crate) async fn write_answer(
    shared: &Shared,
    client: &str,
    answer: Response<Body>,
) -> Result<Response<Body>, Dropped> {
    let faults = shared.faults.snapshot();
    if faults.flagged(crate::faults::Flag::LoseWriteAnswers, client) {
        return Err(Dropped);
    }
    let delay = faults.write_answer_delay(client);
    if !delay.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shared.shutdown.cancelled() => return Err(Dropped),
        }
    }
    Ok(answer)
}
