//! Selectors: which fields a rule applies to (`$string`, `extra.**`, `$http.headers.x-token`,
//! `$user.email || $user.ip_address`, `!$error.value`, ...), with Relay's grammar and
//! matching semantics.

use std::fmt;

use super::schema::{Pii, Types, ValueType};

/// Why a selector does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// Syntax error at a byte offset.
    #[error("syntax error at offset {offset}: {reason}")]
    Syntax {
        /// Byte offset in the selector.
        offset: usize,
        /// What was expected.
        reason: &'static str,
    },
    /// `**` appears twice in one path.
    #[error("deep wildcard used more than once")]
    DeepWildcardTwice,
    /// A lone `*` selector.
    #[error("wildcard must be part of a path")]
    LoneWildcard,
    /// `$name` with an unknown type name.
    #[error("unknown value type ${0}")]
    UnknownType(String),
}

/// One item of a selector path.
///
/// The derived order is Relay's (`SelectorPathItem`): types in the order Relay declares
/// them, then indexes, keys (by their text as written), `*` and `**`. Applications are
/// applied in this order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathItem {
    /// `$type`
    Type(ValueType),
    /// An array index.
    Index(usize),
    /// A key. Keys match case-insensitively, by `lower`; `raw` (as written) orders them.
    Key {
        /// The key as written in the selector.
        raw: String,
        /// The key lowercased, for matching.
        lower: String,
    },
    /// `*`: exactly one level.
    Wildcard,
    /// `**`: one or more levels.
    DeepWildcard,
}

/// A parsed selector.
///
/// The derived order is Relay's (`SelectorSpec`): `&&`, `||`, `!`, then paths, each by its
/// parts in turn.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Selector {
    /// All must match.
    And(Vec<Selector>),
    /// Any must match.
    Or(Vec<Selector>),
    /// Must not match.
    Not(Box<Selector>),
    /// A path, matched as a suffix of the field's path.
    Path(Vec<PathItem>),
}

/// One entered level of the path of the value being scrubbed.
#[derive(Debug, Clone, Copy)]
pub struct Step<'p> {
    /// The key this level was entered by (canonical name).
    pub key: Option<&'p str>,
    /// The array index this level was entered by.
    pub index: Option<usize>,
    /// The types of the value at this level.
    pub types: Types,
}

impl PathItem {
    /// A key item for `raw`, as written.
    pub fn key(raw: String) -> PathItem {
        PathItem::Key {
            lower: raw.to_lowercase(),
            raw,
        }
    }

    fn matches(&self, pii: Pii, i: usize, step: &Step<'_>) -> bool {
        match (self, pii) {
            (_, Pii::False) => false,
            (PathItem::Wildcard, _) => true,
            (PathItem::DeepWildcard, Pii::True) => true,
            (PathItem::DeepWildcard, Pii::Maybe) => false,
            (PathItem::Type(ty), Pii::True) => step.types.contains(*ty),
            (PathItem::Type(ty), Pii::Maybe) => {
                step.types.contains(*ty) && !ty.is_basic() && i == 0
            }
            (PathItem::Index(idx), _) => step.index == Some(*idx),
            (PathItem::Key { lower, .. }, _) => step.key.is_some_and(|k| key_eq(k, lower)),
        }
    }
}

/// Case-insensitive key comparison; `lower` is already lowercase.
fn key_eq(key: &str, lower: &str) -> bool {
    if key.is_ascii() {
        key.len() == lower.len() && key.eq_ignore_ascii_case(lower)
    } else {
        key.to_lowercase() == lower
    }
}

impl Selector {
    /// Parses a selector, including the legacy whole-string aliases
    /// (`freeform`, `email`, `sensitive`, `text` = `$string`; `databag`, `container` = `$object`).
    ///
    /// # Errors
    /// A [`SelectorError`] describing the first problem.
    pub fn parse(s: &str) -> Result<Selector, SelectorError> {
        match s {
            "freeform" | "email" | "sensitive" | "text" => {
                return Ok(Selector::Path(vec![PathItem::Type(ValueType::String)]))
            }
            "databag" | "container" => {
                return Ok(Selector::Path(vec![PathItem::Type(ValueType::Object)]))
            }
            _ => {}
        }
        let mut p = SelParser {
            s: s.as_bytes(),
            src: s,
            pos: 0,
            depth: 0,
        };
        p.ws();
        let sel = p.or()?;
        p.ws();
        if p.pos != p.s.len() {
            return Err(p.err("unexpected character"));
        }
        Ok(sel)
    }

    /// Whether any path item is an array index.
    pub fn names_index(&self) -> bool {
        match self {
            Selector::And(xs) | Selector::Or(xs) => xs.iter().any(Selector::names_index),
            Selector::Not(x) => x.names_index(),
            Selector::Path(items) => items.iter().any(|i| matches!(i, PathItem::Index(_))),
        }
    }

