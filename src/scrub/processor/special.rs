//! The fields Relay treats specially: `Cookie` headers scrubbed as `request.cookies`,
//! pair lists, native paths that keep their basename, and a user IP that is no longer an
//! IP moved into `user.id`.

use std::borrow::Cow;
use std::net::IpAddr;

use super::frames::Frame;
use super::{Verdict, Walker};
use crate::scrub::json::{self, Entry, Str, Value};
use crate::scrub::meta::{MetaEntry, MetaSeg};
use crate::scrub::pairs::parse_pairs;
use crate::scrub::schema::{self, NodeId, Pii, Types, ValueType};

impl<'r, 'a> Walker<'r, 'a> {
    /// The value of a `Cookie` header in `request.headers`.
    pub(super) fn is_cookie_header(&self) -> bool {
        let is_cookie = |f: &Frame<'_>| f.key.is_some_and(|k| k.eq_ignore_ascii_case("cookie"));
        // The common case without walking the frames: the leaf is the last frame.
        if let Some(last) = self.frames.last() {
            if (last.key.is_some() || last.index.is_some()) && !is_cookie(last) {
                return false;
            }
        }
        let mut visible = self
            .frames
            .iter()
            .rev()
            .filter(|f| f.key.is_some() || f.index.is_some());
        // The leaf's key first: it rules out almost every value.
        let Some(leaf) = visible.next() else {
            return false;
        };
        if !is_cookie(leaf) {
            return false;
        }
        visible.next().is_some_and(|parent| {
            parent.key == Some("headers") && self.schema.node(parent.node).pairlist
        })
    }

    /// Relay moves the `Cookie` header into `request.cookies` before scrubbing; here the
    /// header stays a string, but its cookies are scrubbed exactly as `request.cookies.*`
    /// would be (sensitive session cookies included), and remarks point into the header.
    pub(super) fn walk_cookie_header(&mut self, s: &mut Str<'a>) -> Verdict {
        let pairs = parse_pairs(self.bump, &s.decoded(), true);
        // Hide `headers` and `Cookie`; scrub under `<http>.cookies`.
        let n = self.frames.len();
        let visible: Vec<usize> = (0..n)
            .rev()
            .filter(|&i| self.frames[i].key.is_some() || self.frames[i].index.is_some())
            .take(2)
            .collect();
        for &i in &visible {
            self.frames[i].hidden = true;
        }
        let http = self
            .frames
            .iter()
            .rev()
            .find(|f| !f.hidden && (f.key.is_some() || f.index.is_some()))
            .map_or(schema::ROOT, |f| f.node);
        let cookies = self.schema.key_child(http, "cookies");
        let mut value_path = self.meta_path();
        self.push_virtual(Some("cookies"), None, Types::of(ValueType::Object), cookies);
        let before = self.meta.len();
        self.walk_pair_array(pairs, cookies);
        self.frames.pop();
        for &i in &visible {
            self.frames[i].hidden = false;
        }
        if self.meta.len() == before {
            return Verdict::Keep;
        }
        // Rebuild the header and move the cookies' remarks onto it.
        let moved = self.meta.split_off(before);
        // The cookies' entries by pair index (recorded in walk order; the sort is stable),
        // consumed as the header is rebuilt: one pass, however many cookies changed.
        let mut by_pair: Vec<(usize, &MetaEntry)> = moved
            .iter()
            .filter_map(
                |(path, e)| match path.len().checked_sub(2).map(|at| &path[at]) {
                    Some(MetaSeg::Index(i)) => Some((*i, e)),
                    _ => None,
                },
            )
            .collect();
        by_pair.sort_by_key(|&(i, _)| i);
        let mut by_pair = by_pair.into_iter().peekable();
        let mut header = String::new();
        let mut entry = MetaEntry::default();
        for (i, pair) in pairs.iter().enumerate() {
            let Value::Array(kv) = pair else { continue };
            let (Some(Value::Str(k)), Some(v)) = (kv.first(), kv.get(1)) else {
                continue;
            };
            let value = match v {
                Value::Str(v) => v.decoded().into_owned(),
                _ => String::new(),
            };
            if !header.is_empty() {
                header.push_str("; ");
            }
            header.push_str(&k.decoded());
            header.push('=');
            let offset = header.len();
            header.push_str(&value);
            while by_pair.peek().is_some_and(|&(at, _)| at < i) {
                by_pair.next();
            }
            while let Some((_, e)) = by_pair.next_if(|&(at, _)| at == i) {
                for r in &e.rem {
                    let mut r = r.clone();
                    r.range = r.range.map(|(a, b)| (a + offset, b + offset));
                    entry.rem.push(r);
                }
            }
        }
        entry.len = Some(s.decoded().chars().count());
        let e = self.meta.entry(std::mem::take(&mut value_path));
        *e = entry;
        *s = Str::Decoded(self.bump.alloc_str(&header));
        Verdict::Keep
    }

