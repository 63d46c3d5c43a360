//! How a [`LeaseApiServer`] is set up before it starts: where it listens
//! and which kube-apiserver it behaves as.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::LeaseApiServer;
use crate::http;
use crate::resource::Gates;
use crate::shared::Shared;

/// Sets up a [`LeaseApiServer`]; from [`LeaseApiServer::builder`].
///
/// ```
/// use kube_elector_testing::LeaseApiServer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// // A server as a cluster with coordinated leader election turned on.
/// let server = LeaseApiServer::builder()
///     .coordinated_leader_election(true)
///     .start()
///     .await?;
/// # drop(server);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct LeaseApiServerBuilder {
    addr: SocketAddr,
    gates: Gates,
}

impl Default for LeaseApiServerBuilder {
    fn default() -> Self {
        Self {
            // Loopback only, at a free port: a test server is for this machine.
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            gates: Gates {
                // Off, as in kube-apiserver 1.33 to 1.37, where the
                // CoordinatedLeaderElection gate is beta and off by default.
                coordinated_leader_election: false,
            },
        }
    }
}

impl LeaseApiServerBuilder {
    /// Listens on `addr` (default: 127.0.0.1 at a free port).
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Behaves as a kube-apiserver with the `CoordinatedLeaderElection`
    /// feature gate `on`, or (the default) off.
    ///
    /// Off, the server drops `spec.strategy` and `spec.preferredHolder`
    /// from a Lease without a word: always when it creates one, and when it
    /// updates one (PUT, patch, apply) each field the stored Lease did not
    /// already have. On, it keeps them, and refuses with 422 Invalid a
    /// `preferredHolder` without a `strategy` and a strategy other than
    /// `OldestEmulationVersion` or a prefixed name (`example.com/mine`).
    ///
    /// On, it also serves `coordination.k8s.io/v1beta1` `LeaseCandidate`s
    /// (as kube-apiserver does with the gate and that version enabled) and
    /// lists v1beta1 in discovery; off, every path under v1beta1 answers 404.
    pub fn coordinated_leader_election(mut self, on: bool) -> Self {
        self.gates.coordinated_leader_election = on;
        self
    }

    /// Binds the address and starts serving.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(self) -> std::io::Result<LeaseApiServer> {
        let listener = TcpListener::bind(self.addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(self.gates));
        tokio::spawn(http::serve(listener, Arc::clone(&shared)));
        Ok(LeaseApiServer {
            addr,
            _stop: shared.shutdown.clone().drop_guard(),
            shared,
        })
    }
}
