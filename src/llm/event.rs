//! A typed, borrowed reading of the streamed events that make up nearly every stream: OpenAI
//! chat and legacy completion chunks, Anthropic's text and tool-input deltas, block stops and
//! pings, and the Responses API's text deltas. Their text is borrowed from the event's `data`
//! (copied only when it has escapes), no `serde_json::Value` is built and the event is not
//! walked for stray strings: [`read`] gives exactly what [`super::stream::interpret`] gives
//! for the same event, plus each delta's text.
//!
//! It reads only the exact known shapes, by hand: every field is named, typed (an identifier
//! must be a string or null, an index a plain unsigned integer, `logprobs` and `usage` null or
//! empty) and given once. Anything else (a field no shape lists, a usage or error object, a
//! `.done` event repeating text, a repeated or escaped key, a number with a sign, fraction or
//! exponent, anything not JSON) is `None`, and the caller reads the event the general way,
//! strict parse and walk included, so hostile or unusual events keep their outcome: this
//! reader only ever accepts a subset of what serde_json accepts, and reads it the same.
//! Every string a shape accepts outside its deltas sits under a structural or identifier key
//! (`id`, `model`, `type`, `role`, `finish_reason`...), which the general walk never treats as
//! text; so a shape read here has no extra texts.

use std::borrow::Cow;

use super::stream::{Channel, ChannelKind, Delta, End, EventInfo, Step};
use super::ApiFormat;

/// An event read by its known shape: what it means, and the text of each of `info.deltas`.
#[derive(Debug)]
pub struct Read<'a> {
    pub info: EventInfo,
    pub texts: Vec<Cow<'a, str>>,
}

/// Reads `data` (one event's data) when it has a known shape of `format`; `None` otherwise
/// (the caller then parses it the general way).
pub fn read(format: ApiFormat, data: &str) -> Option<Read<'_>> {
    let mut r = Reader {
        s: data,
        b: data.as_bytes(),
        at: 0,
    };
    let read = match format {
        ApiFormat::OpenaiChat | ApiFormat::OpenaiCompletions => chunk(format, read_chunk(&mut r)?)?,
        ApiFormat::AnthropicMessages => anthropic(read_anthropic(&mut r)?)?,
        ApiFormat::OpenaiResponses => responses(read_responses(&mut r)?)?,
        ApiFormat::OpenaiEmbeddings | ApiFormat::Unknown => return None,
    };
    r.ws();
    (r.at == r.b.len()).then_some(read)
}

