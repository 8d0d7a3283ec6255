//! A script's stderr: every line goes to the log with the script and pid, and the last
//! few are kept for the request's log line when the script fails.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

use crate::request_id::RequestId;

const TAIL_LINES: usize = 5;
/// Longer lines are cut for the log; a flood without newlines cannot grow memory.
const MAX_LINE_BYTES: usize = 2048;
const READ_BYTES: usize = 4096;

/// The last stderr lines of one script, shared between its reader and its owner.
#[derive(Clone, Default)]
pub struct Tail(Arc<Mutex<VecDeque<String>>>);

impl Tail {
    fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

/// Reads stderr to its end, logging each line; run as its own task so a script that fills
/// the stderr pipe never blocks while Portico waits on stdout.
pub async fn drain(
    mut stderr: pipe::Receiver,
    script: Arc<str>,
    pid: u32,
    id: RequestId,
    tail: Tail,
) {
    // Read straight into the line buffer: no chunk array in the future, which is copied
    // into its task at every spawn.
    let mut buf = Vec::new();
    loop {
        buf.reserve(READ_BYTES);
        match stderr.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
            emit(&buf[start..start + nl], &script, pid, &id, &tail);
            start += nl + 1;
        }
        buf.drain(..start);
        if buf.len() > MAX_LINE_BYTES {
            emit(&buf, &script, pid, &id, &tail);
            buf.clear();
        }
    }
    if !buf.is_empty() {
        emit(&buf, &script, pid, &id, &tail);
    }
}

fn emit(line: &[u8], script: &str, pid: u32, id: &RequestId, tail: &Tail) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = String::from_utf8_lossy(&line[..line.len().min(MAX_LINE_BYTES)]).into_owned();
    tracing::warn!(target: "portico::stderr", %id, script, pid, "{line}");
    tail.push(line);
}
