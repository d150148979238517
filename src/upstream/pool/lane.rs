//! One shared upstream connection and the task that owns it: it takes
//! seats' batches in the order they come, writes them, and sends each reply
//! frame to the seat whose command is at the front of the in-flight FIFO.
//!
//! The lane never waits for a client. It always reads the upstream; it stops
//! taking batches only while its own output is full (the seats that wait then
//! stop reading their clients). Connection lost: every command in flight gets
//! [`PoolReply::Failed`] and the next batch opens a new connection (to the
//! master in force, with Sentinel).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::{Inbox, LaneTarget, PoolReply, Submission, ViewFn};
use crate::bufio::{pump, read_into, shrink};
use crate::config::UpstreamTarget;
use crate::config::{UpstreamAddr, UpstreamSettings};
use crate::logsafe::Escaped;
use crate::metrics::{Metrics, UpstreamCounted, UpstreamKind};
use crate::resp::reply::{ReplyScan, ReplyScanner};
use crate::upstream::connect::exchange;
use crate::upstream::{connect_to, label, Endpoint, Renames, UpstreamError, UpstreamStream};

/// Output waiting to be written above which no more batches are taken.
const OUT_HIGH: usize = 1 << 20;
/// A partial reply frame this large is passed on before it is complete.
const STREAM_MIN: usize = 64 * 1024;
/// Reply runs smaller than this are copied out of the read buffer (so a slow
/// client never keeps a whole read buffer alive); larger ones are split off.
const COPY_BELOW: usize = 64 * 1024;

/// One seat's commands in flight, in a row.
struct Run {
    inbox: Arc<Inbox>,
    commands: usize,
}

/// The open connection.
struct Open {
    r: ReadHalf<UpstreamStream>,
    w: WriteHalf<UpstreamStream>,
    unflushed: bool,
    /// The master's generation it was opened to (Sentinel), else `None`.
    generation: Option<u64>,
    _counted: UpstreamCounted,
}

/// What the lane carries between connections.
struct Lane {
    view: ViewFn,
    target: LaneTarget,
    metrics: Arc<Metrics>,
    /// Commands written or waiting to be, by seat, in order.
    in_flight: VecDeque<Run>,
    out: BytesMut,
    input: BytesMut,
    scanner: ReplyScanner,
}

/// Serves batches from `rx` until every sender is gone.
pub(super) async fn run(
    mut rx: mpsc::UnboundedReceiver<Submission>,
    target: LaneTarget,
    view: ViewFn,
    metrics: Arc<Metrics>,
) {
    // A fixed node never changes; Sentinel's master does.
    let mut master = match &target {
        LaneTarget::Configured(endpoints) => endpoints.watch(),
        LaneTarget::Node { .. } => watch::channel(None).1,
    };
    let mut lane = Lane {
        view,
        target,
        metrics,
        in_flight: VecDeque::new(),
        out: BytesMut::new(),
        input: BytesMut::new(),
        scanner: ReplyScanner::new(),
    };
    while let Some(first) = rx.recv().await {
        lane.take(first);
        lane.take_more(&mut rx);
        let mut open = match lane.connect().await {
            Ok(open) => open,
            Err(e) => {
                lane.metrics.upstream_connect_error();
                warn!(error = %Escaped(&e), "upstream unavailable (pooled connection)");
                // Everything waiting now would wait for the same answer.
                while let Ok(s) = rx.try_recv() {
                    lane.take(s);
                }
                lane.fail_all(false);
                continue;
            }
        };
        master.borrow_and_update();
        let why = lane.serve(&mut open, &mut rx, &mut master).await;
        let in_flight: usize = lane.in_flight.iter().map(|r| r.commands).sum();
        info!(in_flight, reason = %Escaped(&why), "pooled upstream connection lost");
        lane.fail_all(true);
    }
}