/// A cursor over JSON text reading the few value kinds the shapes use; every method returns
/// `None` on anything it does not read exactly as serde_json would.
struct Reader<'a> {
    s: &'a str,
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.at).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.at += 1)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.ws();
        let end = self.at + word.len();
        (self.b.get(self.at..end)? == word).then(|| self.at = end)
    }

    fn null(&mut self) -> Option<()> {
        self.literal(b"null")
    }

    /// Whether the next value is `null` (then consumed).
    fn is_null(&mut self) -> Option<bool> {
        if self.peek()? == b'n' {
            self.null()?;
            return Some(true);
        }
        Some(false)
    }

    /// A string, borrowed unless it has escapes.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.at;
        let end = start + memchr::memchr2(b'"', b'\\', self.b.get(start..)?)?;
        // A control character ends no string: JSON refuses it raw (checked without a branch
        // per byte).
        let span = self.b.get(start..end)?;
        if span.iter().fold(false, |bad, c| bad | (*c < 0x20)) {
            return None;
        }
        self.at = end;
        if self.b.get(end) == Some(&b'"') {
            self.at += 1;
            return Some(Cow::Borrowed(self.s.get(start..end)?));
        }
        let mut out = String::from(self.s.get(start..end)?);
        self.escaped(&mut out)?;
        Some(Cow::Owned(out))
    }

    /// The rest of a string from its first escape, into `out`; consumes the closing quote.
    fn escaped(&mut self, out: &mut String) -> Option<()> {
        loop {
            let run = self.at;
            while let Some(&c) = self.b.get(self.at) {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.at += 1;
            }
            out.push_str(self.s.get(run..self.at)?);
            match *self.b.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                b'\\' => {
                    let e = *self.b.get(self.at + 1)?;
                    self.at += 2;
                    out.push(match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode()?,
                        _ => return None,
                    });
                }
                _ => return None,
            }
        }
    }

    /// The character of a `\u` escape (its `\u` consumed); a surrogate pair is one character,
    /// a lone surrogate is not read.
    fn unicode(&mut self) -> Option<char> {
        let hi = self.hex4()?;
        if !(0xD800..0xDC00).contains(&hi) {
            return char::from_u32(hi);
        }
        if self.b.get(self.at..self.at + 2)? != b"\\u" {
            return None;
        }
        self.at += 2;
        let lo = self.hex4()?;
        if !(0xDC00..0xE000).contains(&lo) {
            return None;
        }
        char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.b.get(self.at..self.at + 4)?;
        self.at += 4;
        digits
            .iter()
            .try_fold(0u32, |n, d| Some(n * 16 + char::from(*d).to_digit(16)?))
    }

    fn opt_str(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.is_null()? {
            return Some(None);
        }
        self.string().map(Some)
    }

    /// A plain unsigned integer (no sign, fraction or exponent; what `as_u64` reads), or null.
    fn opt_uint(&mut self) -> Option<Option<u64>> {
        if self.is_null()? {
            return Some(None);
        }
        let start = self.at;
        let mut n: u64 = 0;
        while let Some(d) = self.b.get(self.at).filter(|c| c.is_ascii_digit()) {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.at += 1;
        }
        let len = self.at - start;
        let leading_zero = len > 1 && self.b.get(start) == Some(&b'0');
        let more = matches!(self.b.get(self.at), Some(b'.' | b'e' | b'E'));
        (len > 0 && !leading_zero && !more).then_some(Some(n))
    }

    /// An object's members, each handed to `member` with its key (keys with escapes are not
    /// read).
    /// `member` is a trait object: one copy of the loop for every shape (module size).
    fn object(&mut self, member: &mut dyn FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            let Cow::Borrowed(key) = self.string()? else {
                return None;
            };
            self.eat(b':')?;
            member(self, key)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An array's items, each handed to `item` with its position.
    fn array(&mut self, item: &mut dyn FnMut(&mut Self, usize) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        let mut i = 0;
        loop {
            item(self, i)?;
            i += 1;
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// The fields of an object read so far: a field given twice is not read.
#[derive(Default)]
struct Seen(u32);

impl Seen {
    fn first(&mut self, field: u32) -> Option<()> {
        let bit = 1 << field;
        (self.0 & bit == 0).then(|| self.0 |= bit)
    }
}

/// An OpenAI chat (or legacy completions) chunk without usage or error.
#[derive(Default)]
struct Chunk<'a> {
    model: Option<Cow<'a, str>>,
    choices: Vec<Choice<'a>>,
}

fn read_chunk<'a>(r: &mut Reader<'a>) -> Option<Chunk<'a>> {
    let mut c = Chunk::default();
    let mut seen = Seen::default();
    r.object(&mut |r, key| {
        match key {
            "id" => seen.first(0).and_then(|()| r.opt_str()).map(drop),
            "object" => seen.first(1).and_then(|()| r.opt_str()).map(drop),
            "created" => seen.first(2).and_then(|()| r.opt_uint()).map(drop),
            "model" => {
                seen.first(3)?;
                c.model = r.opt_str()?;
                Some(())
            }
            "system_fingerprint" => seen.first(4).and_then(|()| r.opt_str()).map(drop),
            "service_tier" => seen.first(5).and_then(|()| r.opt_str()).map(drop),
            "obfuscation" => seen.first(6).and_then(|()| r.opt_str()).map(drop),
            // Null only: usage and errors are read the general way.
            "usage" => seen.first(7).and_then(|()| r.null()),
            "error" => seen.first(8).and_then(|()| r.null()),
            "choices" => {
                seen.first(9)?;
                if r.is_null()? {
                    return Some(());
                }
                r.array(&mut |r, _| {
                    c.choices.push(read_choice(r)?);
                    Some(())
                })
            }
            _ => None,
        }
    })?;
    Some(c)
}

