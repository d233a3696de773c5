//! `_meta` remarks: which rule changed which value, how, and where in the new string.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use smallvec::SmallVec;

use super::json::{self, write_escaped, Bump, Str, Value};
use super::Method;

/// One segment of a `_meta` path (see [`MetaSeg::key_order`] for their order). Keys
/// borrow from the event where they can, so recording a change copies no key text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaSeg<'a> {
    /// An object key.
    Key(Cow<'a, str>),
    /// An array index.
    Index(usize),
}

impl MetaSeg<'_> {
    /// The segment as a `_meta` key, written into `buf` for an index.
    fn key_text<'s>(&'s self, buf: &'s mut [u8; 20]) -> &'s [u8] {
        match self {
            MetaSeg::Key(k) => k.as_bytes(),
            MetaSeg::Index(n) => decimal(*n, buf),
        }
    }

    /// The first eight bytes of the segment's key text, big-endian and zero-padded, plus
    /// one: ordering by it never contradicts [`MetaSeg::key_order`] (a shorter text that
    /// is a prefix of a longer one gets a smaller or equal word), and 0 is left for the
    /// node's own entries, which come first.
    fn order_prefix(&self) -> u64 {
        let mut buf = [0u8; 20];
        let text = self.key_text(&mut buf);
        let mut word = [0u8; 8];
        let n = text.len().min(8);
        word[..n].copy_from_slice(&text[..n]);
        // No overflow: UTF-8 text has no 0xff byte, so the word is below `u64::MAX`.
        u64::from_be_bytes(word) + 1
    }

    /// The order of `_meta` keys: Relay keeps a node's children in a map keyed by
    /// strings, so array indices order as their decimal text (`"10"` before `"2"`).
    fn key_order(&self, other: &Self) -> std::cmp::Ordering {
        if let (MetaSeg::Index(x), MetaSeg::Index(y)) = (self, other) {
            if *x < 10 && *y < 10 {
                return x.cmp(y);
            }
            // As decimal text without writing it: pad the shorter number with zeros to
            // the other's length; a tie means one text is a prefix of the other.
            let digits = |n: usize| n.checked_ilog10().unwrap_or(0);
            let (dx, dy) = (digits(*x), digits(*y));
            let (px, py) = (*x as u128, *y as u128);
            let scaled = |n: u128, by: u32| n * 10u128.pow(by);
            return if dx <= dy {
                scaled(px, dy - dx).cmp(&py).then(dx.cmp(&dy))
            } else {
                px.cmp(&scaled(py, dx - dy)).then(dx.cmp(&dy))
            };
        }
        let (mut a, mut b) = ([0u8; 20], [0u8; 20]);
        self.key_text(&mut a).cmp(other.key_text(&mut b))
    }
}

/// Compares two paths segment by segment in `_meta` key order.
fn path_order(a: &[MetaSeg<'_>], b: &[MetaSeg<'_>]) -> std::cmp::Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.key_order(y))
        .find(|o| o.is_ne())
        .unwrap_or_else(|| a.len().cmp(&b.len()))
}

/// Remark type letters of Relay's `_meta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemarkType {
    /// `x`
    Removed,
    /// `s`
    Substituted,
    /// `m`
    Masked,
    /// `p`
    Pseudonymized,
}

impl RemarkType {
    /// The wire letter.
    pub fn as_str(self) -> &'static str {
        match self {
            RemarkType::Removed => "x",
            RemarkType::Substituted => "s",
            RemarkType::Masked => "m",
            RemarkType::Pseudonymized => "p",
        }
    }

    /// The redaction method this remark records.
    pub fn method(self) -> Method {
        match self {
            RemarkType::Removed => Method::Remove,
            RemarkType::Substituted => Method::Replace,
            RemarkType::Masked => Method::Mask,
            RemarkType::Pseudonymized => Method::Hash,
        }
    }
}