impl Lane {
    /// Opens a connection as the configuration in force says.
    async fn connect(&self) -> Result<Open, crate::upstream::UpstreamError> {
        let view = (self.view)().ok_or(crate::upstream::UpstreamError::ShuttingDown)?;
        let (s, tls, renames) = (&view.settings, view.tls.as_ref(), &view.renames);
        let (connected, generation) = match &self.target {
            LaneTarget::Configured(endpoints) => {
                crate::upstream::connect(s, tls, renames, endpoints).await?
            }
            LaneTarget::Node { addr, resp3 } => {
                let mut connected = connect_to(addr, s, tls, renames, false).await?;
                if *resp3 {
                    hello3(&mut connected.stream, addr, s, renames).await?;
                }
                (connected, 0)
            }
        };
        let (r, w) = tokio::io::split(connected.stream);
        let sentinel = matches!(self.target, LaneTarget::Configured(_))
            && matches!(s.target, UpstreamTarget::Sentinel(_));
        Ok(Open {
            r,
            w,
            unflushed: false,
            generation: sentinel.then_some(generation),
            _counted: self.metrics.upstream_opened(UpstreamKind::Pooled),
        })
    }

    /// Writes, reads and routes until the connection is lost; says why.
    async fn serve(
        &mut self,
        open: &mut Open,
        rx: &mut mpsc::UnboundedReceiver<Submission>,
        master: &mut watch::Receiver<Option<Endpoint>>,
    ) -> String {
        loop {
            let write = !self.out.is_empty() || open.unflushed;
            let take = self.out.len() < OUT_HIGH;
            tokio::select! {
                biased;
                r = pump(&mut open.w, &mut self.out, &mut open.unflushed), if write => {
                    if let Err(e) = r {
                        return e.to_string();
                    }
                }
                r = read_into(&mut open.r, &mut self.input) => match r {
                    Ok(0) => return "closed by upstream".into(),
                    Ok(_) => {
                        if let Err(why) = self.route() {
                            return why;
                        }
                        // The clients just answered send their next commands
                        // now: let them, so one write carries them all.
                        tokio::task::yield_now().await;
                        self.take_more(rx);
                    }
                    Err(e) => return e.to_string(),
                },
                s = rx.recv(), if take => match s {
                    Some(s) => {
                        self.take(s);
                        tokio::task::yield_now().await;
                        self.take_more(rx);
                    }
                    None => return "proxy shutting down".into(),
                },
                r = master.changed(), if open.generation.is_some() => {
                    let current = r.ok().and_then(|()| master.borrow_and_update().clone());
                    if current.is_some_and(|m| Some(m.generation) != open.generation) {
                        return "the upstream master changed (Sentinel failover)".into();
                    }
                }
            }
        }
    }

    /// Queues a batch for writing and its commands in the FIFO.
    fn take(&mut self, s: Submission) {
        s.inbox
            .unwritten
            .fetch_sub(s.bytes.len(), Ordering::Relaxed);
        self.out.extend_from_slice(&s.bytes);
        match self.in_flight.back_mut() {
            Some(run) if Arc::ptr_eq(&run.inbox, &s.inbox) => run.commands += s.commands,
            _ => self.in_flight.push_back(Run {
                inbox: s.inbox,
                commands: s.commands,
            }),
        }
    }

    /// Takes the batches already waiting, up to the output limit (one write
    /// then carries many clients' commands).
    fn take_more(&mut self, rx: &mut mpsc::UnboundedReceiver<Submission>) {
        while self.out.len() < OUT_HIGH {
            match rx.try_recv() {
                Ok(s) => self.take(s),
                Err(_) => return,
            }
        }
    }

    /// Every command in flight gets no reply; the connection's buffers go.
    fn fail_all(&mut self, lost: bool) {
        for run in self.in_flight.drain(..) {
            run.inbox.deliver(
                PoolReply::Failed {
                    commands: run.commands,
                    lost,
                },
                0,
            );
        }
        self.out.clear();
        self.input.clear();
        self.scanner = ReplyScanner::new();
    }

