//! What an elector takes from a shared watch (a hub): a place among the
//! Lease's watchers and in its line of candidates, and the limit on
//! requests in flight. The elector sees only these interfaces, never the
//! hub that implements them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::mailbox::Mailbox;

/// A watch shared by many electors and observers, as an elector uses it.
pub(crate) trait SharedWatch: Send + Sync + std::fmt::Debug {
    /// The limit on requests in flight that every member shares.
    fn limit(&self) -> Arc<Semaphore>;

    /// Joins the watch of `namespace` for the Lease `name`: updates go to
    /// `mailbox` until the returned membership is dropped; a member that
    /// `campaigns` stands in the Lease's line as `identity`.
    fn join(
        &self,
        namespace: &str,
        name: &str,
        identity: &str,
        campaigns: bool,
        mailbox: Arc<Mailbox>,
    ) -> Membership;
}

/// The watchers of a Lease and its line, as a membership reaches them.
pub(crate) trait Line: Send + Sync {
    /// The first candidate in line for `name`, not counting leaders and
    /// `except`.
    fn first_in_line(&self, name: &str, except: Option<&str>) -> Option<Arc<Member>>;

    /// Removes `member` (the watch stops when nobody is left).
    fn leave(&self, member: &Arc<Member>);
}

/// One elector's or observer's place in a shared watch.
#[derive(Debug)]
pub(crate) struct Member {
    /// The name of its Lease.
    pub(crate) name: String,
    pub(crate) identity: Arc<str>,
    /// Whether it stands in line (an observer does not).
    pub(crate) campaigns: bool,
    /// Whether it leads now: a leader is not in line.
    pub(crate) leading: AtomicBool,
    pub(crate) mailbox: Arc<Mailbox>,
    /// Its own watch of its Lease, while the shared watch is forbidden.
    pub(crate) own_watch: Mutex<Option<CancellationToken>>,
}

impl Member {
    pub(crate) fn new(name: &str, identity: &str, campaigns: bool, mailbox: Arc<Mailbox>) -> Self {
        Self {
            name: name.to_owned(),
            identity: Arc::from(identity),
            campaigns,
            leading: AtomicBool::new(false),
            mailbox,
            own_watch: Mutex::new(None),
        }
    }

    /// Stops its own watch of its Lease, if it has one.
    pub(crate) fn stop_own_watch(&self) {
        if let Some(token) = self
            .own_watch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            token.cancel();
        }
    }
}

/// Held by an elector's task: leaves the watch (and the line) when dropped.
pub(crate) struct Membership {
    member: Arc<Member>,
    line: Box<dyn Line>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("lease", &self.member.name)
            .finish_non_exhaustive()
    }
}

impl Membership {
    pub(crate) fn new(member: Arc<Member>, line: Box<dyn Line>) -> Self {
        Self { member, line }
    }

    /// The member itself (for tests that look inside the hub).
    #[cfg(test)]
    pub(crate) fn member(&self) -> &Arc<Member> {
        &self.member
    }

    /// Says whether this member leads now: a leader is not in line.
    pub(crate) fn set_leading(&self, leading: bool) {
        self.member.leading.store(leading, Ordering::Release);
    }

    /// Whether this member is the first candidate in line for its Lease,
    /// not counting leaders and the successor `named`.
    pub(crate) fn first_in_line(&self, named: Option<&str>) -> bool {
        self.line
            .first_in_line(&self.member.name, named)
            .is_some_and(|first| Arc::ptr_eq(&first, &self.member))
    }

    /// The candidate to name as successor when this member releases its
    /// Lease: the first other candidate in line in this process.
    pub(crate) fn successor(&self) -> Option<Arc<str>> {
        self.line
            .first_in_line(&self.member.name, Some(&self.member.identity))
            .map(|m| Arc::clone(&m.identity))
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.member.stop_own_watch();
        self.line.leave(&self.member);
    }
}
