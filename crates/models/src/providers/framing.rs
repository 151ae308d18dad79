//! Byte-stream framing shared by the protocols: NDJSON lines (Ollama) and
//! server-sent events (OpenAI, Anthropic).

/// One frame of a streamed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One NDJSON line (without its newline).
    Line(String),
    /// One server-sent event: its `event:` name (empty when absent) and its
    /// `data:` lines joined with `\n`.
    Event { event: String, data: String },
}

/// How a body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Ndjson,
    Sse,
}

/// Turns arbitrary byte chunks into frames; a frame split across chunks is
/// held until it is complete.
#[derive(Debug)]
pub struct Framer {
    framing: Framing,
    buffer: Vec<u8>,
    event: String,
    data: Vec<String>,
}

impl Framer {
    pub fn new(framing: Framing) -> Self {
        Self {
            framing,
            buffer: Vec::new(),
            event: String::new(),
            data: Vec::new(),
        }
    }

    /// Feeds a chunk; returns the frames it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Frame> {
        self.buffer.extend_from_slice(chunk);
        let mut frames = Vec::new();
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&raw[..raw.len() - 1]);
            let line = line.strip_suffix('\r').unwrap_or(&line).to_owned();
            self.on_line(line, &mut frames);
        }
        frames
    }

    /// Ends the body: returns a last frame left without its terminator.
    pub fn finish(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        if !self.buffer.is_empty() {
            let rest = String::from_utf8_lossy(&std::mem::take(&mut self.buffer)).into_owned();
            self.on_line(rest, &mut frames);
        }
        if self.framing == Framing::Sse {
            self.on_line(String::new(), &mut frames);
        }
        frames
    }

    fn on_line(&mut self, line: String, frames: &mut Vec<Frame>) {
        match self.framing {
            Framing::Ndjson => {
                if !line.trim().is_empty() {
                    frames.push(Frame::Line(line));
                }
            }
            Framing::Sse => {
                if line.is_empty() {
                    if !self.data.is_empty() {
                        frames.push(Frame::Event {
                            event: std::mem::take(&mut self.event),
                            data: self.data.join("\n"),
                        });
                        self.data.clear();
                    }
                    self.event.clear();
                } else if line.starts_with(':') {
                    // A comment (keep-alive); nothing to do.
                } else {
                    let (field, value) = line.split_once(':').unwrap_or((&line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "event" => self.event = value.to_owned(),
                        "data" => self.data.push(value.to_owned()),
                        _ => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_event_split_across_chunks_is_reassembled() {
        let mut framer = Framer::new(Framing::Sse);
        assert!(framer.push(b"event: message_start\nda").is_empty());
        let frames = framer.push(b"ta: {\"a\":1}\n\n: ping\n\ndata: [DONE]\n\n");
        assert_eq!(
            frames,
            vec![
                Frame::Event {
                    event: "message_start".into(),
                    data: "{\"a\":1}".into()
                },
                Frame::Event {
                    event: String::new(),
                    data: "[DONE]".into()
                },
            ]
        );
    }

    #[test]
    fn ndjson_last_line_without_newline_is_kept() {
        let mut framer = Framer::new(Framing::Ndjson);
        assert_eq!(
            framer.push(b"{\"a\":1}\r\n{\"b\""),
            vec![Frame::Line("{\"a\":1}".into())]
        );
        assert_eq!(framer.finish(), vec![Frame::Line("{\"b\"".into())]);
    }
}
