//! A pooled link: the client's seat on a shared upstream connection
//! ([`crate::upstream::pool`]), seen from the connection task. Commands are
//! gathered into one batch per read and submitted whole; replies arrive as
//! [`PoolReply`]s, are kept (not copied) until the client takes more output,
//! and are routed to the reply slots frame by frame.

use std::collections::VecDeque;

use bytes::{BufMut, BytesMut};

use super::replies;
use super::upstream_link::{LinkLost, ReplySink};
use crate::upstream::{Pool, PoolReply, Seat, SeatReplies};

/// The client's side of its seat.
#[derive(Debug)]
pub struct PooledSeat {
    seat: Seat,
    replies: SeatReplies,
    /// Commands of this turn, submitted together.
    batch: BytesMut,
    /// Replies received and not yet routed; the first may be partly routed
    /// (`next_frame` of its frames).
    backlog: VecDeque<PoolReply>,
    next_frame: usize,
    /// The front of a large frame went to the client; its rest is coming.
    streaming: bool,
    /// The front of a large frame the head slot cannot take in parts.
    reassembly: Option<(BytesMut, u8)>,
}

impl PooledSeat {
    /// A new client's seat on `pool`.
    pub fn new(pool: &Pool) -> Self {
        let replies = SeatReplies::new(pool.reply_limit());
        PooledSeat {
            seat: pool.seat(&replies, 0),
            replies,
            batch: BytesMut::new(),
            backlog: VecDeque::new(),
            next_frame: 0,
            streaming: false,
            reassembly: None,
        }
    }

    /// Adds command bytes to this turn's batch.
    pub fn send(&mut self, bytes: &[u8]) {
        self.batch.extend_from_slice(bytes);
    }

    /// Submits the batch: `commands` commands, each getting one reply.
    pub fn submit(&mut self, commands: usize) {
        if !self.batch.is_empty() {
            self.seat.submit(self.batch.split().freeze(), commands);
        }
    }

    /// Bytes submitted that the shared connection has not taken yet.
    pub fn backlog(&self) -> usize {
        self.seat.unwritten() + self.batch.len()
    }

    /// True while a frame's front reached the client and its rest has not.
    pub fn mid_frame(&self) -> bool {
        self.streaming
    }

    /// True while received replies wait for the client to take more output.
    pub fn has_replies(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Waits for the next reply and keeps it. A seat given up (its client
    /// did not read) is [`LinkLost::ReplyLimit`] at once.
    pub async fn receive(&mut self) -> Result<(), LinkLost> {
        match self.replies.recv().await {
            Some((_, PoolReply::Overflow)) => Err(LinkLost::ReplyLimit),
            Some((_, reply)) => {
                self.backlog.push_back(reply);
                Ok(())
            }
            // The seat holds a sender: never closed while it lives.
            None => std::future::pending().await,
        }
    }

    /// Routes kept replies to `sink` until it is full.
    pub fn deliver(&mut self, sink: &mut impl ReplySink) -> Result<(), LinkLost> {
        let PooledSeat {
            replies,
            backlog,
            next_frame,
            streaming,
            reassembly,
            ..
        } = self;
        while !sink.full() {
            let Some(reply) = backlog.front() else {
                return Ok(());
            };
            match reply {
                PoolReply::Frames { data, frames } => {
                    while *next_frame < frames.len() && !sink.full() {
                        let start = match *next_frame {
                            0 => 0,
                            i => frames[i - 1].0,
                        };
                        let (end, ty) = frames[*next_frame];
                        let bytes = &data[start..end];
                        let routed = match reassembly.take() {
                            Some((mut front, ty)) => {
                                front.put_slice(bytes);
                                sink.frame(&front, ty, false)
                            }
                            None => sink.frame(bytes, ty, std::mem::take(streaming)),
                        };
                        routed.map_err(|_| LinkLost::Desync)?;
                        replies.taken(bytes.len());
                        *next_frame += 1;
                    }
                    if *next_frame < frames.len() {
                        return Ok(());
                    }
                    *next_frame = 0;
                }
                PoolReply::Part { data, ty } => {
                    if let Some((front, _)) = reassembly {
                        front.put_slice(data);
                    } else if *streaming || sink.may_stream(*ty) {
                        sink.stream(data);
                        *streaming = true;
                    } else {
                        *reassembly = Some((BytesMut::from(&data[..]), *ty));
                    }
                    replies.taken(data.len());
                }
                PoolReply::Failed { commands, lost } => {
                    if *streaming {
                        // No error can be put in the middle of a reply.
                        return Err(LinkLost::SharedCut);
                    }
                    *reassembly = None;
                    let reply = if *lost {
                        replies::UPSTREAM_LOST
                    } else {
                        replies::UPSTREAM_UNAVAILABLE
                    };
                    sink.fail(*commands, reply).map_err(|_| LinkLost::Desync)?;
                }
                PoolReply::Overflow => return Err(LinkLost::ReplyLimit),
            }
            backlog.pop_front();
        }
        Ok(())
    }

    /// Forgets everything queued either way (the connection is closing).
    pub fn clear(&mut self) {
        self.batch.clear();
        self.backlog.clear();
        self.next_frame = 0;
        self.streaming = false;
        self.reassembly = None;
    }
}
