//! Bounded reads of what a server sends. An answer that should be small (a
//! registry manifest, a remote cache's action entry or build index) is read
//! up to a limit and refused past it, so that a broken or hostile server
//! cannot fill the memory of the build: a body that says it is longer is
//! refused before it is read, one that turns out longer after `limit + 1`
//! bytes.

use std::io::Read;

use reqwest::blocking::Response;

/// Why a bounded answer was not read.
#[derive(Debug, thiserror::Error)]
pub enum BoundedError {
    #[error("the answer is larger than {} MiB, more than one can be", .limit >> 20)]
    TooLarge { limit: u64 },
    /// The transfer failed (its cause, without the URL).
    #[error("{0}")]
    Read(String),
}

/// The body of `response`, if it is at most `limit` bytes.
pub fn body(response: Response, limit: u64) -> Result<Vec<u8>, BoundedError> {
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(BoundedError::TooLarge { limit });
    }
    read(response, limit)
}

/// All of `from`, if it is at most `limit` bytes.
pub fn read(from: impl Read, limit: u64) -> Result<Vec<u8>, BoundedError> {
    let mut bytes = Vec::new();
    from.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| BoundedError::Read(io_cause(e)))?;
    if bytes.len() as u64 > limit {
        return Err(BoundedError::TooLarge { limit });
    }
    Ok(bytes)
}

/// A writer into memory that takes at most `limit` bytes: past it, a write
/// fails (for answers streamed by code that writes them somewhere).
pub struct Capped<'a> {
    pub out: &'a mut Vec<u8>,
    pub limit: u64,
}

impl std::io::Write for Capped<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if (self.out.len() + buf.len()) as u64 > self.limit {
            return Err(std::io::Error::other(BoundedError::TooLarge {
                limit: self.limit,
            }));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A read error of a response body: the request's error without its URL.
fn io_cause(e: std::io::Error) -> String {
    let kind = e.kind();
    match e
        .into_inner()
        .map(|inner| inner.downcast::<reqwest::Error>())
    {
        Some(Ok(request)) => crate::cause::of_request(*request),
        Some(Err(other)) => crate::cause::with_causes(other.as_ref()),
        None => kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_read_up_to_its_limit_and_refused_past_it() {
        let bytes = read(&b"0123456789"[..], 10).map_err(|e| e.to_string());
        assert_eq!(bytes.as_deref(), Ok(&b"0123456789"[..]));
        let endless = std::io::repeat(b'A');
        match read(endless, 4 << 20) {
            Err(BoundedError::TooLarge { limit }) => assert_eq!(limit, 4 << 20),
            other => panic!("{:?}", other.map(|b| b.len())),
        }
        let told = BoundedError::TooLarge { limit: 4 << 20 }.to_string();
        assert!(told.contains("larger than 4 MiB"), "{told}");
    }
}
