//! The item of a leader-gated controller's stream.

use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

/// What [`LeaderController::run`](super::LeaderController::run) yields: the
/// items of kube-runtime's `Controller::run` for the reconciles that ran the
/// application's code.
pub type RunItem<K, E> = Result<(ObjectRef<K>, Action), controller::Error<E, watcher::Error>>;
