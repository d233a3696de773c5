//! Running the matching rules on one value: deleting a container, or redacting a string
//! and recording its remarks and changes.

use super::frames::meta_segs;
use super::memo::MASK_APPS;
use super::Walker;
use crate::scrub::builtin;
use crate::scrub::json::Str;
use crate::scrub::meta::{Remark, RemarkType};
use crate::scrub::redact::{apply_rule, ChunkedValue, KeyFacts};
use crate::scrub::rules::{RuleKind, RuleRef};
use crate::scrub::schema::{Pii, Types};
use crate::scrub::Change;

impl<'r, 'a> Walker<'r, 'a> {
    /// Rules on a non-string value: only key-based and `anything` rules act, and they
    /// can only delete. Returns true when the value must be deleted.
    pub(super) fn apply_to_container(&mut self, pii: Pii) -> bool {
        let apps = self.apps;
        let (mask, password_key) = self.leaf_facts(pii);
        if !self.any_app(mask) {
            return false;
        }
        // Most containers match only applications of value patterns, which never delete
        // a container.
        if self.apps.len() <= MASK_APPS
            && mask & self.container_apps == 0
            && !(password_key && mask & self.password_apps != 0)
        {
            return false;
        }
        let hit: Option<&RuleRef> = {
            let key = self.leaf_key();
            self.matching_apps(mask, pii)
                .flat_map(|i| apps[i].rules.iter())
                .find(|rule| match &*rule.kind {
                    RuleKind::Anything => true,
                    RuleKind::Password => password_key,
                    RuleKind::RedactPair { key: re } => re.is_match(key),
                    RuleKind::Builtin(_) | RuleKind::Regex { .. } => false,
                })
        };
        let Some(rule) = hit else {
            return false;
        };
        let origin = rule.origin.clone();
        self.meta.entry(meta_segs(&self.frames)).rem.push(Remark {
            rule: origin.clone(),
            ty: RemarkType::Removed,
            range: None,
        });
        let path = self.path_string();
        self.report.changes.push(Change {
            path,
            rule: origin.clone(),
            method: crate::scrub::Method::Remove,
            shape: None,
        });
        true
    }

    pub(super) fn take_delete(&mut self) -> bool {
        std::mem::take(&mut self.pending_delete)
    }

    /// Applies the matching rules to a string. Returns the new text when it changed;
    /// sets the pending-delete flag when a rule deletes the value.
    pub(super) fn process_string(&mut self, s: &Str<'a>, pii: Pii) -> Option<&'a str> {
        let text = s.decoded();
        if matches!(text.as_ref(), "" | "true" | "false" | "null" | "undefined") {
            return None;
        }
        self.process_text(&text, pii)
    }

    /// [`Walker::process_text`] with the leaf's types set to `types`.
    pub(super) fn process_text_typed(
        &mut self,
        text: &str,
        pii: Pii,
        types: Types,
    ) -> Option<&'a str> {
        let saved = self.frames.last().map(|f| (f.types, f.sig));
        if let Some(f) = self.frames.last_mut() {
            f.types = types;
            f.sig ^= 0x5bd1_e995_u128 << 64 | u128::from(types.bits());
        }
        let result = self.process_text(text, pii);
        if let (Some(f), Some((t, sig))) = (self.frames.last_mut(), saved) {
            f.types = t;
            f.sig = sig;
        }
        result
    }

    /// Applies the matching rules to `text`. Returns the new text (in the tree's arena)
    /// when it changed; sets the pending-delete flag when a rule deletes the value.
    pub(super) fn process_text(&mut self, text: &str, pii: Pii) -> Option<&'a str> {
        let (mask, password_key) = self.leaf_facts(pii);
        if !self.any_app(mask) {
            return None;
        }
        let mut value = ChunkedValue::new(text);
        value.record_shapes = self.opts.record_paths;
        let mut deleted_by: Option<std::sync::Arc<str>> = None;
        // One pass over the bytes feeds every built-in pattern's prefilter. Computed on
        // the original text: redactions only remove characters, so it stays conservative.
        let features = builtin::Features::scan(text);
        let key_facts = KeyFacts {
            password: password_key,
        };
        {
            let key = self.leaf_key();
            'apps: for i in self.matching_apps(mask, pii) {
                for rule in &self.apps[i].rules {
                    if apply_rule(rule, key, &key_facts, &mut value, &features).is_err() {
                        deleted_by = Some(rule.origin.clone());
                        break 'apps;
                    }
                }
            }
        }
        if !value.changed && deleted_by.is_none() {
            return None;
        }
        let (new_text, remarks, shapes) = value.join_in(self.bump);
        if deleted_by.is_none() && new_text == text {
            // Like Relay, a redaction that leaves the value as it was is not a change
            // (this keeps scrubbing idempotent: `[Filtered]` stays `[Filtered]`).
            return None;
        }
        let path_str = self.path_string();
        // A deleted value's shape is the whole value's.
        let shape = self.opts.record_paths.then(|| crate::scrub::shape_of(text));
        let original_len = text.chars().count();
        let entry = self.meta.entry(meta_segs(&self.frames));
        for (r, matched) in remarks.iter().zip(shapes) {
            self.report.changes.push(Change {
                path: path_str.clone(),
                rule: r.rule.clone(),
                method: r.ty.method(),
                shape: matched.or_else(|| shape.clone()),
            });
        }
        // A fresh entry: this value's remarks and its original length.
        entry.rem = remarks;
        entry.len = Some(original_len);
        if let Some(origin) = deleted_by {
            entry.rem.push(Remark {
                rule: origin.clone(),
                ty: RemarkType::Removed,
                range: None,
            });
            self.report.changes.push(Change {
                path: path_str,
                rule: origin.clone(),
                method: crate::scrub::Method::Remove,
                shape,
            });
            self.pending_delete = true;
            return None;
        }
        Some(new_text)
    }
}