#[derive(Default)]
struct Choice<'a> {
    index: Option<u64>,
    delta: Option<ChatDelta<'a>>,
    /// Legacy completions' text; absent (`None`) and null (`Some(None)`) differ.
    text: Option<Option<Cow<'a, str>>>,
    finish_reason: Option<Cow<'a, str>>,
}

fn read_choice<'a>(r: &mut Reader<'a>) -> Option<Choice<'a>> {
    let mut c = Choice::default();
    let mut seen = Seen::default();
    r.object(&mut |r, key| {
        match key {
            "index" => {
                seen.first(0)?;
                c.index = r.opt_uint()?;
            }
            "delta" => {
                seen.first(1)?;
                if !r.is_null()? {
                    c.delta = Some(read_delta(r)?);
                }
            }
            "text" => {
                seen.first(2)?;
                c.text = Some(r.opt_str()?);
            }
            // Null only: log-probabilities are read the general way.
            "logprobs" => seen.first(3).and_then(|()| r.null())?,
            "finish_reason" => {
                seen.first(4)?;
                c.finish_reason = r.opt_str()?;
            }
            _ => return None,
        }
        Some(())
    })?;
    Some(c)
}

#[derive(Default)]
struct ChatDelta<'a> {
    /// A string (content as parts is read the general way).
    content: Option<Cow<'a, str>>,
    refusal: Option<Cow<'a, str>>,
    function_call: Option<Cow<'a, str>>,
    /// Each tool call's index and function arguments.
    tool_calls: Vec<(Option<u64>, Option<Cow<'a, str>>)>,
}

fn read_delta<'a>(r: &mut Reader<'a>) -> Option<ChatDelta<'a>> {
    let mut d = ChatDelta::default();
    let mut seen = Seen::default();
    r.object(&mut |r, key| {
        match key {
            "role" => seen.first(0).and_then(|()| r.opt_str()).map(drop)?,
            "content" => {
                seen.first(1)?;
                d.content = r.opt_str()?;
            }
            "refusal" => {
                seen.first(2)?;
                d.refusal = r.opt_str()?;
            }
            "function_call" => {
                seen.first(3)?;
                if !r.is_null()? {
                    d.function_call = read_function(r)?;
                }
            }
            "tool_calls" => {
                seen.first(4)?;
                if !r.is_null()? {
                    r.array(&mut |r, _| {
                        d.tool_calls.push(read_tool_call(r)?);
                        Some(())
                    })?;
                }
            }
            _ => return None,
        }
        Some(())
    })?;
    Some(d)
}

/// A function's name and arguments; the arguments.
fn read_function<'a>(r: &mut Reader<'a>) -> Option<Option<Cow<'a, str>>> {
    let mut arguments = None;
    let mut seen = Seen::default();
    r.object(&mut |r, key| match key {
        "name" => seen.first(0).and_then(|()| r.opt_str()).map(drop),
        "arguments" => {
            seen.first(1)?;
            arguments = r.opt_str()?;
            Some(())
        }
        _ => None,
    })?;
    Some(arguments)
}

fn read_tool_call<'a>(r: &mut Reader<'a>) -> Option<(Option<u64>, Option<Cow<'a, str>>)> {
    let (mut index, mut arguments) = (None, None);
    let mut seen = Seen::default();
    r.object(&mut |r, key| {
        match key {
            "index" => {
                seen.first(0)?;
                index = r.opt_uint()?;
            }
            "id" => seen.first(1).and_then(|()| r.opt_str()).map(drop)?,
            "type" => seen.first(2).and_then(|()| r.opt_str()).map(drop)?,
            "function" => {
                seen.first(3)?;
                if !r.is_null()? {
                    arguments = read_function(r)?;
                }
            }
            _ => return None,
        }
        Some(())
    })?;
    Some((index, arguments))
}

fn key(k: &'static str) -> Step {
    Step::Key(Cow::Borrowed(k))
}

