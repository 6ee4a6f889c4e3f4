//! A connection whose writes may not stall: a client that stops reading its
//! answer gets the connection closed after a fixed time instead of holding it
//! (and the request's memory) forever. Reads are bounded elsewhere (hyper's
//! header timeout, the body deadline).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// `io` with writes that fail (`TimedOut`) once one has made no progress for
/// `timeout`.
#[derive(Debug)]
pub struct Stall<IO> {
    io: IO,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<IO> Stall<IO> {
    /// Wraps `io`.
    pub fn new(io: IO, timeout: Duration) -> Self {
        Stall {
            io,
            timeout,
            stalled: None,
        }
    }

    /// Called when a write is pending: starts the clock, or fails once it ran out.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let timeout = self.timeout;
        let clock = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match clock.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {} s", timeout.as_secs()),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(
        &mut self,
        done: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match done {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => self.pending(cx),
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Stall<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Stall<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let done = Pin::new(&mut self.io).poll_write(cx, buf);
        self.progress(done, cx)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let done = Pin::new(&mut self.io).poll_flush(cx);
        self.progress(done, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let done = Pin::new(&mut self.io).poll_shutdown(cx);
        self.progress(done, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_write_nobody_reads_fails_and_a_read_one_does_not() {
        let (stalled, mut client) = tokio::io::duplex(1024);
        let mut stalled = Stall::new(stalled, Duration::from_millis(50));
        stalled
            .write_all(&[7; 1024])
            .await
            .expect("fits the buffer");
        let err = stalled
            .write_all(&[7; 1024])
            .await
            .expect_err("nobody reads: the write stalls");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(stalled);
        let mut first = Vec::new();
        client.read_to_end(&mut first).await.expect("reads");
        assert_eq!(first.len(), 1024, "what fitted was delivered");

        let (server, mut reader) = tokio::io::duplex(1024);
        let mut server = Stall::new(server, Duration::from_secs(60));
        let read = tokio::spawn(async move {
            let mut all = Vec::new();
            reader.read_to_end(&mut all).await.map(|_| all.len())
        });
        server.write_all(&[7; 8192]).await.expect("read as written");
        server.shutdown().await.expect("shutdown");
        drop(server);
        assert_eq!(read.await.expect("joins").expect("reads"), 8192);
    }
}
