//! The watch layer, below the elector and the hub: the one watch loop
//! (lists, watches, resumes, backs off) for a Lease or a whole namespace,
//! the mailbox it leaves an elector's updates in, and what an elector
//! takes from a shared watch. Delivery beyond one mailbox (a hub's
//! members and taps) is the caller's, through a [`Sink`].

mod backoff;
mod lease;
mod line;
mod machine;
mod mailbox;

pub(crate) use backoff::Backoff;
pub(crate) use lease::ToMailbox;
pub(crate) use line::{Line, Member, Membership, SharedWatch};
pub(crate) use machine::{Event, Scope, Sink, Timing, Watch};
pub(crate) use mailbox::{Inbox, Mailbox, Update};