    /// Sends every complete frame to its seat (a seat's frames in a row go
    /// together), and the front of a large incomplete one.
    fn route(&mut self) -> Result<(), String> {
        let mut run: Option<SeatFrames> = None;
        let mut end = 0;
        loop {
            let scan = self.scanner.scan(&self.input[end..]);
            match scan.map_err(|e| format!("bad reply from upstream: {e}"))? {
                ReplyScan::Complete { len } => {
                    let ty = self.scanner.frame_type().unwrap_or(0);
                    if ty == b'-' && self.input[end..].starts_with(b"-READONLY") {
                        if let LaneTarget::Configured(endpoints) = &self.target {
                            // Sentinel's master is a replica now: find the new one.
                            endpoints.request_discovery();
                        }
                    }
                    let Some(head) = self.in_flight.front_mut() else {
                        return Err("upstream sent a reply no command was waiting for".into());
                    };
                    if run
                        .as_ref()
                        .is_some_and(|r| !Arc::ptr_eq(&r.inbox, &head.inbox))
                    {
                        if let Some(done) = run.take() {
                            done.send(&mut self.input, end);
                            end = 0;
                        }
                    }
                    let current = run.get_or_insert_with(|| SeatFrames {
                        inbox: Arc::clone(&head.inbox),
                        frames: Vec::new(),
                    });
                    end += len;
                    current.frames.push((end, ty));
                    head.commands -= 1;
                    if head.commands == 0 {
                        self.in_flight.pop_front();
                    }
                }
                ReplyScan::Incomplete => {
                    if let Some(done) = run.take() {
                        done.send(&mut self.input, end);
                    }
                    let scanned = self.scanner.scanned();
                    if scanned >= STREAM_MIN {
                        let Some(head) = self.in_flight.front() else {
                            return Err("upstream sent a reply no command was waiting for".into());
                        };
                        let ty = self.scanner.frame_type().unwrap_or(0);
                        let data = split_off(&mut self.input, scanned);
                        self.scanner.discard_prefix(scanned);
                        head.inbox.deliver(PoolReply::Part { data, ty }, scanned);
                    }
                    shrink(&mut self.input);
                    return Ok(());
                }
            }
        }
    }
}

/// Complete frames in a row for one seat, at the front of the input.
struct SeatFrames {
    inbox: Arc<Inbox>,
    /// (end offset, type byte) of each.
    frames: Vec<(usize, u8)>,
}

impl SeatFrames {
    /// Sends the first `len` bytes of `input` (these frames) to the seat.
    fn send(self, input: &mut BytesMut, len: usize) {
        let data = split_off(input, len);
        let frames = self.frames;
        self.inbox.deliver(PoolReply::Frames { data, frames }, len);
    }
}

/// The first `n` bytes of `input`, removed from it.
fn split_off(input: &mut BytesMut, n: usize) -> Bytes {
    if n < COPY_BELOW {
        let data = Bytes::copy_from_slice(&input[..n]);
        input.advance(n);
        data
    } else {
        input.split_to(n).freeze()
    }
}

/// `HELLO 3` on a new shared connection for RESP3 clients.
async fn hello3(
    stream: &mut UpstreamStream,
    addr: &UpstreamAddr,
    s: &UpstreamSettings,
    renames: &Renames,
) -> Result<(), UpstreamError> {
    let name = label(addr);
    let hello = renames.command(&[b"HELLO", b"3"]).unwrap_or_default();
    let replies = tokio::time::timeout(s.connect_timeout, exchange(stream, &[hello], &name))
        .await
        .map_err(|_| UpstreamError::Timeout(name.clone()))??;
    match replies.first() {
        Some(r) if r.starts_with(b"%") => Ok(()),
        other => Err(UpstreamError::Connect {
            addr: name,
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "HELLO 3 refused: {}",
                    String::from_utf8_lossy(other.map_or(&[][..], Vec::as_slice)).trim_end()
                ),
            ),
        }),
    }
}
