//! A Stripe event's envelope read from the top level only: what the webhook
//! does before it queues a delivery, at close to the cost of the signature
//! check.
//!
//! `type` and `livemode` come after `data`, which is nearly all of a 10 KB
//! body. So the members before `data` are read forwards, and those after it
//! backwards from the end of the body, and `data` itself is never looked
//! into, but for its first member, `object`. When that shortcut does not
//! find every member (another layout, a member missing, anything odd), the
//! members are read forwards from `data` on, and nested objects and arrays
//! are stepped over with a block scanner: 64 bytes at a time, 16-byte SIMD
//! compares find quotes, backslashes and brackets; brackets inside strings
//! are masked out by a prefix XOR of the unescaped quotes, and the depth is
//! counted over what is left.
//!
//! Neither validates what it does not read: the dispatcher parses the whole
//! body ([`super::EventEnvelope::parse`]) and sends one that is not JSON to
//! the dead-letter queue, and the queue itself refuses characters SQS does
//! not take ([`crate::ports::queue::sqs_refuses`]); the signature already
//! proved Stripe wrote it. On every body the full parse accepts as an
//! object, it reads the same envelope (property-tested in event.rs).
//!
//! The byte-level steps are `#[inline(always)]`: the release build is
//! optimised for size, which leaves them calls, and a 10 KB event takes
//! dozens of them (BENCHMARKS.md, section 8).

use std::borrow::Cow;

use wide::u8x16;

/// Where reading stopped, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem} at byte {at}")]
pub struct SkimError {
    problem: Problem,
    at: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("expected {0}")]
    Expected(&'static str),
    #[error("unterminated {0}")]
    Unterminated(&'static str),
    #[error("invalid escape in a string")]
    Escape,
    #[error("integer out of range")]
    OutOfRange,
    #[error("missing field `{0}`")]
    Missing(&'static str),
    #[error("duplicate field `{0}`")]
    Duplicate(&'static str),
    #[error("characters after the event")]
    Trailing,
    #[error("control character in a string")]
    Control,
    #[error("invalid UTF-8")]
    NotUtf8,
}

/// The envelope's members as written, before their values are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvelopeFields<'a> {
    pub id: Cow<'a, str>,
    pub event_type: Cow<'a, str>,
    pub created: i64,
    pub livemode: bool,
    /// Whether `data.object` is a JSON object.
    pub data_object_is_object: bool,
}

/// Reads the envelope of the event in `body`; also the body as text, ready
/// to queue.
pub(crate) fn envelope_fields(body: &[u8]) -> Result<(EnvelopeFields<'_>, &str), SkimError> {
    let text = simdutf8::compat::from_utf8(body)
        .map_err(|error| SkimError { problem: Problem::NotUtf8, at: error.valid_up_to() })?;
    let mut reader = Reader { text, at: 0 };
    let fields = reader.envelope()?;
    reader.whitespace();
    if reader.at < body.len() {
        return reader.fail(Problem::Trailing);
    }
    Ok((fields, text))
}

/// The envelope's members found so far.
#[derive(Debug, Clone, Default)]
struct Found<'a> {
    id: Option<Cow<'a, str>>,
    event_type: Option<Cow<'a, str>>,
    created: Option<i64>,
    livemode: Option<bool>,
    /// Found, and whether its `object` is an object.
    data: Option<bool>,
}

/// A member read at most once.
fn once<T>(slot: &mut Option<T>, value: T, name: &'static str, at: usize) -> Result<(), SkimError> {
    if slot.replace(value).is_some() {
        return Err(SkimError { problem: Problem::Duplicate(name), at });
    }
    Ok(())
}

fn present<T>(slot: Option<T>, name: &'static str, at: usize) -> Result<T, SkimError> {
    slot.ok_or(SkimError { problem: Problem::Missing(name), at })
}

/// The members of the envelope other than `data`.
fn is_wanted(key: &str) -> bool {
    matches!(key, "id" | "type" | "created" | "livemode")
}

impl<'a> Found<'a> {
    /// Reads the value of member `key` (written at `at`) at the cursor.
    fn member(&mut self, key: &str, reader: &mut Reader<'a>, at: usize) -> Result<(), SkimError> {
        match key {
            "id" => once(&mut self.id, reader.string()?, "id", at),
            "type" => once(&mut self.event_type, reader.string()?, "type", at),
            "created" => once(&mut self.created, reader.integer()?, "created", at),
            "livemode" => once(&mut self.livemode, reader.boolean()?, "livemode", at),
            "data" => once(&mut self.data, reader.data()?, "data", at),
            _ => reader.skip_value(),
        }
    }

    /// Whether every member is found: then nothing else needs reading.
    fn complete(&self) -> bool {
        self.id.is_some()
            && self.event_type.is_some()
            && self.created.is_some()
            && self.livemode.is_some()
            && self.data.is_some()
    }

    /// The envelope, or the first member missing (reported at `at`, where
    /// the object starts).
    fn fields(self, at: usize) -> Result<EnvelopeFields<'a>, SkimError> {
        Ok(EnvelopeFields {
            id: present(self.id, "id", at)?,
            event_type: present(self.event_type, "type", at)?,
            created: present(self.created, "created", at)?,
            livemode: present(self.livemode, "livemode", at)?,
            data_object_is_object: present(self.data, "data", at)?,
        })
    }
}

