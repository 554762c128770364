//! Terminal resize messages: the client writes JSON objects `{"Width":80,"Height":24}` on the
//! resize channel (WebSocket) or stream (SPDY), one after another, possibly split across frames.

/// A terminal size as sent on the resize channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct TermSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

/// Longest incomplete resize message kept while waiting for its end; anything longer is not a
/// resize message and is dropped.
pub const MAX_PENDING: usize = 4096;

/// Accumulates resize-stream bytes and yields every complete size message.
#[derive(Debug, Default)]
pub struct ResizeParser {
    buf: Vec<u8>,
}

impl ResizeParser {
    /// Adds `data` and returns the sizes completed by it. Bytes that are not a size message are
    /// dropped (the parser resynchronises on the next message).
    pub fn push(&mut self, data: &[u8]) -> Vec<TermSize> {
        self.buf.extend_from_slice(data);
        let mut sizes = Vec::new();
        let mut consumed = 0;
        let mut stream = serde_json::Deserializer::from_slice(&self.buf).into_iter::<TermSize>();
        loop {
            match stream.next() {
                Some(Ok(size)) => {
                    sizes.push(size);
                    consumed = stream.byte_offset();
                }
                Some(Err(e)) if e.is_eof() => break,
                // Not a size message (or nothing left): drop what we have and resynchronise.
                Some(Err(_)) | None => {
                    consumed = self.buf.len();
                    break;
                }
            }
        }
        self.buf.drain(..consumed);
        if self.buf.len() > MAX_PENDING {
            self.buf.clear();
        }
        sizes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_split_across_pushes() {
        let mut p = ResizeParser::default();
        assert!(p.push(br#"{"Width":100,"#).is_empty());
        assert_eq!(
            p.push(b"\"Height\":40}\n{\"Width\":1,\"Height\":2}\n"),
            vec![
                TermSize {
                    width: 100,
                    height: 40
                },
                TermSize {
                    width: 1,
                    height: 2
                }
            ]
        );
    }

    #[test]
    fn garbage_is_dropped_and_the_parser_recovers() {
        let mut p = ResizeParser::default();
        assert!(p.push(b"not json").is_empty());
        assert_eq!(
            p.push(br#"{"Width":3,"Height":4}"#),
            vec![TermSize {
                width: 3,
                height: 4
            }]
        );
    }

    #[test]
    fn an_endless_message_is_bounded() {
        let mut p = ResizeParser::default();
        let mut long = br#"{"Width":1,"Height":"#.to_vec();
        long.extend(std::iter::repeat_n(b' ', MAX_PENDING));
        assert!(p.push(&long).is_empty());
        assert!(
            p.buf.is_empty(),
            "a message longer than the bound is dropped"
        );
    }
}
