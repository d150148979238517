//! Socket plumbing of the connection task: the client's two halves with its
//! input and output buffers, partial writes, reads into a growing buffer, and
//! giving back buffers that grew large.

use std::io;
use std::pin::Pin;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::time::Sleep;

pub(super) use crate::bufio::{read_into, shrink, write_some, READ_CHUNK};

/// The client's side of the connection, in two halves the connection task
/// can wait on at once.
pub(super) struct ClientIo<S> {
    /// Reading: commands come in.
    pub rx: ClientRx<S>,
    /// Writing: replies go out.
    pub tx: ClientTx<S>,
}

/// The client's reading half.
pub(super) struct ClientRx<S> {
    r: ReadHalf<S>,
    /// Bytes read and not yet scanned into whole commands.
    pub inbuf: BytesMut,
}

/// The client's writing half.
pub(super) struct ClientTx<S> {
    w: WriteHalf<S>,
    /// Replies waiting to be written.
    pub out: BytesMut,
    /// Written since the last flush.
    unflushed: bool,
}

impl<S: AsyncRead + AsyncWrite> ClientIo<S> {
    pub(super) fn new(stream: S) -> Self {
        let (r, w) = tokio::io::split(stream);
        ClientIo {
            rx: ClientRx {
                r,
                inbuf: BytesMut::with_capacity(READ_CHUNK),
            },
            tx: ClientTx {
                w,
                out: BytesMut::new(),
                unflushed: false,
            },
        }
    }
}

impl<S: AsyncRead> ClientRx<S> {
    /// Reads more client bytes; 0 at end of stream.
    pub(super) async fn read(&mut self) -> io::Result<usize> {
        read_into(&mut self.r, &mut self.inbuf).await
    }
}

impl<S: AsyncWrite> ClientTx<S> {
    /// True while replies wait to be written or flushed.
    pub(super) fn wants_write(&self) -> bool {
        !self.out.is_empty() || self.unflushed
    }

    /// Writes some of the output, or flushes once it is all written.
    pub(super) async fn write(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            self.w.flush().await?;
            self.unflushed = false;
            return Ok(());
        }
        write_some(&mut self.w, &mut self.out).await?;
        self.unflushed = true;
        shrink(&mut self.out);
        Ok(())
    }

    /// Writes and flushes everything, then closes the write side, all within `limit`.
    pub(super) async fn finish(&mut self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            while self.wants_write() {
                if self.write().await.is_err() {
                    return;
                }
            }
            let _ = self.w.shutdown().await;
        })
        .await;
    }
}

/// Answers `reply` to a client refused at connect, then closes.
pub async fn refuse<W: AsyncWrite + Unpin>(mut w: W, reply: &[u8]) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = w.write_all(reply).await;
        let _ = w.flush().await;
        let _ = w.shutdown().await;
    })
    .await;
}

/// Waits for `timer` if there is one; never completes otherwise.
pub(super) async fn tick(timer: &mut Option<Pin<Box<Sleep>>>) {
    match timer {
        Some(t) => t.as_mut().await,
        None => std::future::pending().await,
    }
}