/// One remark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remark {
    /// The rule id.
    pub rule: Arc<str>,
    /// What happened.
    pub ty: RemarkType,
    /// Byte range in the new string.
    pub range: Option<(usize, usize)>,
}

/// The metadata of one value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaEntry {
    /// Remarks in order.
    pub rem: Vec<Remark>,
    /// Original length in characters.
    pub len: Option<usize>,
}

/// All `_meta` entries recorded while scrubbing one payload.
#[derive(Debug, Default)]
pub struct MetaLog<'a> {
    /// The entries' paths, one after another (a change records its path without an
    /// allocation of its own).
    segs: Vec<MetaSeg<'a>>,
    /// Each entry: where its path is in `segs`, and the entry.
    entries: Vec<(std::ops::Range<usize>, MetaEntry)>,
}

impl<'a> MetaLog<'a> {
    /// Number of entries (grows whenever a value is changed for the first time).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// A new entry for `path`. Each value is recorded once per scrub (entries for the
    /// same path are merged when written out).
    pub fn entry(&mut self, path: impl IntoIterator<Item = MetaSeg<'a>>) -> &mut MetaEntry {
        let start = self.segs.len();
        self.segs.extend(path);
        self.entries
            .push((start..self.segs.len(), MetaEntry::default()));
        let last = self.entries.len() - 1;
        &mut self.entries[last].1
    }

    /// Removes and returns the entries recorded after the first `at`, with their paths.
    pub fn split_off(&mut self, at: usize) -> Vec<(Vec<MetaSeg<'a>>, MetaEntry)> {
        // Their segments stay in `segs` (a rename may have put an earlier entry's path
        // after them; finding out would cost a scan per call, and the callers split off
        // once per original value or cookie header).
        (self.entries.split_off(at).into_iter())
            .map(|(r, e)| (self.segs[r].to_vec(), e))
            .collect()
    }

    /// Moves the entries under `from` to `to`.
    pub fn rename(&mut self, from: &[MetaSeg<'a>], to: &[MetaSeg<'a>]) {
        for (r, _) in &mut self.entries {
            if self.segs[r.clone()].starts_with(from) {
                let start = self.segs.len();
                self.segs.extend_from_slice(to);
                self.segs.extend_from_within(r.start + from.len()..r.end);
                *r = start..self.segs.len();
            }
        }
    }

