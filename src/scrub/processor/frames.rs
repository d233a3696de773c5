//! The entered levels of the walk: frames, their stack, and the path signatures, selector
//! steps and `_meta` paths computed from them.

use smallvec::SmallVec;

use super::Walker;
use crate::scrub::meta::MetaSeg;
use crate::scrub::schema::{self, NodeId, Types};
use crate::scrub::selector::Step;
use crate::scrub::sig::SigHasher;

/// One entered level of the walk.
#[derive(Debug, Clone)]
pub(super) struct Frame<'a> {
    /// Canonical key for selectors (`None` for array elements and virtual levels; `""`
    /// for the typed root of a span, log or trace metric record, see
    /// [`Walker::walk_record`]).
    pub(super) key: Option<&'a str>,
    pub(super) index: Option<usize>,
    pub(super) types: Types,
    pub(super) node: NodeId,
    /// The segment in `_meta` and reports; `None` for virtual levels.
    pub(super) meta: Option<MetaSeg<'a>>,
    /// Signature of the selector-relevant path up to here (see [`Walker::app_mask`]).
    pub(super) sig: u128,
    /// Hidden from selectors (while a `Cookie` header is scrubbed as `request.cookies`).
    pub(super) hidden: bool,
}

impl Frame<'_> {
    /// A frame before its fields are set.
    fn blank() -> Self {
        Frame {
            key: None,
            index: None,
            types: Types::NONE,
            node: schema::ROOT,
            meta: None,
            sig: 0,
            hidden: false,
        }
    }
}

/// The entered levels, root first. Slots above the top are kept for reuse, and a push
/// sets a slot's fields one by one: a frame built whole and then moved into a `Vec` went
/// through the stack, written in pieces and copied in 16-byte loads, each of which
/// waited on a failed store-to-load forward (one per value walked).
#[derive(Default)]
pub(super) struct FrameStack<'a> {
    slots: Vec<Frame<'a>>,
    len: usize,
}

impl<'a> FrameStack<'a> {
    #[inline(always)]
    pub(super) fn push(&mut self, frame: Frame<'a>) {
        if self.len == self.slots.len() {
            self.slots.push(Frame::blank());
        }
        let Frame {
            key,
            index,
            types,
            node,
            meta,
            sig,
            hidden,
        } = frame;
        let slot = &mut self.slots[self.len];
        slot.key = key;
        slot.index = index;
        slot.types = types;
        slot.node = node;
        slot.meta = meta;
        slot.sig = sig;
        slot.hidden = hidden;
        self.len += 1;
    }

    /// Removes the top frame (its slot is kept).
    pub(super) fn pop(&mut self) {
        self.len = self.len.saturating_sub(1);
    }

    pub(super) fn clear(&mut self) {
        self.len = 0;
    }
}

impl<'a> std::ops::Deref for FrameStack<'a> {
    type Target = [Frame<'a>];

    fn deref(&self) -> &[Frame<'a>] {
        &self.slots[..self.len]
    }
}

impl<'a> std::ops::DerefMut for FrameStack<'a> {
    fn deref_mut(&mut self) -> &mut [Frame<'a>] {
        &mut self.slots[..self.len]
    }
}

/// The `_meta` path of the value `frames` lead to.
pub(super) fn meta_segs<'f, 'a>(frames: &'f [Frame<'a>]) -> impl Iterator<Item = MetaSeg<'a>> + 'f {
    frames.iter().filter_map(|f| f.meta.clone())
}

impl<'r, 'a> Walker<'r, 'a> {
    /// Pushes a level that selectors see but `_meta` does not (the `values` of a legacy
    /// list, the `logentry` of a plain `message`, ...).
    pub(super) fn push_virtual(
        &mut self,
        key: Option<&'static str>,
        index: Option<usize>,
        types: Types,
        node: NodeId,
    ) {
        self.push_frame(Frame {
            key,
            index,
            types,
            node,
            meta: None,
            sig: 0,
            hidden: false,
        });
    }

    /// Pushes a frame, computing its path signature from its parent's. Inlined, as is
    /// [`Walker::enter`], into the walk's loops: the frame is no longer built in one
    /// call's stack and copied through another's (about 1.5% of the default scrubbing's
    /// instructions).
    #[inline(always)]
    pub(super) fn push_frame(&mut self, mut frame: Frame<'a>) {
        frame.sig = self.child_sig(frame.key, frame.index, frame.types, frame.node);
        self.frames.push(frame);
    }

    /// The path signature of a child of the current frame.
    fn child_sig(
        &self,
        key: Option<&str>,
        index: Option<usize>,
        types: Types,
        node: NodeId,
    ) -> u128 {
        let parent = self
            .frames
            .last()
            .map_or(0x9E37_79B9_7F4A_7C15_u128, |f| f.sig);
        if key.is_none() && index.is_none() {
            // Virtual levels are invisible to selectors.
            return parent;
        }
        let mut h = SigHasher::new(parent);
        match (key, index) {
            (Some(k), _) => {
                h.byte(1);
                h.key(k.as_bytes());
            }
            (None, Some(i)) => {
                h.byte(2);
                if self.index_sensitive {
                    h.u64(i as u64);
                }
            }
            (None, None) => {}
        }
        h.u64(u64::from(types.bits()) << 32 | u64::from(node));
        h.finish()
    }

    pub(super) fn steps(&self) -> SmallVec<[Step<'_>; 16]> {
        self.frames
            .iter()
            .filter(|f| !f.hidden && (f.key.is_some() || f.index.is_some()))
            .map(|f| Step {
                key: f.key,
                index: f.index,
                types: f.types,
            })
            .collect()
    }

    pub(super) fn leaf_key(&self) -> &str {
        self.frames.last().and_then(|f| f.key).unwrap_or("")
    }

    pub(super) fn meta_path(&self) -> Vec<MetaSeg<'a>> {
        meta_segs(&self.frames).collect()
    }

    /// The dotted path of the current value for the report; empty unless paths are
    /// recorded.
    pub(super) fn path_string(&self) -> String {
        let mut s = String::new();
        if !self.opts.record_paths {
            return s;
        }
        for seg in self.frames.iter().filter_map(|f| f.meta.as_ref()) {
            if !s.is_empty() {
                s.push('.');
            }
            match seg {
                MetaSeg::Key(k) => s.push_str(k),
                MetaSeg::Index(i) => s.push_str(&i.to_string()),
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(key: &str, hidden: bool) -> Frame<'_> {
        Frame {
            key: Some(key),
            hidden,
            ..Frame::blank()
        }
    }

    #[test]
    fn frame_stack_reuses_slots_with_every_field_fresh() {
        let mut stack = FrameStack::default();
        stack.push(frame("a", false));
        stack.push(frame("b", true));
        stack[1].sig = 7;
        assert_eq!(stack.len(), 2);
        stack.pop();
        assert_eq!(stack.len(), 1);
        // The reused slot takes all of the new frame, nothing of the old one.
        stack.push(frame("c", false));
        assert_eq!(stack[1].key, Some("c"));
        assert!(!stack[1].hidden);
        assert_eq!(stack[1].sig, 0);
        let keys: Vec<_> = stack.iter().filter_map(|f| f.key).collect();
        assert_eq!(keys, ["a", "c"]);
        stack.clear();
        assert!(stack.is_empty());
        stack.pop();
        assert!(stack.is_empty());
    }
}
