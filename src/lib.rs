//! Leader election for Kubernetes workloads (skeleton; filled in by the elector work).

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