/// Collects deltas and their texts in the order `interpret` lists them.
#[derive(Default)]
struct Out<'a> {
    info: EventInfo,
    texts: Vec<Cow<'a, str>>,
}

impl<'a> Out<'a> {
    fn delta(&mut self, channel: Channel, path: Vec<Step>, text: Cow<'a, str>) {
        self.info.deltas.push(Delta {
            channel,
            path,
            once: false,
        });
        self.texts.push(text);
    }

    fn done(self) -> Option<Read<'a>> {
        Some(Read {
            info: self.info,
            texts: self.texts,
        })
    }
}

fn chunk(format: ApiFormat, c: Chunk<'_>) -> Option<Read<'_>> {
    let mut out = Out::default();
    out.info.model = c.model.map(Cow::into_owned);
    for (k, choice) in c.choices.into_iter().enumerate() {
        let i = choice.index.unwrap_or(k as u64);
        let at = |more: &[&'static str]| {
            let mut p = vec![key("choices"), Step::Index(k)];
            p.extend(more.iter().map(|m| key(m)));
            p
        };
        let channel = |kind, sub| Channel {
            index: i,
            kind,
            sub,
        };
        if format == ApiFormat::OpenaiCompletions || choice.text.is_some() {
            if choice.delta.is_some() {
                // The delta's strings would be texts of their own: the general way.
                return None;
            }
            if let Some(Some(text)) = choice.text {
                out.delta(channel(ChannelKind::Text, 0), at(&["text"]), text);
            }
        } else if let Some(delta) = choice.delta {
            if let Some(content) = delta.content {
                let path = at(&["delta", "content"]);
                out.delta(channel(ChannelKind::Text, 0), path, content);
            }
            if let Some(args) = delta.function_call {
                let path = at(&["delta", "function_call", "arguments"]);
                out.delta(channel(ChannelKind::ToolInput, u64::MAX), path, args);
            }
            if let Some(refusal) = delta.refusal {
                let path = at(&["delta", "refusal"]);
                out.delta(channel(ChannelKind::Refusal, 0), path, refusal);
            }
            for (j, (index, arguments)) in delta.tool_calls.into_iter().enumerate() {
                let sub = index.unwrap_or(j as u64);
                if let Some(args) = arguments {
                    let mut path = at(&["delta", "tool_calls"]);
                    path.extend([Step::Index(j), key("function"), key("arguments")]);
                    out.delta(channel(ChannelKind::ToolInput, sub), path, args);
                }
            }
        }
        if choice.finish_reason.is_some() {
            out.info.ends.push(End::Index(i));
        }
    }
    out.done()
}

/// An Anthropic messages event without a message, usage or error.
#[derive(Default)]
struct Anthropic<'a> {
    kind: Cow<'a, str>,
    index: Option<u64>,
    content_block: Option<Block<'a>>,
    delta: Option<Block<'a>>,
}

/// A content block, or a delta: its type, text and partial JSON.
#[derive(Default)]
struct Block<'a> {
    kind: Cow<'a, str>,
    text: Option<Cow<'a, str>>,
    partial_json: Option<Cow<'a, str>>,
}

fn read_anthropic<'a>(r: &mut Reader<'a>) -> Option<Anthropic<'a>> {
    let mut e = Anthropic::default();
    let mut seen = Seen::default();
    r.object(&mut |r, key| {
        match key {
            "type" => {
                seen.first(0)?;
                e.kind = r.string()?;
            }
            "index" => {
                seen.first(1)?;
                e.index = r.opt_uint()?;
            }
            "content_block" => {
                seen.first(2)?;
                if !r.is_null()? {
                    e.content_block = Some(read_block(r)?);
                }
            }
            "delta" => {
                seen.first(3)?;
                if !r.is_null()? {
                    e.delta = Some(read_block(r)?);
                }
            }
            _ => return None,
        }
        Some(())
    })?;
    // The type is required.
    seen.first(0).is_none().then_some(e)
}

