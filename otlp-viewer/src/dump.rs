//! What a finished run leaves: the held traces as gzip-compressed JSON
//! lines, one trace per line (`zcat` reads it), so `trace <id>` works after
//! the viewer has stopped. Compression takes a dump of the default bounds
//! from about 100 MB to under 10 MB.

use std::fs::File;
use std::io::{self, BufRead as _, BufReader, BufWriter, Read as _, Write as _};
use std::path::Path;

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

use crate::store::{Store, TraceDetail};

/// Longest line read back: a trace past this is skipped, not loaded.
const MAX_LINE_BYTES: u64 = 64 * 1024 * 1024;

/// Writes every held trace, oldest first; returns how many.
///
/// # Errors
/// When the file cannot be written.
pub fn write_dump(store: &Store, path: &Path) -> io::Result<usize> {
    let mut out = GzEncoder::new(BufWriter::new(File::create(path)?), Compression::fast());
    // One trace at a time: a copy of the whole store would double the
    // viewer's memory at the very end of a run.
    let mut written = 0;
    for id in store.trace_ids() {
        if let Some(trace) = store.trace(&id) {
            serde_json::to_writer(&mut out, &trace)?;
            out.write_all(b"\n")?;
            written += 1;
        }
    }
    out.finish()?.flush()?;
    Ok(written)
}

/// Reads a dump back (lines that do not parse are skipped and counted).
///
/// # Errors
/// When the file cannot be opened or read.
pub fn read_dump(path: &Path) -> io::Result<(Vec<TraceDetail>, usize)> {
    let mut traces = Vec::new();
    let mut skipped = 0;
    for_each_line(path, |line| {
        match serde_json::from_slice::<TraceDetail>(line) {
            Ok(t) => {
                traces.push(t);
                false
            }
            Err(_) => {
                skipped += 1;
                false
            }
        }
    })?;
    Ok((traces, skipped))
}

/// Finds one trace in a dump without loading the others.
///
/// # Errors
/// When the file cannot be opened or read.
pub fn find_in_dump(path: &Path, trace_id: &str) -> io::Result<Option<TraceDetail>> {
    let needle = format!("\"trace_id\":\"{}\"", trace_id.to_ascii_lowercase());
    let mut found = None;
    for_each_line(path, |line| {
        // The summary comes first on each line: a cheap test before parsing.
        let head = &line[..line.len().min(200)];
        if head.windows(needle.len()).any(|w| w == needle.as_bytes())
            && let Ok(t) = serde_json::from_slice::<TraceDetail>(line)
        {
            found = Some(t);
            return true;
        }
        false
    })?;
    Ok(found)
}

fn for_each_line(path: &Path, mut f: impl FnMut(&[u8]) -> bool) -> io::Result<()> {
    let mut reader = BufReader::new(MultiGzDecoder::new(BufReader::new(File::open(path)?)));
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') && n as u64 == MAX_LINE_BYTES {
            // Too long: skip the rest of it.
            let mut rest = Vec::new();
            reader.read_until(b'\n', &mut rest)?;
            continue;
        }
        if f(line.trim_ascii_end()) {
            return Ok(());
        }
    }
}
