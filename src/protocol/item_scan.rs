//! Envelope items checked against their size limits while the envelope is still being
//! decoded, so that an oversized item stops a compressed envelope as soon as the
//! decoder passes the item's limit, not after the whole envelope is inflated.
//!
//! [`ItemSizeScan::advance`] is given the decoded bytes each time they grow. It follows
//! the framing (the envelope header line, then each item's header line and its payload,
//! `length` bytes or one line) and fails at the first item whose declared `length` or
//! whose bytes so far pass its limit. It judges nothing else: at the first malformed
//! line it stops looking, and [`Envelope::parse`](super::envelope::Envelope::parse),
//! which reads the whole envelope afterwards, names the problem.

use serde::Deserialize;

use super::envelope::ItemType;

/// An item passed its size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("envelope item {index} ({item_type:?}) is larger than its limit of {limit} bytes")]
pub struct ItemOverLimit {
    /// Zero-based item index.
    pub index: usize,
    /// The item's type.
    pub item_type: ItemType,
    /// The limit it passed.
    pub limit: usize,
}

/// Where the scan is in the envelope.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Before the end of the envelope header line.
    EnvelopeHeader,
    /// Before the end of an item header line that starts at `pos`.
    ItemHeader,
    /// In a payload of known length that ends at this offset.
    Sized { end: usize },
    /// In a payload that runs to the end of its line, from `start`.
    Line {
        start: usize,
        limit: Option<(ItemType, usize)>,
    },
    /// Something was malformed: the full parse will say what.
    GaveUp,
}

/// Follows an envelope's framing as its bytes arrive; see the module docs.
#[derive(Debug)]
pub struct ItemSizeScan<F> {
    limit_of: F,
    state: State,
    /// Start of the line being read.
    pos: usize,
    /// How far newlines have been looked for.
    scanned: usize,
    /// Items whose header was read.
    items: usize,
}

/// The fields of an item header the scan needs.
#[derive(Deserialize)]
struct ItemHeader<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<std::borrow::Cow<'a, str>>,
    length: Option<u64>,
}

impl<F: Fn(ItemType) -> Option<usize>> ItemSizeScan<F> {
    /// A scan that holds each item to `limit_of(type)` bytes (`None`: no limit of its
    /// own).
    pub fn new(limit_of: F) -> Self {
        ItemSizeScan {
            limit_of,
            state: State::EnvelopeHeader,
            pos: 0,
            scanned: 0,
            items: 0,
        }
    }