/// Bytes of the literals `true`, `false`, `null` and numbers.
fn is_literal_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'+' | b'.')
}

#[inline(always)]
fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\n' | b'\r' | b'\t')
}

/// Whether an object's members go on after the one just read.
enum Next {
    Member,
    Done,
}

/// Reads forwards from `at`.
#[derive(Clone, Copy)]
struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    #[inline(always)]
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn fail<T>(&self, problem: Problem) -> Result<T, SkimError> {
        Err(SkimError { problem, at: self.at })
    }

    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.at).copied()
    }

    #[inline(always)]
    fn rest(&self) -> &'a [u8] {
        self.bytes().get(self.at..).unwrap_or_default()
    }

    #[inline(always)]
    fn whitespace(&mut self) {
        let rest = self.rest();
        self.at += rest.iter().position(|&b| !is_whitespace(b)).unwrap_or(rest.len());
    }

    fn eat(&mut self, byte: u8, what: &'static str) -> Result<(), SkimError> {
        self.whitespace();
        if self.peek() != Some(byte) {
            return self.fail(Problem::Expected(what));
        }
        self.at += 1;
        Ok(())
    }

    /// Steps over the string at the cursor; its span with the quotes, and
    /// whether it holds escapes.
    #[inline(always)]
    fn string_span(&mut self) -> Result<(usize, usize, bool), SkimError> {
        self.whitespace();
        let start = self.at;
        if self.peek() != Some(b'"') {
            return self.fail(Problem::Expected("a string"));
        }
        self.at += 1;
        let mut escapes = false;
        loop {
            let rest = self.rest();
            let Some(offset) = rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20) else {
                return Err(SkimError { problem: Problem::Unterminated("string"), at: start });
            };
            self.at += offset;
            match rest[offset] {
                b'"' => break,
                b'\\' => {
                    escapes = true;
                    self.at += 2;
                }
                _ => return self.fail(Problem::Control),
            }
        }
        self.at += 1;
        Ok((start, self.at, escapes))
    }

    /// The string at the cursor, decoded.
    #[inline(always)]
    fn string(&mut self) -> Result<Cow<'a, str>, SkimError> {
        let (start, end, escapes) = self.string_span()?;
        let escape = SkimError { problem: Problem::Escape, at: start };
        if escapes {
            let quoted = self.text.get(start..end).ok_or(escape.clone())?;
            return serde_json::from_str::<String>(quoted).map(Cow::Owned).map_err(|_| escape);
        }
        // Quotes are ASCII, so both ends are character boundaries.
        self.text.get(start + 1..end - 1).map(Cow::Borrowed).ok_or(escape)
    }

    /// The literal (`true`, `12`, …) at the cursor, as written.
    #[inline(always)]
    fn literal(&mut self) -> &'a str {
        self.whitespace();
        let start = self.at;
        let rest = self.rest();
        self.at += rest.iter().position(|&b| !is_literal_byte(b)).unwrap_or(rest.len());
        self.text.get(start..self.at).unwrap_or_default()
    }

    fn integer(&mut self) -> Result<i64, SkimError> {
        self.whitespace();
        let start = self.at;
        let written = self.literal();
        let digits = written.strip_prefix('-').unwrap_or(written);
        let well_formed = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits.len() == 1 || !digits.starts_with('0'));
        if !well_formed {
            return Err(SkimError { problem: Problem::Expected("an integer"), at: start });
        }
        written.parse().map_err(|_| SkimError { problem: Problem::OutOfRange, at: start })
    }

    fn boolean(&mut self) -> Result<bool, SkimError> {
        self.whitespace();
        let start = self.at;
        match self.literal() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(SkimError { problem: Problem::Expected("`true` or `false`"), at: start }),
        }
    }

    /// Steps over one value of any kind.
    fn skip_value(&mut self) -> Result<(), SkimError> {
        self.whitespace();
        match self.peek() {
            Some(b'"') => self.string_span().map(drop),
            Some(b'{' | b'[') => {
                self.at = skip_container(self.bytes(), self.at)?;
                Ok(())
            }
            Some(byte) if is_literal_byte(byte) => {
                self.literal();
                Ok(())
            }
            _ => self.fail(Problem::Expected("a value")),
        }
    }

    /// Calls `member` with each key of the object at the cursor (and where
    /// it is written); it reads the value, and may end the reading.
    fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, Cow<'a, str>, usize) -> Result<Next, SkimError>,
    ) -> Result<(), SkimError> {
        self.eat(b'{', "`{`")?;
        self.whitespace();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.whitespace();
            let key_at = self.at;
            let key = self.string()?;
            self.eat(b':', "`:`")?;
            if let Next::Done = member(self, key, key_at)? {
                return Ok(());
            }
            self.whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return self.fail(Problem::Expected("`,` or `}`")),
            }
        }
    }

    fn envelope(&mut self) -> Result<EnvelopeFields<'a>, SkimError> {
        let mut found = Found::default();
        self.whitespace();
        let start = self.at;
        self.object(|reader, key, at| {
            // Tried once: a failed try reads `data` forwards, which finds it.
            if key == "data"
                && found.data.is_none()
                && let Some(whole) = reader.members_after_data(&found)
            {
                found = whole;
                reader.at = reader.text.len();
                return Ok(Next::Done);
            }
            found.member(&key, reader, at).map(|()| Next::Member)
        })?;
        found.fields(start)
    }

    /// `data`: whether its `object` is an object.
    fn data(&mut self) -> Result<bool, SkimError> {
        let mut object = None;
        self.whitespace();
        let start = self.at;
        self.object(|reader, key, at| match key.as_ref() {
            "object" => {
                reader.whitespace();
                let is_object = reader.peek() == Some(b'{');
                reader.skip_value()?;
                once(&mut object, is_object, "object", at).map(|()| Next::Member)
            }
            _ => reader.skip_value().map(|()| Next::Member),
        })?;
        present(object, "object", start)
    }

    /// The shortcut, with the cursor at `data`'s value: whether `data`
    /// starts with its `object` (and whether that is an object), then the
    /// members after `data` read backwards from the end of the body. The
    /// members found, once they are all found; None if anything is not as
    /// Stripe writes it, and the caller reads on forwards.
    fn members_after_data(&self, before: &Found<'a>) -> Option<Found<'a>> {
        let mut probe = *self;
        probe.whitespace();
        let value_start = probe.at;
        probe.eat(b'{', "").ok()?;
        if probe.string().ok()? != "object" {
            return None;
        }
        probe.eat(b':', "").ok()?;
        probe.whitespace();
        let mut found = before.clone();
        found.data = Some(probe.peek() == Some(b'{'));
        let mut tail = Backwards { text: self.text, at: self.text.len(), floor: value_start };
        tail.members(&mut found)?;
        Some(found)
    }
}