fn read_block<'a>(r: &mut Reader<'a>) -> Option<Block<'a>> {
    let mut b = Block::default();
    let mut seen = Seen::default();
    r.object(&mut |r, key| {
        match key {
            "type" => {
                seen.first(0)?;
                b.kind = r.string()?;
            }
            "text" => {
                seen.first(1)?;
                b.text = r.opt_str()?;
            }
            "partial_json" => {
                seen.first(2)?;
                b.partial_json = r.opt_str()?;
            }
            _ => return None,
        }
        Some(())
    })?;
    seen.first(0).is_none().then_some(b)
}

fn anthropic(e: Anthropic<'_>) -> Option<Read<'_>> {
    let mut out = Out::default();
    let index = e.index.unwrap_or(0);
    let channel = |kind| Channel {
        index,
        kind,
        sub: 0,
    };
    match (&*e.kind, e.content_block, e.delta) {
        ("content_block_start", Some(block), None) => match block {
            Block {
                kind: k,
                text: Some(text),
                partial_json: None,
            } if k == "text" => {
                let path = vec![key("content_block"), key("text")];
                out.delta(channel(ChannelKind::Text), path, text);
            }
            _ => return None,
        },
        ("content_block_delta", None, Some(delta)) => match delta {
            Block {
                kind: k,
                text: Some(text),
                partial_json: None,
            } if k == "text_delta" => {
                let path = vec![key("delta"), key("text")];
                out.delta(channel(ChannelKind::Text), path, text);
            }
            Block {
                kind: k,
                text: None,
                partial_json: Some(json),
            } if k == "input_json_delta" => {
                let path = vec![key("delta"), key("partial_json")];
                out.delta(channel(ChannelKind::ToolInput), path, json);
            }
            _ => return None,
        },
        ("content_block_stop", None, None) => out.info.ends.push(End::Index(index)),
        ("message_stop", None, None) => {
            out.info.terminal = true;
            out.info.ends.push(End::All);
        }
        ("ping", None, None) => {}
        _ => return None,
    }
    out.done()
}

/// A Responses API text delta.
#[derive(Default)]
struct Responses<'a> {
    kind: Cow<'a, str>,
    sequence_number: Option<u64>,
    output_index: Option<u64>,
    content_index: Option<u64>,
    delta: Option<Cow<'a, str>>,
}

fn read_responses<'a>(r: &mut Reader<'a>) -> Option<Responses<'a>> {
    let mut e = Responses::default();
    let mut seen = Seen::default();
    r.object(&mut |r, key| {
        match key {
            "type" => {
                seen.first(0)?;
                e.kind = r.string()?;
            }
            "sequence_number" => {
                seen.first(1)?;
                e.sequence_number = r.opt_uint()?;
            }
            "item_id" => seen.first(2).and_then(|()| r.opt_str()).map(drop)?,
            "output_index" => {
                seen.first(3)?;
                e.output_index = r.opt_uint()?;
            }
            "content_index" => {
                seen.first(4)?;
                e.content_index = r.opt_uint()?;
            }
            "delta" => {
                seen.first(5)?;
                e.delta = r.opt_str()?;
            }
            // Null or a list of nulls (in practice empty) only.
            "logprobs" => {
                seen.first(6)?;
                if !r.is_null()? {
                    r.array(&mut |r, _| r.null())?;
                }
            }
            "obfuscation" => seen.first(7).and_then(|()| r.opt_str()).map(drop)?,
            _ => return None,
        }
        Some(())
    })?;
    seen.first(0).is_none().then_some(e)
}

fn responses(e: Responses<'_>) -> Option<Read<'_>> {
    let kind = match &*e.kind {
        "response.output_text.delta" => ChannelKind::Text,
        "response.refusal.delta" => ChannelKind::Refusal,
        "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
            ChannelKind::ToolInput
        }
        _ => return None,
    };
    let mut out = Out::default();
    out.info.sequence_number = e.sequence_number;
    if let Some(delta) = e.delta {
        let channel = Channel {
            index: e.output_index.unwrap_or(0),
            kind,
            sub: e.content_index.unwrap_or(0),
        };
        out.delta(channel, vec![key("delta")], delta);
    }
    out.done()
}

#[cfg(test)]
mod tests;