    /// Whether the selector matches the path `steps` (root first) of a value whose
    /// pii attribute is `pii`.
    pub fn matches(&self, pii: Pii, steps: &[Step<'_>]) -> bool {
        if pii == Pii::False {
            return false;
        }
        match self {
            Selector::And(xs) => xs.iter().all(|x| x.matches(pii, steps)),
            Selector::Or(xs) => xs.iter().any(|x| x.matches(pii, steps)),
            Selector::Not(x) => !x.matches(pii, steps),
            Selector::Path(items) => path_matches(items, pii, steps),
        }
    }
}

fn path_matches(items: &[PathItem], pii: Pii, steps: &[Step<'_>]) -> bool {
    if items.len() > steps.len() {
        return false;
    }
    // Walk from the leaf towards the root, pairing steps with items from the end.
    let mut consumed = 0;
    let mut deep_at = None;
    for (k, (i, item)) in items.iter().enumerate().rev().enumerate() {
        let step = &steps[steps.len() - 1 - k];
        if !item.matches(pii, i, step) {
            return false;
        }
        consumed = k + 1;
        if *item == PathItem::DeepWildcard {
            deep_at = Some(i);
            break;
        }
    }
    let Some(deep_at) = deep_at else {
        return true;
    };
    // Slow path: the items before `**` must match a run of the remaining steps,
    // starting at the first step (from the root) that matches the first item.
    let remaining = &steps[..steps.len() - consumed];
    let prefix = &items[..deep_at];
    let Some(first) = prefix.first() else {
        return !remaining.is_empty();
    };
    let Some(start) = remaining.iter().position(|s| first.matches(pii, 0, s)) else {
        return false;
    };
    let rest_steps = &remaining[start + 1..];
    let rest_items = &prefix[1..];
    if rest_items.len() > rest_steps.len() {
        return false;
    }
    rest_items
        .iter()
        .zip(rest_steps)
        .enumerate()
        .all(|(k, (item, step))| item.matches(pii, k + 1, step))
}

/// Deepest nesting of `(` and `!` a selector may have: the parser, matching and dropping
/// all recurse over it, and no real selector nests more than a few levels.
const MAX_NESTING: usize = 32;

struct SelParser<'a> {
    s: &'a [u8],
    src: &'a str,
    pos: usize,
    /// `(` and `!` levels entered.
    depth: usize,
}

impl SelParser<'_> {
    fn err(&self, reason: &'static str) -> SelectorError {
        SelectorError::Syntax {
            offset: self.pos,
            reason,
        }
    }