    /// Reads on through `data`, the decoded envelope so far (each call gets the same
    /// bytes as the last, plus more).
    ///
    /// # Errors
    ///
    /// [`ItemOverLimit`] for the first item that declares or reaches more bytes than its
    /// limit.
    pub fn advance(&mut self, data: &[u8]) -> Result<(), ItemOverLimit> {
        loop {
            match self.state {
                State::GaveUp => return Ok(()),
                State::EnvelopeHeader => {
                    let Some(end) = self.next_newline(data) else {
                        return Ok(());
                    };
                    self.next_line(end, State::ItemHeader);
                }
                State::ItemHeader => {
                    let Some(end) = self.next_newline(data) else {
                        return Ok(());
                    };
                    let line = &data[self.pos..end];
                    if line.iter().all(u8::is_ascii_whitespace) {
                        self.next_line(end, State::ItemHeader);
                        continue;
                    }
                    let Ok(header) = serde_json::from_slice::<ItemHeader<'_>>(line) else {
                        self.state = State::GaveUp;
                        return Ok(());
                    };
                    let index = self.items;
                    self.items += 1;
                    let item_type = ItemType::from_name(header.ty.as_deref().unwrap_or(""));
                    let limit = (self.limit_of)(item_type).map(|limit| (item_type, limit));
                    let payload_start = end + 1;
                    let next = match header.length {
                        Some(length) => {
                            if let Some((item_type, limit)) = limit {
                                if length > limit as u64 {
                                    return Err(ItemOverLimit {
                                        index,
                                        item_type,
                                        limit,
                                    });
                                }
                            }
                            match usize::try_from(length)
                                .ok()
                                .and_then(|length| payload_start.checked_add(length))
                            {
                                Some(end) => State::Sized { end },
                                None => State::GaveUp,
                            }
                        }
                        None => State::Line {
                            start: payload_start,
                            limit,
                        },
                    };
                    self.next_line(end, next);
                }
                State::Sized { end } => match data.get(end) {
                    None => return Ok(()),
                    Some(b'\n') => self.next_line(end, State::ItemHeader),
                    Some(_) => self.state = State::GaveUp,
                },
                State::Line { start, limit } => {
                    let newline = self.next_newline(data);
                    let length = newline.unwrap_or(data.len()) - start;
                    if let Some((item_type, limit)) = limit {
                        if length > limit {
                            return Err(ItemOverLimit {
                                index: self.items - 1,
                                item_type,
                                limit,
                            });
                        }
                    }
                    match newline {
                        Some(end) => self.next_line(end, State::ItemHeader),
                        None => return Ok(()),
                    }
                }
            }
        }
    }

    /// The next newline at or after where the last search stopped.
    fn next_newline(&mut self, data: &[u8]) -> Option<usize> {
        let from = self.scanned.max(self.pos);
        match memchr::memchr(b'\n', data.get(from..)?) {
            Some(i) => Some(from + i),
            None => {
                self.scanned = data.len();
                None
            }
        }
    }

    /// Moves past the newline at `newline` into `state`.
    fn next_line(&mut self, newline: usize, state: State) {
        self.pos = newline + 1;
        self.scanned = self.pos;
        self.state = state;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 100;

    /// Events are held to [`LIMIT`], attachments to nothing of their own.
    fn limit_of(item_type: ItemType) -> Option<usize> {
        (item_type != ItemType::Attachment).then_some(LIMIT)
    }

    /// Feeds `data` to a fresh scan `step` bytes at a time; the first error, if any, and
    /// how many bytes had been given when it came.
    fn scan_in_steps(data: &[u8], step: usize) -> Option<(ItemOverLimit, usize)> {
        let mut scan = ItemSizeScan::new(limit_of);
        let mut given = 0;
        while given < data.len() {
            given = (given + step).min(data.len());
            if let Err(error) = scan.advance(&data[..given]) {
                return Some((error, given));
            }
        }
        None
    }

    fn envelope(items: &[(&str, Option<usize>, usize)]) -> Vec<u8> {
        let mut out = b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n".to_vec();
        for &(ty, length, size) in items {
            match length {
                Some(length) => {
                    out.extend(format!("{{\"type\":\"{ty}\",\"length\":{length}}}\n").bytes())
                }
                None => out.extend(format!("{{\"type\":\"{ty}\"}}\n").bytes()),
            }
            out.extend(std::iter::repeat_n(b'x', size));
            out.push(b'\n');
        }
        out
    }

    #[test]
    fn items_within_their_limits_pass_whatever_the_chunking() {
        let data = envelope(&[
            ("event", Some(LIMIT), LIMIT),
            ("attachment", Some(5000), 5000),
            ("attachment", None, 3000),
            ("log", None, LIMIT),
            ("unknown_kind", None, 10),
        ]);
        for step in [1, 7, 64, 4096, data.len()] {
            assert_eq!(scan_in_steps(&data, step), None, "step {step}");
        }
    }

    #[test]
    fn a_declared_length_over_the_limit_stops_at_its_header() {
        let data = envelope(&[
            ("attachment", Some(10), 10),
            ("event", Some(LIMIT + 1), LIMIT + 1),
        ]);
        let header_end = data.iter().rposition(|&b| b == b'}').unwrap() + 1;
        for step in [1, 13, data.len()] {
            let (error, given) = scan_in_steps(&data, step).expect("refused");
            assert_eq!(
                error,
                ItemOverLimit {
                    index: 1,
                    item_type: ItemType::Event,
                    limit: LIMIT
                }
            );
            if step == 1 {
                assert_eq!(given, header_end + 1, "refused at the header's newline");
            }
        }
    }

    #[test]
    fn a_line_payload_stops_as_soon_as_it_passes_the_limit() {
        let data = envelope(&[("span", None, 10 * LIMIT)]);
        let (error, given) = scan_in_steps(&data, 1).expect("refused");
        assert_eq!(error.item_type, ItemType::Span);
        assert_eq!(error.index, 0);
        let payload_start = data.len() - 10 * LIMIT - 1;
        assert_eq!(given, payload_start + LIMIT + 1, "one byte past the limit");
    }

    #[test]
    fn malformed_framing_is_left_to_the_parser() {
        for data in [
            b"{}\nnot json\n{\"type\":\"event\",\"length\":1000}\n".to_vec(),
            b"{}\n{\"type\":\"event\",\"length\":2}\nxyz{\"type\":\"event\",\"length\":1000}\n"
                .to_vec(),
            b"{}\n{\"type\":\"event\",\"length\":-1}\n".to_vec(),
        ] {
            assert_eq!(scan_in_steps(&data, 1), None);
        }
    }
}
