//! Applying a forwarded command in cluster mode: the cluster side decides
//! whether it goes through the router, on the client's own connection, or is
//! answered here (a `CLUSTER` query, a queued transaction command, a
//! `CROSSSLOT` refusal); the reply slots are queued to match.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};

use super::cluster::link::Sent;
use super::slots::{Emit, LocalReply, SlotKind};
use super::{replies, Conn};
use crate::resp::request::{RequestScan, RequestScanner, ScanLimits};
use crate::upstream;

impl<S: AsyncRead + AsyncWrite + Send + Unpin> Conn<S> {
    /// Applies a forwarded command (`instead`: bytes the proxy forwards in its
    /// place) in cluster mode; true when it went upstream.
    pub(super) async fn apply_cluster(
        &mut self,
        instead: Option<Bytes>,
        kind: SlotKind,
        emit: Emit,
        suppress: bool,
        command: Range<usize>,
        upstream_failed: &mut bool,
    ) -> bool {
        let renames = Arc::clone(&self.live.renames);
        let local = self.card.local;
        let mut own_scanner = RequestScanner::new(ScanLimits::default());
        let (bytes, args) = match &instead {
            Some(b) => match own_scanner.scan(b, false) {
                Ok(RequestScan::Complete(_)) => (&b[..], own_scanner.args(b)),
                _ => return false,
            },
            None => {
                let inbuf = &self.client.rx.inbuf;
                (
                    &inbuf[command.clone()],
                    self.scanner.args(&inbuf[command.start..]),
                )
            }
        };
        let renamed = renames.rewrite(bytes, instead.is_none().then_some(args));
        let wire = renamed.as_deref().unwrap_or(bytes);
        let Some(side) = self.link.cluster.as_mut() else {
            return false;
        };
        let sent = side.forward(wire, args, &emit, &renames, local);
        let wire = Bytes::copy_from_slice(wire);
        let emit = if suppress { Emit::Drop } else { emit };
        let auth = (kind == SlotKind::Reset)
            .then(|| upstream::auth_command(&self.live.config.upstream, &renames))
            .flatten();
        match sent {
            Sent::Local(reply) => {
                if !suppress {
                    self.slots.push_local(reply);
                }
                false
            }
            Sent::Dirty(reply) => {
                self.session.spoil_transaction();
                if !suppress {
                    self.slots.push_local(LocalReply::Static(reply));
                }
                false
            }
            Sent::Router => {
                self.slots.push_upstream(kind, emit);
                if let (Some(auth), Some(side)) = (auth, self.link.cluster.as_mut()) {
                    // RESET also logged the connection out: log it back in.
                    side.router.send(&auth, None, false);
                    self.slots.push_upstream(SlotKind::Plain, Emit::Drop);
                }
                true
            }
            Sent::Own { bytes, drops, then } => {
                let opening = !self.link.is_open();
                if opening && !*upstream_failed {
                    *upstream_failed = !self.open_link().await;
                    let resp3 = self.link.cluster.as_ref().is_some_and(|c| c.router.resp3);
                    if self.link.is_open() && resp3 {
                        // A RESP3 client's new own connection speaks RESP3 too.
                        let hello = renames.command(&[b"HELLO", b"3"]).unwrap_or_default();
                        self.link.send(&hello);
                        self.slots.push_upstream(SlotKind::Plain, Emit::Drop);
                    }
                }
                if !self.link.is_open() {
                    if !suppress {
                        self.slots
                            .push_local(LocalReply::Static(replies::UPSTREAM_UNAVAILABLE));
                    }
                    return false;
                }
                if let Some(setname) = self.session.take_pending_name() {
                    let renamed = renames.rewrite(&setname, None);
                    self.link.send(renamed.as_deref().unwrap_or(&setname));
                    self.slots.push_upstream(SlotKind::Plain, Emit::Drop);
                }
                self.link.send(bytes.as_deref().unwrap_or(&wire));
                for _ in 0..drops {
                    self.slots.push_upstream(SlotKind::Plain, Emit::Drop);
                }
                match then {
                    Some(reply) if !suppress => self.slots.push_local(reply),
                    Some(_) => {}
                    None => self.slots.push_upstream(kind, emit),
                }
                if let Some(auth) = auth {
                    self.link.send(&auth);
                    self.slots.push_upstream(SlotKind::Plain, Emit::Drop);
                }
                true
            }
        }
    }
}
