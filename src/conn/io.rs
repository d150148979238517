//! Socket helpers of the connection loop: partial writes, reads into a
//! growing buffer, and giving back buffers that grew large.

use std::io;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes asked of each client or upstream read.
pub(super) const READ_CHUNK: usize = 16 * 1024;
/// Buffers grown past this are given back when they empty.
const SHRINK_ABOVE: usize = 256 * 1024;

/// Writes some of `buf`, or flushes once it is empty.
pub(super) async fn pump<W: AsyncWrite + Unpin>(
    w: &mut W,
    buf: &mut BytesMut,
    dirty: &mut bool,
) -> io::Result<()> {
    if buf.is_empty() {
        w.flush().await?;
        *dirty = false;
        return Ok(());
    }
    let n = w.write(buf).await?;
    if n == 0 {
        return Err(io::ErrorKind::WriteZero.into());
    }
    buf.advance(n);
    *dirty = true;
    if buf.is_empty() {
        shrink(buf);
    }
    Ok(())
}

pub(super) async fn pump_opt<W: AsyncWrite + Unpin>(
    w: Option<&mut W>,
    buf: &mut BytesMut,
) -> io::Result<()> {
    let Some(w) = w else {
        return std::future::pending().await;
    };
    let n = w.write(buf).await?;
    if n == 0 {
        return Err(io::ErrorKind::WriteZero.into());
    }
    buf.advance(n);
    Ok(())
}

pub(super) async fn read_into<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
) -> io::Result<usize> {
    buf.reserve(READ_CHUNK);
    r.read_buf(buf).await
}

pub(super) async fn read_opt<R: AsyncRead + Unpin>(
    r: Option<&mut R>,
    buf: &mut BytesMut,
) -> io::Result<usize> {
    match r {
        Some(r) => read_into(r, buf).await,
        None => std::future::pending().await,
    }
}

/// Gives back a large, now empty buffer.
pub(super) fn shrink(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > SHRINK_ABOVE {
        *buf = BytesMut::new();
    }
}

/// Waits for `timer` if there is one; never completes otherwise.
pub(super) async fn tick(timer: &mut Option<std::pin::Pin<Box<tokio::time::Sleep>>>) {
    match timer {
        Some(t) => t.as_mut().await,
        None => std::future::pending().await,
    }
}
