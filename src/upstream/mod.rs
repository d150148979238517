//! Step 4, the upstream servers: where new connections go (`address`, or the
//! master Sentinel names: [`endpoints`], [`sentinel`]), opening one (TCP or
//! unix, TLS, the proxy's `AUTH`, `CLIENT ID`, `ROLE`: [`connect`]), the
//! shared connections of pooled mode ([`pool`]), and the upstream's names for
//! renamed commands ([`renames`]).

pub mod cluster;
mod connect;
pub mod endpoints;
pub mod pool;
pub mod renames;
pub mod sentinel;

pub use connect::{
    auth_command, connect_to, exchange, label, Connected, UpstreamError, UpstreamStream,
};
pub use endpoints::{Endpoint, Endpoints};
pub use pool::{Pool, PoolReply, Seat, SeatReplies};
pub use renames::Renames;

use crate::config::{UpstreamSettings, UpstreamTarget};
use crate::tls::UpstreamTls;

/// What background upstream tasks (the Sentinel watcher, pooled connections)
/// read from the configuration in force, each time they connect.
pub struct UpstreamView {
    /// `[upstream]`.
    pub settings: UpstreamSettings,
    /// `[upstream.tls]`, loaded.
    pub tls: Option<UpstreamTls>,
    /// `rename_commands`.
    pub renames: Renames,
}

/// Opens a connection for a client: to `address`, or to the master
/// `endpoints` knows (waiting up to `connect_timeout_ms` for one), whose
/// `ROLE` must say master. Returns it with the master's generation (0 for a
/// fixed address). A failure in Sentinel mode asks for a new discovery.
pub async fn connect(
    settings: &UpstreamSettings,
    tls: Option<&UpstreamTls>,
    renames: &Renames,
    endpoints: &Endpoints,
) -> Result<(Connected, u64), UpstreamError> {
    match &settings.target {
        UpstreamTarget::Address(addr) => {
            let connected = connect_to(addr, settings, tls, renames, false).await?;
            Ok((connected, 0))
        }
        // Any node that answers (each command's node is chosen by the router).
        UpstreamTarget::Cluster(cluster) => {
            let mut last = UpstreamError::NoMaster;
            for seed in &cluster.seeds {
                match connect_to(seed, settings, tls, renames, false).await {
                    Ok(connected) => return Ok((connected, 0)),
                    Err(e) => last = e,
                }
            }
            Err(last)
        }
        UpstreamTarget::Sentinel(_) => {
            let Some(master) = endpoints.wait(settings.connect_timeout).await else {
                return Err(UpstreamError::NoMaster);
            };
            match connect_to(&master.addr, settings, tls, renames, true).await {
                Ok(connected) => Ok((connected, master.generation)),
                Err(e) => {
                    endpoints.request_discovery();
                    Err(e)
                }
            }
        }
    }
}
