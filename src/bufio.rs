//! Buffered socket I/O shared by both sides of the proxy (client connections,
//! dedicated and pooled upstream connections): reads into a growing buffer,
//! partial writes, and giving back buffers that grew large.

use std::io;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes asked of each client or upstream read.
pub(crate) const READ_CHUNK: usize = 16 * 1024;
/// Buffers grown past this are given back when they empty.
const SHRINK_ABOVE: usize = 256 * 1024;

/// Writes some of `buf` (at least one byte) and drops what was written.
pub(crate) async fn write_some<W: AsyncWrite + Unpin>(
    w: &mut W,
    buf: &mut BytesMut,
) -> io::Result<()> {
    let n = w.write(buf).await?;
    if n == 0 {
        return Err(io::ErrorKind::WriteZero.into());
    }
    buf.advance(n);
    Ok(())
}

/// Reads into `buf`, growing it by at least one read's worth.
pub(crate) async fn read_into<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
) -> io::Result<usize> {
    buf.reserve(READ_CHUNK);
    r.read_buf(buf).await
}

/// Gives back a large, now empty buffer.
pub(crate) fn shrink(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > SHRINK_ABOVE {
        *buf = BytesMut::new();
    }
}

/// Writes some of `out`, or flushes once it is all written; `unflushed`
/// says whether a flush is owed (TLS holds records back until flushed).
pub(crate) async fn pump<W: AsyncWrite + Unpin>(
    w: &mut W,
    out: &mut BytesMut,
    unflushed: &mut bool,
) -> io::Result<()> {
    if out.is_empty() {
        w.flush().await?;
        *unflushed = false;
        return Ok(());
    }
    write_some(w, out).await?;
    *unflushed = true;
    shrink(out);
    Ok(())
}