    /// Enters one more level of `(` or `!`.
    fn nest(&mut self) -> Result<(), SelectorError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.err("nested too deeply (at most 32 levels of '(' and '!')"));
        }
        Ok(())
    }

    fn ws(&mut self) {
        while self.s.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
            self.pos += 1;
        }
    }

    fn or(&mut self) -> Result<Selector, SelectorError> {
        let mut xs = vec![self.and()?];
        loop {
            self.ws();
            if self.s.get(self.pos) == Some(&b'|') {
                self.pos += 1;
                if self.s.get(self.pos) == Some(&b'|') {
                    self.pos += 1;
                }
                self.ws();
                xs.push(self.and()?);
            } else {
                break;
            }
        }
        Ok(if xs.len() == 1 {
            xs.remove(0)
        } else {
            Selector::Or(xs)
        })
    }

    fn and(&mut self) -> Result<Selector, SelectorError> {
        let mut xs = vec![self.not()?];
        loop {
            self.ws();
            if self.s.get(self.pos) == Some(&b'&') {
                self.pos += 1;
                if self.s.get(self.pos) == Some(&b'&') {
                    self.pos += 1;
                }
                self.ws();
                xs.push(self.not()?);
            } else {
                break;
            }
        }
        Ok(if xs.len() == 1 {
            xs.remove(0)
        } else {
            Selector::And(xs)
        })
    }

    fn not(&mut self) -> Result<Selector, SelectorError> {
        self.ws();
        match self.s.get(self.pos) {
            Some(b'!' | b'~') => {
                self.pos += 1;
                self.ws();
                self.nest()?;
                let inner = self.not()?;
                self.depth -= 1;
                Ok(Selector::Not(Box::new(inner)))
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Selector, SelectorError> {
        if self.s.get(self.pos) == Some(&b'(') {
            self.pos += 1;
            self.ws();
            self.nest()?;
            let inner = self.or()?;
            self.depth -= 1;
            self.ws();
            if self.s.get(self.pos) != Some(&b')') {
                return Err(self.err("expected ')'"));
            }
            self.pos += 1;
            return Ok(inner);
        }
        self.path()
    }

    fn path(&mut self) -> Result<Selector, SelectorError> {
        let mut items = vec![self.item()?];
        while self.s.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            items.push(self.item()?);
        }
        if items
            .iter()
            .filter(|i| **i == PathItem::DeepWildcard)
            .count()
            > 1
        {
            return Err(SelectorError::DeepWildcardTwice);
        }
        if items == [PathItem::Wildcard] {
            return Err(SelectorError::LoneWildcard);
        }
        Ok(Selector::Path(items))
    }

    fn item(&mut self) -> Result<PathItem, SelectorError> {
        let start = self.pos;
        match self.s.get(self.pos) {
            Some(b'$') => {
                self.pos += 1;
                let name_start = self.pos;
                while self
                    .s
                    .get(self.pos)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
                {
                    self.pos += 1;
                }
                let name = &self.src[name_start..self.pos];
                if name.is_empty() {
                    return Err(self.err("expected a type name after '$'"));
                }
                ValueType::from_name(name)
                    .map(PathItem::Type)
                    .ok_or_else(|| SelectorError::UnknownType(name.to_string()))
            }
            Some(b'*') => {
                self.pos += 1;
                if self.s.get(self.pos) == Some(&b'*') {
                    self.pos += 1;
                    Ok(PathItem::DeepWildcard)
                } else {
                    Ok(PathItem::Wildcard)
                }
            }
            Some(b'\'') => {
                self.pos += 1;
                let mut key = String::new();
                loop {
                    match self.s.get(self.pos) {
                        None => return Err(self.err("unterminated quoted key")),
                        Some(b'\'') if self.s.get(self.pos + 1) == Some(&b'\'') => {
                            key.push('\'');
                            self.pos += 2;
                        }
                        Some(b'\'') => {
                            self.pos += 1;
                            break;
                        }
                        Some(_) => {
                            let ch = self.src[self.pos..].chars().next().unwrap_or('\0');
                            key.push(ch);
                            self.pos += ch.len_utf8();
                        }
                    }
                }
                Ok(PathItem::key(key))
            }
            Some(b'0'..=b'9') => {
                while self.s.get(self.pos).is_some_and(u8::is_ascii_digit) {
                    self.pos += 1;
                }
                self.src[start..self.pos]
                    .parse()
                    .map(PathItem::Index)
                    .map_err(|_| self.err("invalid index"))
            }
            Some(b) if b.is_ascii_alphabetic() || *b == b'_' => {
                while self
                    .s
                    .get(self.pos)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
                {
                    self.pos += 1;
                }
                Ok(PathItem::key(self.src[start..self.pos].to_string()))
            }
            _ => Err(self.err("expected a path item")),
        }
    }
}

impl fmt::Display for PathItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathItem::Type(t) => write!(f, "${t:?}"),
            PathItem::Index(i) => write!(f, "{i}"),
            PathItem::Key { lower, .. } => write!(f, "{lower}"),
            PathItem::Wildcard => f.write_str("*"),
            PathItem::DeepWildcard => f.write_str("**"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(key: &'static str, types: &[ValueType]) -> Step<'static> {
        let mut t = Types::NONE;
        for ty in types {
            t = t.with(*ty);
        }
        Step {
            key: Some(key),
            index: None,
            types: t,
        }
    }

    fn idx(i: usize, types: &[ValueType]) -> Step<'static> {
        let mut s = step("", types);
        s.key = None;
        s.index = Some(i);
        s
    }

    use ValueType as T;

    #[test]
    fn nesting_is_bounded() {
        let nested = |n: usize, open: &str, close: &str| {
            format!("{}$string{}", open.repeat(n), close.repeat(n))
        };
        assert!(Selector::parse(&nested(32, "(", ")")).is_ok());
        assert!(Selector::parse(&nested(32, "!", "")).is_ok());
        for deep in [
            nested(33, "(", ")"),
            nested(33, "!", ""),
            nested(20_000, "(", ")"),
        ] {
            match Selector::parse(&deep) {
                Err(SelectorError::Syntax { reason, .. }) => assert!(reason.contains("deeply")),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn parse_table() {
        let ok = [
            "$string",
            "extra.foo",
            "extra.'foo.bar'",
            "extra.'it''s'",
            "$http.headers.x-forwarded-for",
            "**",
            "extra.**",
            "$frame.vars.*",
            "exception.values.0.value",
            "$string && !$error.value",
            "$string & ~$error.value",
            "($string || $number) && !(debug_meta.** | $frame.filename)",
            "  $user.email  ||  $user.ip_address ",
            "freeform",
            "databag",
            "$span.data.'http.query'",
        ];
        for s in ok {
            Selector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        let bad = [
            ("", "empty"),
            ("*", "lone wildcard"),
            ("**.foo.**", "two deep wildcards"),
            ("$nosuchtype", "unknown type"),
            ("extra.", "dangling dot"),
            ("($string", "unclosed paren"),
            ("extra.'foo", "unterminated quote"),
            ("$string &&", "dangling operator"),
            ("extra..foo", "empty item"),
            ("extra foo", "space in path"),
        ];
        for (s, why) in bad {
            assert!(Selector::parse(s).is_err(), "{why}: {s:?} parsed");
        }
        assert_eq!(
            Selector::parse("*").unwrap_err(),
            SelectorError::LoneWildcard
        );
        assert_eq!(
            Selector::parse("**.a.**").unwrap_err(),
            SelectorError::DeepWildcardTwice
        );
    }

    #[test]
    fn precedence_not_and_or() {
        let s = Selector::parse("a || b && !c").unwrap();
        assert_eq!(
            s,
            Selector::Or(vec![
                Selector::Path(vec![PathItem::key("a".into())]),
                Selector::And(vec![
                    Selector::Path(vec![PathItem::key("b".into())]),
                    Selector::Not(Box::new(Selector::Path(vec![PathItem::key("c".into())]))),
                ]),
            ])
        );
    }

    fn m(sel: &str, pii: Pii, steps: &[Step<'_>]) -> bool {
        Selector::parse(sel).unwrap().matches(pii, steps)
    }

    #[test]
    fn match_table() {
        let user_email = [step("user", &[T::User]), step("email", &[T::String])];
        assert!(m("$string", Pii::True, &user_email));
        assert!(m("$user.email", Pii::True, &user_email));
        assert!(m("user.EMAIL", Pii::True, &user_email));
        assert!(m("email", Pii::True, &user_email), "suffix match");
        assert!(m("**", Pii::True, &user_email));
        assert!(m("$user.*", Pii::True, &user_email));
        assert!(!m("$http.email", Pii::True, &user_email));
        assert!(
            !m("$string", Pii::False, &user_email),
            "pii false never matches"
        );
        assert!(!m("!$number", Pii::False, &user_email), "not on pii false");

        // pii maybe: tags reached by name, not by $string or **.
        let tag = [step("tags", &[T::Object]), step("foo", &[T::String])];
        assert!(!m("$string", Pii::Maybe, &tag));
        assert!(!m("**", Pii::Maybe, &tag));
        assert!(!m("tags.**", Pii::Maybe, &tag));
        assert!(m("tags.foo", Pii::Maybe, &tag));
        assert!(m("tags.*", Pii::Maybe, &tag));
        assert!(m("foo", Pii::Maybe, &tag));

        // $type in first position reaches maybe fields.
        let url = [step("request", &[T::Request]), step("url", &[T::String])];
        assert!(m("$http.url", Pii::Maybe, &url));
        assert!(!m("$string", Pii::Maybe, &url));
        assert!(!m("request.$string", Pii::Maybe, &url));

        // Header keys are case-insensitive.
        let xff = [
            step("request", &[T::Request]),
            step("headers", &[T::Object]),
            step("X-Forwarded-For", &[T::String]),
        ];
        assert!(m("$http.headers.x-forwarded-for", Pii::True, &xff));

        // Deep wildcard.
        let env = [
            step("request", &[T::Request]),
            step("env", &[T::Object]),
            step("SECRET_KEY", &[T::String]),
        ];
        assert!(m("$object.**", Pii::True, &env));
        assert!(m("request.**", Pii::True, &env));
        assert!(m("$http.env.**", Pii::True, &env));
        assert!(!m("$user.**", Pii::True, &env));
        assert!(
            !m("**", Pii::True, &[step("server_name", &[T::String])]),
            "** needs depth 2"
        );
        let extra_deep = [
            step("extra", &[T::Object]),
            step("a", &[T::Object]),
            step("b", &[T::Object]),
            step("c", &[T::String]),
        ];
        assert!(m("extra.**", Pii::True, &extra_deep));
        assert!(m("extra.**.c", Pii::True, &extra_deep));
        assert!(!m("extra.**.d", Pii::True, &extra_deep));
        assert!(!m("nope.**", Pii::True, &extra_deep));

        // Indices.
        let exc = [
            step("exception", &[T::Object]),
            step("values", &[T::Array]),
            idx(0, &[T::Exception]),
            step("value", &[T::String]),
        ];
        assert!(m("exception.values.0.value", Pii::True, &exc));
        assert!(!m("exception.values.1.value", Pii::True, &exc));
        assert!(m("$error.value", Pii::True, &exc));
        assert!(m("exception.values.*.value", Pii::True, &exc));

        // Boolean combinations.
        assert!(m("$string && !$error.value", Pii::True, &user_email));
        assert!(!m("$string && !$error.value", Pii::True, &exc));
        assert!(m(
            "($number || $string) && ~user.id",
            Pii::True,
            &user_email
        ));
    }
}