/// Reads backwards from `at` (exclusive), never down to `floor`.
struct Backwards<'a> {
    text: &'a str,
    at: usize,
    floor: usize,
}

impl<'a> Backwards<'a> {
    #[inline(always)]
    fn before(&self) -> Option<u8> {
        if self.at <= self.floor + 1 {
            return None;
        }
        self.text.as_bytes().get(self.at - 1).copied()
    }

    #[inline(always)]
    fn whitespace(&mut self) {
        while self.before().is_some_and(is_whitespace) {
            self.at -= 1;
        }
    }

    #[inline(always)]
    fn eat(&mut self, byte: u8) -> Option<()> {
        self.whitespace();
        (self.before()? == byte).then(|| self.at -= 1)
    }

    /// Steps back over the string that ends here. Its opening quote is the
    /// nearest quote before not escaped, that is after an even number of
    /// backslashes: inside a string every quote is escaped.
    fn string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        let bytes = self.text.as_bytes();
        loop {
            let quote = self.floor + 1 + memchr::memrchr(b'"', bytes.get(self.floor + 1..self.at)?)?;
            let backslashes = bytes[..quote].iter().rev().take_while(|&&b| b == b'\\').count();
            self.at = quote;
            if backslashes % 2 == 0 {
                return Some(());
            }
        }
    }

    /// Steps back over the value that ends here.
    fn value(&mut self) -> Option<()> {
        self.whitespace();
        match self.before()? {
            b'"' => self.string(),
            b'}' | b']' => {
                let mut depth = 0usize;
                loop {
                    match self.before()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'}' | b']' => depth += 1,
                        b'{' | b'[' => {
                            depth -= 1;
                            if depth == 0 {
                                self.at -= 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.at -= 1;
                }
            }
            byte if is_literal_byte(byte) => {
                while self.before().is_some_and(is_literal_byte) {
                    self.at -= 1;
                }
                Some(())
            }
            _ => None,
        }
    }

    /// Reads members from the end of the object back into `found`, until
    /// it is complete.
    fn members(&mut self, found: &mut Found<'a>) -> Option<()> {
        self.eat(b'}')?;
        while !found.complete() {
            self.whitespace();
            let value_end = self.at;
            self.value()?;
            let value_start = self.at;
            self.eat(b':')?;
            self.whitespace();
            let key_end = self.at;
            self.string()?;
            let key_start = self.at;
            self.eat(b',')?;
            // The key as written: one with an escape is left to the
            // forward reading, so as written is as decoded.
            let key = self.text.get(key_start + 1..key_end - 1)?;
            if key.contains('\\') || key == "data" {
                return None;
            }
            if is_wanted(key) {
                let mut value = Reader { text: self.text.get(..value_end)?, at: value_start };
                found.member(key, &mut value, key_start).ok()?;
                value.whitespace();
                (value.at == value_end).then_some(())?;
            }
        }
        Some(())
    }
}

/// The masks of one 64-byte block: bit i stands for byte i.
struct BlockMasks {
    quotes: u64,
    /// `[`, `]`, `{`, `}`, and `Y`, `_`, `y`, DEL: the byte tells which.
    /// Outside strings valid JSON has only the brackets.
    brackets: u64,
    /// Whether the block has a backslash.
    backslashes: bool,
}

fn lane_mask(lane: u8x16) -> u64 {
    u64::from(lane.move_mask() as u16)
}

fn block_masks(block: &[u8; 64]) -> BlockMasks {
    let (lanes, _) = block.as_chunks::<16>();
    let (mut quotes, mut brackets) = (0, 0);
    let mut backslashes = u8x16::splat(0);
    for (index, lane) in lanes.iter().enumerate() {
        let bytes = u8x16::new(*lane);
        quotes |= lane_mask(bytes.cmp_eq(u8x16::splat(b'"'))) << (index * 16);
        // 0x5B, 0x5D, 0x7B, 0x7D differ only in bits 0x26.
        let folded = bytes & u8x16::splat(!0x26);
        brackets |= lane_mask(folded.cmp_eq(u8x16::splat(0x59))) << (index * 16);
        backslashes |= bytes.cmp_eq(u8x16::splat(b'\\'));
    }
    BlockMasks { quotes, brackets, backslashes: backslashes.move_mask() != 0 }
}

/// Bytes escaped by a backslash in the block, given whether its first byte
/// is (the previous block ended in an escaping backslash); and whether its
/// last byte escapes the next block's first.
fn escaped_bytes(block: &[u8; 64], first_escaped: bool) -> (u64, bool) {
    let mut backslashes = 0u64;
    for (index, byte) in block.iter().enumerate() {
        backslashes |= u64::from(*byte == b'\\') << index;
    }
    let mut escaped = u64::from(first_escaped);
    let mut escaping = backslashes & !escaped;
    let mut carry = false;
    while escaping != 0 {
        let at = escaping.trailing_zeros();
        escaping &= escaping - 1;
        if at == 63 {
            carry = true;
        } else {
            // The byte it escapes escapes nothing, even a backslash.
            escaped |= 1 << (at + 1);
            escaping &= !(1 << (at + 1));
        }
    }
    (escaped, carry)
}

/// Each bit set from a quote up to, not including, the next: the bytes
/// inside strings (with their opening quotes).
fn inside_strings(quotes: u64) -> u64 {
    let mut inside = quotes;
    for shift in [1, 2, 4, 8, 16, 32] {
        inside ^= inside << shift;
    }
    inside
}

/// The index just past the object or array that starts at `start`.
fn skip_container(bytes: &[u8], start: usize) -> Result<usize, SkimError> {
    let mut depth = 0u32;
    // All ones when the block starts inside a string.
    let mut in_string = 0u64;
    let mut first_escaped = false;
    let mut at = start;
    while at < bytes.len() {
        let padded;
        let block = match bytes[at..].first_chunk::<64>() {
            Some(block) => block,
            None => {
                let mut tail = [b' '; 64];
                tail[..bytes.len() - at].copy_from_slice(&bytes[at..]);
                padded = tail;
                &padded
            }
        };
        let masks = block_masks(block);
        let mut quotes = masks.quotes;
        if masks.backslashes || first_escaped {
            let (escaped, carry) = escaped_bytes(block, first_escaped);
            quotes &= !escaped;
            first_escaped = carry;
        }
        let inside = inside_strings(quotes) ^ in_string;
        in_string = ((inside as i64) >> 63) as u64;
        let mut marks = masks.brackets & !inside;
        while marks != 0 {
            let offset = marks.trailing_zeros() as usize;
            marks &= marks - 1;
            match block[offset] {
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return Ok(at + offset + 1);
                    }
                }
                _ => {}
            }
        }
        at += 64;
    }
    Err(SkimError { problem: Problem::Unterminated("object or array"), at: start })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip(text: &str) -> Result<usize, SkimError> {
        skip_container(text.as_bytes(), 0)
    }

    #[test]
    fn a_container_ends_at_its_own_closing_bracket() {
        assert_eq!(skip("{}"), Ok(2));
        assert_eq!(skip("[1, {\"a\": [2]}] trailing"), Ok(15));
        assert_eq!(skip(r#"{"a": "}]{[", "b": {}} x"#), Ok(22));
    }

    #[test]
    fn escaped_quotes_do_not_end_strings_and_escaped_backslashes_do() {
        assert_eq!(skip(r#"{"a": "\"}"} x"#), Ok(12));
        assert_eq!(skip(r#"{"a": "\\"} x"#), Ok(11));
        assert_eq!(skip(r#"{"a": "\\\"}"} x"#), Ok(14));
    }

    #[test]
    fn strings_escapes_and_brackets_carry_across_blocks() {
        for pad in 0..130 {
            let padding = " ".repeat(pad);
            let text = format!(r#"{{{padding}"k": "x{padding}\\\"{{}}\\\\", "l": [{{}}]}} tail"#);
            let end = text.find(" tail").unwrap();
            assert_eq!(skip(&text), Ok(end), "{text}");
        }
        // A backslash as the block's last byte escapes the next block's first.
        for pad in 0..70 {
            let text = format!("{{\"{}\\\"}}\" }} tail", "a".repeat(pad));
            assert_eq!(skip(&text), Ok(text.find(" tail").unwrap()), "{text}");
        }
    }

    proptest::proptest! {
        /// The body is refused as not UTF-8 exactly when, and where, std's
        /// check says so: text of every length around the SIMD blocks',
        /// with one byte anywhere replaced by any byte.
        #[test]
        fn a_body_is_refused_as_not_utf8_where_std_says_it_is_not(
            text in "\\PC{0,300}",
            at in proptest::prelude::any::<proptest::sample::Index>(),
            byte in proptest::prelude::any::<u8>(),
        ) {
            let mut body = text.into_bytes();
            if !body.is_empty() {
                let at = at.index(body.len());
                body[at] = byte;
            }
            let refused_at = match envelope_fields(&body) {
                Err(SkimError { problem: Problem::NotUtf8, at }) => Some(at),
                _ => None,
            };
            proptest::prop_assert_eq!(refused_at, std::str::from_utf8(&body).err().map(|e| e.valid_up_to()));
        }
    }

    #[test]
    fn an_unterminated_container_is_refused() {
        assert_eq!(skip("{\"a\": [1, 2}").unwrap_err().problem, Problem::Unterminated("object or array"));
        assert_eq!(skip("{\"a\": \"}").unwrap_err().problem, Problem::Unterminated("object or array"));
    }
}
