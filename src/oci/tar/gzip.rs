//! Parallel, deterministic gzip for layers: see [`ParallelGzip`].

use std::io::{self, Write};

/// Uncompressed bytes per independently deflated piece of a gzip layer.
const GZIP_CHUNK: usize = 1 << 20;

/// A gzip writer that deflates 1 MiB pieces of its input in parallel (as pigz
/// does) into one gzip member: every piece but the last ends with a sync flush,
/// so their concatenation is one valid deflate stream. Pieces are cut at fixed
/// offsets, whatever the write sizes or the number of threads, so the bytes
/// are deterministic; a layer of one piece is byte-identical to a plain
/// single-threaded gzip stream of the same level (same header: no name,
/// mtime 0, OS 255).
pub(super) struct ParallelGzip<W: Write> {
    out: W,
    level: u32,
    /// The piece being filled.
    buf: Vec<u8>,
    /// Full pieces waiting to be deflated in a batch.
    full: Vec<Vec<u8>>,
    crc: flate2::Crc,
    header_written: bool,
}

impl<W: Write> ParallelGzip<W> {
    pub(super) fn new(out: W, level: u32) -> Self {
        ParallelGzip {
            out,
            level,
            // Grown as needed: most layers are far smaller than a piece, and a
            // 1 MiB buffer per layer fragments the heap of a 1000-service build.
            buf: Vec::new(),
            full: Vec::new(),
            crc: flate2::Crc::new(),
            header_written: false,
        }
    }

    /// Pieces deflated together: enough to keep every core busy.
    fn batch() -> usize {
        2 * rayon::current_num_threads().max(1)
    }

    fn header(&mut self) -> io::Result<()> {
        if !self.header_written {
            let xfl = if self.level >= 9 {
                2
            } else if self.level <= 1 {
                4
            } else {
                0
            };
            self.out
                .write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255])?;
            self.header_written = true;
        }
        Ok(())
    }

    /// Deflates the waiting pieces (the very last one with the final block).
    fn deflate_waiting(&mut self, last: Option<Vec<u8>>) -> io::Result<()> {
        use rayon::prelude::*;
        self.header()?;
        let mut pieces: Vec<(Vec<u8>, bool)> = std::mem::take(&mut self.full)
            .into_iter()
            .map(|p| (p, false))
            .collect();
        pieces.extend(last.map(|p| (p, true)));
        let level = self.level;
        let deflated: Vec<io::Result<Vec<u8>>> = if pieces.len() == 1 {
            // Most layers: one piece, no thread hand-off.
            pieces
                .iter()
                .map(|(piece, last)| deflate_piece(piece, level, *last))
                .collect()
        } else {
            pieces
                .par_iter()
                .map(|(piece, last)| deflate_piece(piece, level, *last))
                .collect()
        };
        for d in deflated {
            self.out.write_all(&d?)?;
        }
        Ok(())
    }

    /// Writes the last block and the trailer; returns the inner writer.
    pub(super) fn finish(mut self) -> io::Result<W> {
        let last = std::mem::take(&mut self.buf);
        self.deflate_waiting(Some(last))?;
        self.out.write_all(&self.crc.sum().to_le_bytes())?;
        self.out.write_all(&self.crc.amount().to_le_bytes())?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(GZIP_CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        self.crc.update(&data[..n]);
        if self.buf.len() == GZIP_CHUNK {
            let piece = std::mem::take(&mut self.buf);
            self.full.push(piece);
            if self.full.len() >= Self::batch() {
                self.deflate_waiting(None)?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

thread_local! {
    /// One deflate state per thread, reset for each piece: a fresh one per layer
    /// (~300 KB, over-aligned) fragments the heap of a 1000-service build.
    static DEFLATE: std::cell::RefCell<Option<(u32, flate2::Compress)>> =
        const { std::cell::RefCell::new(None) };
}

/// Raw deflate of one piece: a sync flush at its end, or the final block.
fn deflate_piece(piece: &[u8], level: u32, last: bool) -> io::Result<Vec<u8>> {
    DEFLATE.with(|cell| {
        let mut slot = cell.borrow_mut();
        match slot.as_mut() {
            Some((l, z)) if *l == level => z.reset(),
            _ => {
                *slot = Some((
                    level,
                    flate2::Compress::new(flate2::Compression::new(level), false),
                ))
            }
        }
        match slot.as_mut() {
            Some((_, z)) => deflate_with(z, piece, last),
            None => Err(io::Error::other("no deflate state")),
        }
    })
}

fn deflate_with(z: &mut flate2::Compress, piece: &[u8], last: bool) -> io::Result<Vec<u8>> {
    use flate2::{FlushCompress, Status};
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(piece.len() / 2 + 4096);
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = usize::try_from(z.total_in()).map_err(io::Error::other)?;
        let status = z
            .compress_vec(&piece[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = usize::try_from(z.total_in()).map_err(io::Error::other)? == piece.len();
        match status {
            Status::StreamEnd => return Ok(out),
            // A sync flush is complete once all input is in and the output
            // was not filled up.
            _ if !last && all_in && out.len() < out.capacity() => return Ok(out),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::tar::GZIP_LEVEL;
    use std::io::Read;

    #[test]
    fn parallel_gzip_is_one_valid_deterministic_member() {
        // Three and a half pieces of compressible, varied data.
        let data: Vec<u8> = (0..(3 * GZIP_CHUNK + GZIP_CHUNK / 2))
            .map(|i| ((i / 7) % 251) as u8 ^ (i % 3) as u8)
            .collect();
        let gz = |writes: usize| {
            let mut w = ParallelGzip::new(Vec::new(), GZIP_LEVEL);
            for part in data.chunks(writes) {
                w.write_all(part).unwrap();
            }
            w.finish().unwrap()
        };
        let a = gz(4096);
        assert_eq!(a, gz(1 << 20 | 17), "same bytes whatever the write sizes");
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&a[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        assert!(a.len() < data.len() / 4, "it compresses: {}", a.len());
        // gzip(1) checks the CRC and the length too.
        if let Ok(mut child) = std::process::Command::new("gzip")
            .args(["-t", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
        {
            child.stdin.take().unwrap().write_all(&a).unwrap();
            assert!(child.wait().unwrap().success());
        }
    }

    #[test]
    fn a_one_piece_layer_is_the_plain_gzip_stream() {
        let data = b"a small layer, well under one piece ".repeat(1000);
        let mut plain = flate2::GzBuilder::new()
            .mtime(0)
            .write(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
        plain.write_all(&data).unwrap();
        let plain = plain.finish().unwrap();
        // Twice: the second reuses (resets) this thread's deflate state.
        for _ in 0..2 {
            let mut w = ParallelGzip::new(Vec::new(), GZIP_LEVEL);
            w.write_all(&data).unwrap();
            assert_eq!(w.finish().unwrap(), plain);
        }
        let empty = ParallelGzip::new(Vec::new(), GZIP_LEVEL).finish().unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&empty[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }
}