    /// A pair list in array form: `[[key, value], ...]`, addressed by key.
    pub(super) fn walk_pair_array(&mut self, items: &mut [Value<'a>], node_id: NodeId) {
        let elem = self.schema.elem_child(node_id);
        for (i, item) in items.iter_mut().enumerate() {
            match item {
                Value::Array(pair) if pair.len() == 2 && matches!(pair[0], Value::Str(_)) => {
                    let key = match &pair[0] {
                        Value::Str(k) => k.text_in(self.bump),
                        _ => "",
                    };
                    let child = self.schema.key_child(node_id, key);
                    self.push_frame(Frame {
                        key: None,
                        index: None,
                        types: Types::NONE,
                        node: node_id,
                        meta: Some(MetaSeg::Index(i)),
                        sig: 0,
                        hidden: false,
                    });
                    self.enter(
                        Some(key),
                        None,
                        child,
                        Some(MetaSeg::Index(1)),
                        &mut pair[1],
                    );
                    self.frames.pop();
                }
                other => self.enter(None, Some(i), elem, Some(MetaSeg::Index(i)), other),
            }
        }
    }

    /// Debug image paths keep their basename; only the directory part is scrubbed.
    pub(super) fn walk_native_path(&mut self, s: &mut Str<'a>, pii: Pii) -> Verdict {
        let text = s.decoded().into_owned();
        let Some(idx) = text.rfind(['/', '\\']) else {
            return Verdict::Keep;
        };
        let (dir, base) = text.split_at(idx);
        if matches!(dir, "" | "true" | "false" | "null" | "undefined") {
            return Verdict::Keep;
        }
        let result = self.process_text(dir, pii);
        if self.take_delete() {
            *s = Str::Decoded(self.bump.alloc_str(&base[1..]));
            return Verdict::Keep;
        }
        if let Some(new_dir) = result {
            *s =
                Str::Decoded(bumpalo::format!(in self.bump, "{}{}", new_dir, base).into_bump_str());
        }
        Verdict::Keep
    }

    pub(super) fn move_ip_to_user_id(
        &mut self,
        entries: &mut &'a mut [Entry<'a>],
        before: IpState,
    ) {
        if before == IpState::Invalid {
            return;
        }
        let has_other = entries.iter().any(|(k, v)| {
            !matches!(v, Value::Null)
                && (k.eq_str("id") || k.eq_str("username") || k.eq_str("email"))
        });
        if has_other || ip_state(entries) != IpState::Invalid {
            return;
        }
        // The IP is no longer an IP (hashed or replaced): it becomes the user id, so
        // users-affected counts keep working.
        let Some(pos) = entries.iter().position(|(k, _)| k.eq_str("ip_address")) else {
            return;
        };
        entries[pos].0 = Str::Decoded("id");
        let mut from = self.meta_path();
        from.push(MetaSeg::Key(Cow::Borrowed("ip_address")));
        let mut to = self.meta_path();
        to.push(MetaSeg::Key(Cow::Borrowed("id")));
        self.meta.rename(&from, &to);
        // A null `id` that was already there is superseded.
        if let Some(i) = entries
            .iter()
            .enumerate()
            .position(|(i, (k, _))| i != pos && k.eq_str("id"))
        {
            json::remove(entries, i);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IpState {
    /// Absent, null or a valid IP.
    Valid,
    /// Present and not an IP.
    Invalid,
}

pub(super) fn ip_state(entries: &[Entry<'_>]) -> IpState {
    match entries.iter().find(|(k, _)| k.eq_str("ip_address")) {
        None | Some((_, Value::Null)) => IpState::Valid,
        Some((_, Value::Str(s))) => {
            let t = s.decoded();
            if t == "{{auto}}" || t.parse::<IpAddr>().is_ok() {
                IpState::Valid
            } else {
                IpState::Invalid
            }
        }
        Some(_) => IpState::Invalid,
    }
}