    /// Merges every entry into the event's `_meta` object (created when missing).
    ///
    /// Keys are written in string order, like Relay's `BTreeMap` meta tree; the remarks of
    /// one value in the order they were recorded.
    pub fn merge_into<'t>(self, root: &mut Value<'t>, bump: &'t Bump) {
        if self.entries.is_empty() {
            return;
        }
        let Value::Object(entries) = root else {
            return;
        };
        let mut list: Vec<(&[MetaSeg<'_>], MetaEntry)> = self
            .entries
            .into_iter()
            .map(|(r, e)| (&self.segs[r], e))
            .collect();
        match entries.iter().position(|(k, _)| k.eq_str("_meta")) {
            Some(i) => {
                // An incoming `_meta`: add each entry at its path, in a growable copy of
                // its objects (arena slices are rebuilt to grow; adding many keys to one
                // object that way would cost time and arena space quadratic in them).
                list.sort_by(|a, b| path_order(a.0, b.0));
                let mut incoming = std::mem::take(&mut entries[i].1);
                if let Value::Serialized(text) = incoming {
                    // A `_meta` this scrub already wrote (an earlier pass over the same
                    // record): read it back so that its entries are kept. It was written
                    // from entries of bounded depth, so parsing it cannot fail; if it
                    // did, the new entries would still be written.
                    incoming = json::parse(text, bump, usize::MAX).unwrap_or(Value::Null);
                }
                let mut draft = Draft::from(incoming);
                for (path, entry) in list {
                    let mut node = &mut draft;
                    for seg in path {
                        node = match seg {
                            MetaSeg::Key(k) => node.child(bump, k),
                            MetaSeg::Index(n) => node.child(bump, &n.to_string()),
                        };
                    }
                    node.child(bump, "").merge_entry(bump, entry);
                }
                entries[i].1 = draft.finish(bump);
            }
            None => {
                // The common case: write the tree straight to JSON.
                let mut out = Vec::with_capacity(list.len() * 64);
                let mut order: Vec<u32> = (0..list.len() as u32).collect();
                serialize(&mut out, &list, &mut order, 0, &mut Vec::new());
                let json = std::str::from_utf8(&out).expect("only UTF-8 strings were written");
                let json = bump.alloc_str(json);
                json::push(
                    entries,
                    bump,
                    (Str::Decoded("_meta"), Value::Serialized(json)),
                );
            }
        }
    }
}

/// Writes the meta tree of the entries `order` points to in `list`, whose paths all share
/// their first `depth` segments, as JSON.
///
/// Entries are recorded as the walk goes, so the entries under one child mostly form a
/// single run in `order`: each level finds the runs of equal segments (keys borrowed from
/// the same event key compare by address), orders the runs by segment and recurses into
/// each child. Unlike sorting whole paths, shared prefixes are never compared again.
fn serialize(
    out: &mut Vec<u8>,
    list: &[(&[MetaSeg<'_>], MetaEntry)],
    order: &mut [u32],
    depth: usize,
    scratch: &mut Vec<u32>,
) {
    if let [only] = *order {
        // One entry below here (most of a `_meta` tree's deep levels): its remaining
        // path is a chain of single-key objects.
        let (path, entry) = &list[only as usize];
        let rest = path.get(depth..).unwrap_or_default();
        for seg in rest {
            out.push(b'{');
            write_key(out, seg);
            out.push(b':');
        }
        out.push(b'{');
        write_own(out, std::slice::from_ref(entry).iter());
        out.extend(std::iter::repeat_n(b'}', rest.len() + 1));
        return;
    }
    let seg = |i: u32| list[i as usize].0.get(depth);
    let same = |a: Option<&MetaSeg<'_>>, b: Option<&MetaSeg<'_>>| match (a, b) {
        (Some(MetaSeg::Key(x)), Some(MetaSeg::Key(y))) => {
            std::ptr::eq(x.as_ptr(), y.as_ptr()) && x.len() == y.len() || x == y
        }
        (a, b) => a == b,
    };
    let mut runs: SmallVec<[(usize, usize); 8]> = SmallVec::new();
    let mut start = 0;
    while start < order.len() {
        let head = seg(order[start]);
        let end = start
            + 1
            + order[start + 1..]
                .iter()
                .take_while(|&&i| same(seg(i), head))
                .count();
        runs.push((start, end));
        start = end;
    }
    // The node's own entries (no segment here) first, then children by segment; a
    // stable sort keeps the runs of one segment in recording order.
    let run_order =
        |a: &(usize, usize), b: &(usize, usize)| match (seg(order[a.0]), seg(order[b.0])) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => x.key_order(y),
        };
    if !runs.is_sorted_by(|a, b| run_order(a, b).is_lt()) {
        // Runs of one segment keep their recording order (by start). Each run's segment
        // is reduced once to a prefix word that orders like its text, so that most
        // comparisons are one integer compare (ties fall back to the full order).
        let mut keyed: SmallVec<[(u64, (usize, usize)); 8]> = runs
            .iter()
            .map(|&run| (seg(order[run.0]).map_or(0, MetaSeg::order_prefix), run))
            .collect();
        keyed.sort_unstable_by(|(pa, a), (pb, b)| {
            pa.cmp(pb).then_with(|| run_order(a, b)).then(a.0.cmp(&b.0))
        });
        scratch.clear();
        scratch.extend(
            keyed
                .iter()
                .flat_map(|&(_, (a, b))| order[a..b].iter().copied()),
        );
        order.copy_from_slice(scratch);
    }
    out.push(b'{');
    // The node's own entries (no segment here) were sorted first.
    let own = order.iter().take_while(|&&i| seg(i).is_none()).count();
    let mut first = true;
    if own > 0 {
        write_own(out, order[..own].iter().map(|&i| &list[i as usize].1));
        first = false;
    }
    let mut i = own;
    while i < order.len() {
        // Entries without a segment here sorted first, so every later one has one.
        let Some(key) = seg(order[i]) else { break };
        let mut j = i + 1;
        while j < order.len() && same(seg(order[j]), Some(key)) {
            j += 1;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        write_key(out, key);
        out.push(b':');
        serialize(out, list, &mut order[i..j], depth + 1, scratch);
        i = j;
    }
    out.push(b'}');
}

/// Writes a segment as a `_meta` key.
fn write_key(out: &mut Vec<u8>, seg: &MetaSeg<'_>) {
    match seg {
        MetaSeg::Key(k) => write_escaped(out, k),
        MetaSeg::Index(n) => {
            out.push(b'"');
            push_number(out, *n);
            out.push(b'"');
        }
    }
}

/// Writes a value's own `_meta` entry, `"":{"rem":[...],"len":N}`, from the entries
/// recorded for it: one per rule pass that changed it, their remarks in order, and the
/// first recorded original length.
fn write_own<'e>(out: &mut Vec<u8>, entries: impl Iterator<Item = &'e MetaEntry> + Clone) {
    out.extend_from_slice(br#""":{"rem":["#);
    for (i, r) in entries.clone().flat_map(|e| e.rem.iter()).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        write_escaped(out, &r.rule);
        out.extend_from_slice(b",\"");
        out.extend_from_slice(r.ty.as_str().as_bytes());
        out.push(b'"');
        if let Some((a, b)) = r.range {
            out.push(b',');
            push_number(out, a);
            out.push(b',');
            push_number(out, b);
        }
        out.push(b']');
    }
    out.push(b']');
    if let Some(len) = entries.into_iter().find_map(|e| e.len) {
        out.extend_from_slice(b",\"len\":");
        push_number(out, len);
    }
    out.push(b'}');
}

/// Writes `n` in decimal.
fn push_number(out: &mut Vec<u8>, n: usize) {
    if n < 10 {
        out.push(b'0' + n as u8);
        return;
    }
    out.extend_from_slice(decimal(n, &mut [0u8; 20]));
}

/// `n` in decimal, written at the end of `buf`.
fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// An incoming `_meta` tree while entries are merged into it: objects are growable and
/// indexed by key (the first of duplicate keys wins, as in a lookup by position).
enum Draft<'a> {
    Object {
        fields: Vec<(Str<'a>, Draft<'a>)>,
        index: HashMap<Cow<'a, str>, usize>,
    },
    Other(Value<'a>),
}

impl<'a> From<Value<'a>> for Draft<'a> {
    fn from(value: Value<'a>) -> Self {
        let Value::Object(entries) = value else {
            return Draft::Other(value);
        };
        let mut index = HashMap::with_capacity(entries.len());
        let fields: Vec<_> = entries
            .iter_mut()
            .enumerate()
            .map(|(i, (k, v))| {
                let k = std::mem::take(k);
                index.entry(k.decoded()).or_insert(i);
                (k, Draft::from(std::mem::take(v)))
            })
            .collect();
        Draft::Object { fields, index }
    }
}

impl<'a> Draft<'a> {
    fn empty_object() -> Self {
        Draft::Object {
            fields: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// The object under `key`, created (and this made an object) when missing; a child
    /// that is not an object is replaced by an empty one.
    fn child(&mut self, bump: &'a Bump, key: &str) -> &mut Draft<'a> {
        let i = self.position(bump, key, Draft::empty_object, false);
        let Draft::Object { fields, .. } = self else {
            unreachable!("position makes it an object")
        };
        let child = &mut fields[i].1;
        if !matches!(child, Draft::Object { .. }) {
            *child = Draft::empty_object();
        }
        child
    }

    /// Where `key` is in this object (made one if it is not), added with `new()` when
    /// missing: at the front when `first`, else at the end.
    fn position(
        &mut self,
        bump: &'a Bump,
        key: &str,
        new: impl FnOnce() -> Draft<'a>,
        first: bool,
    ) -> usize {
        if !matches!(self, Draft::Object { .. }) {
            *self = Draft::empty_object();
        }
        let Draft::Object { fields, index } = self else {
            unreachable!("made an object above")
        };
        if let Some(&i) = index.get(key) {
            return i;
        }
        let key: &'a str = bump.alloc_str(key);
        if first {
            fields.insert(0, (Str::Decoded(key), new()));
            index.values_mut().for_each(|i| *i += 1);
            index.insert(Cow::Borrowed(key), 0);
            0
        } else {
            fields.push((Str::Decoded(key), new()));
            index.insert(Cow::Borrowed(key), fields.len() - 1);
            fields.len() - 1
        }
    }

    /// Adds `entry`'s remarks (and its original length, unless one is there) to this
    /// value's meta object.
    fn merge_entry(&mut self, bump: &'a Bump, entry: MetaEntry) {
        let rem = self.position(bump, "rem", || Draft::Other(Value::Array(&mut [])), true);
        let Draft::Object { fields, .. } = self else {
            unreachable!("position makes it an object")
        };
        if !matches!(fields[rem].1, Draft::Other(Value::Array(_))) {
            fields[rem].1 = Draft::Other(Value::Array(&mut []));
        }
        if let Draft::Other(Value::Array(rems)) = &mut fields[rem].1 {
            json::extend(rems, bump, entry.rem.iter().map(|r| remark_value(bump, r)));
        }
        if let Some(len) = entry.len {
            // The first change sets the original length; an earlier one wins.
            self.position(
                bump,
                "len",
                || Draft::Other(Value::number_in(bump, len)),
                false,
            );
        }
    }

    /// The merged tree, back in the arena.
    fn finish(self, bump: &'a Bump) -> Value<'a> {
        match self {
            Draft::Object { fields, .. } => {
                Value::object_in(bump, fields.into_iter().map(|(k, d)| (k, d.finish(bump))))
            }
            Draft::Other(v) => v,
        }
    }
}

fn remark_value<'a>(bump: &'a Bump, r: &Remark) -> Value<'a> {
    let mut items = vec![Value::string_in(bump, &r.rule), Value::text(r.ty.as_str())];
    if let Some((s, e)) = r.range {
        items.push(Value::number_in(bump, s));
        items.push(Value::number_in(bump, e));
    }
    Value::array_in(bump, items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn remark(rule: &str) -> Remark {
        Remark {
            rule: Arc::from(rule),
            ty: RemarkType::Substituted,
            range: Some((0, 3)),
        }
    }

    fn key(k: &str) -> MetaSeg<'_> {
        MetaSeg::Key(Cow::Borrowed(k))
    }

    fn written(log: MetaLog<'_>) -> String {
        let bump = Bump::new();
        let mut root = Value::empty_object();
        log.merge_into(&mut root, &bump);
        let mut out = Vec::new();
        super::super::json::write(&mut out, &root);
        String::from_utf8(out).expect("utf-8")
    }

    /// Merges `log` into an event that already has a `_meta`; returns the written event
    /// and the arena bytes used.
    fn merged_into(event: &str, log: MetaLog<'_>) -> (String, usize) {
        let bump = Bump::new();
        let mut root = super::super::json::parse(event, &bump, 16).unwrap();
        log.merge_into(&mut root, &bump);
        let mut out = Vec::new();
        super::super::json::write(&mut out, &root);
        (String::from_utf8(out).unwrap(), bump.allocated_bytes())
    }

    #[test]
    fn entries_merge_into_an_incoming_meta_in_place() {
        let mut log = MetaLog::default();
        let e = log.entry(vec![key("user"), key("email")]);
        e.rem.push(remark("@email"));
        e.len = Some(6);
        log.entry(vec![key("extra"), MetaSeg::Index(2)])
            .rem
            .push(remark("r2"));
        let (out, _) = merged_into(
            r#"{"_meta":{"user":{"email":{"":{"err":["invalid_data"],"len":9}}},"x":1}}"#,
            log,
        );
        // Existing keys keep their place and values (an earlier `len` wins); remarks go
        // first in a value's object; new paths are added after the existing keys.
        assert_eq!(
            out,
            concat!(
                r#"{"_meta":{"user":{"email":{"":{"rem":[["@email","s",0,3]],"#,
                r#""err":["invalid_data"],"len":9}}},"x":1,"#,
                r#""extra":{"2":{"":{"rem":[["r2","s",0,3]]}}}}}"#
            )
        );
    }

    #[test]
    fn many_changes_under_one_incoming_meta_object_stay_linear() {
        let keys: Vec<String> = (0..5_000).map(|i| format!("k{i}")).collect();
        let mut log = MetaLog::default();
        for k in &keys {
            log.entry(vec![key("extra"), key(k)]).rem.push(remark("r"));
        }
        let (out, arena) = merged_into(r#"{"_meta":{"extra":{}}}"#, log);
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        let extra = json["_meta"]["extra"].as_object().unwrap();
        assert_eq!(extra.len(), keys.len());
        assert_eq!(extra["k4999"][""]["rem"][0][0], "r");
        // Each new key rebuilding its object's slice would take about 600 MB here.
        assert!(arena < 8 << 20, "{arena} arena bytes");
    }

    #[test]
    fn renamed_and_split_off_paths_keep_their_segments() {
        let mut log = MetaLog::default();
        log.entry(vec![key("user"), key("ip_address")])
            .rem
            .push(remark("a"));
        log.entry(vec![key("extra"), key("x")])
            .rem
            .push(remark("b"));
        // The first entry's path is rewritten after the second was recorded.
        log.rename(&[key("user"), key("ip_address")], &[key("user"), key("id")]);
        log.entry([key("extra"), MetaSeg::Index(3)])
            .rem
            .push(remark("c"));
        let moved = log.split_off(1);
        assert_eq!(
            moved.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
            [
                vec![key("extra"), key("x")],
                vec![key("extra"), MetaSeg::Index(3)]
            ]
        );
        log.entry(vec![key("tags"), key("t")]).rem.push(remark("d"));
        assert_eq!(
            written(log),
            concat!(
                r#"{"_meta":{"tags":{"t":{"":{"rem":[["d","s",0,3]]}}},"#,
                r#""user":{"id":{"":{"rem":[["a","s",0,3]]}}}}}"#
            )
        );
    }

    #[test]
    fn indices_order_as_their_decimal_text() {
        let samples = [
            0,
            1,
            2,
            9,
            10,
            11,
            19,
            20,
            99,
            100,
            101,
            120,
            1000,
            usize::MAX,
        ];
        for x in samples {
            for y in samples {
                assert_eq!(
                    MetaSeg::Index(x).key_order(&MetaSeg::Index(y)),
                    x.to_string().cmp(&y.to_string()),
                    "{x} vs {y}"
                );
            }
        }
        assert!(key("b").key_order(&MetaSeg::Index(7)).is_gt());
    }

    #[test]
    fn entries_are_grouped_and_ordered_as_relay_whatever_the_recording_order() {
        // Equal keys at different addresses, recorded apart from each other.
        let user_a = String::from("user");
        let user_b = String::from("user");
        let mut log = MetaLog::default();
        let recorded = [
            (vec![key(&user_a), key("name")], "r1"),
            (vec![key("extra"), MetaSeg::Index(10)], "r2"),
            (vec![key(&user_b), key("email")], "r3"),
            (vec![key("extra"), MetaSeg::Index(2)], "r4"),
        ];
        for (path, rule) in recorded {
            log.entry(path).rem.push(remark(rule));
        }
        let e = log.entry(vec![key(&user_b), key("name")]);
        e.rem.push(remark("r5"));
        e.len = Some(9);
        log.entry(vec![MetaSeg::Key(Cow::Owned("extra".into()))])
            .rem
            .push(remark("r6"));
        assert_eq!(
            written(log),
            concat!(
                r#"{"_meta":{"extra":{"":{"rem":[["r6","s",0,3]]},"#,
                r#""10":{"":{"rem":[["r2","s",0,3]]}},"2":{"":{"rem":[["r4","s",0,3]]}}},"#,
                r#""user":{"email":{"":{"rem":[["r3","s",0,3]]}},"#,
                r#""name":{"":{"rem":[["r1","s",0,3],["r5","s",0,3]],"len":9}}}}}"#
            )
        );
    }

    /// Relay's meta tree, as a reference: nested string-keyed `BTreeMap`s; a node's
    /// remarks in recording order and its first recorded length.
    #[derive(Default)]
    struct Reference {
        rem: Vec<String>,
        len: Option<usize>,
        children: std::collections::BTreeMap<String, Reference>,
    }

    impl Reference {
        fn write(&self, out: &mut String) {
            out.push('{');
            let mut first = true;
            if !self.rem.is_empty() {
                out.push_str(&format!(r#""":{{"rem":[{}]"#, self.rem.join(",")));
                if let Some(len) = self.len {
                    out.push_str(&format!(r#","len":{len}"#));
                }
                out.push('}');
                first = false;
            }
            for (key, child) in &self.children {
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str(&format!("{key:?}:"));
                child.write(out);
            }
            out.push('}');
        }
    }

    const KEYS: [&str; 4] = ["a", "b", "user", "x"];

    /// A path segment: a key (borrowed, or owned at its own address) or an index.
    fn segment() -> impl Strategy<Value = (u8, bool, usize)> {
        (0u8..3, any::<bool>(), 0usize..25)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Written level by level, `_meta` equals Relay's tree whatever the order the
        /// entries were recorded in.
        #[test]
        fn meta_tree_matches_relays_map_order(
            entries in proptest::collection::vec(
                (
                    proptest::collection::vec(segment(), 0..4),
                    0u8..3,
                    proptest::option::of(0usize..50),
                ),
                1..24,
            )
        ) {
            let mut log = MetaLog::default();
            let mut reference = Reference::default();
            for (path, rule, len) in &entries {
                let segs: Vec<MetaSeg<'_>> = path
                    .iter()
                    .map(|&(kind, owned, n)| match (kind, owned) {
                        (0, _) => MetaSeg::Index(n),
                        (_, false) => key(KEYS[n % KEYS.len()]),
                        (_, true) => MetaSeg::Key(Cow::Owned(KEYS[n % KEYS.len()].to_string())),
                    })
                    .collect();
                let mut node = &mut reference;
                for seg in &segs {
                    let text = match seg {
                        MetaSeg::Key(k) => k.to_string(),
                        MetaSeg::Index(i) => i.to_string(),
                    };
                    node = node.children.entry(text).or_default();
                }
                let rule = format!("r{rule}");
                node.rem.push(format!(r#"["{rule}","s",0,3]"#));
                node.len = node.len.or(*len);
                let entry = log.entry(segs);
                entry.rem.push(remark(&rule));
                entry.len = *len;
            }
            let mut expected = String::from(r#"{"_meta":"#);
            reference.write(&mut expected);
            expected.push('}');
            prop_assert_eq!(written(log), expected);
        }
    }
}
