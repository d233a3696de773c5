//! Each payload of a request scrubbed with its project's rules: the event or report of a
//! store request, and an envelope's header and items by their type and the project's
//! item policy (scrubbed, forwarded as they are, or dropped and counted).

use super::*;
use crate::scrub::AttachmentKind;

/// Scrubs payloads of one request with one project's rules, recording timings and
/// redactions (in a request), or the changes made (offline: the console's playground,
/// `scrubgate test`).
pub(super) struct Scrubber<'a> {
    /// The server, for metrics and drop warnings; `None` offline.
    pub(super) state: Option<&'a AppState>,
    pub(super) limits: &'a LimitsConfig,
    pub(super) project: &'a Project,
    pub(super) options: &'a ScrubOptions,
    /// Offline: every change made, with where it was made.
    pub(super) changes: Option<&'a std::cell::RefCell<Vec<ItemChange>>>,
    /// Offline: the index of the envelope item being scrubbed (`None`: the header).
    pub(super) item_index: std::cell::Cell<Option<usize>>,
}

impl Scrubber<'_> {
    /// Scrubs one payload; returns it with its top-level `event_id`, if it is event-like
    /// and has one (or was given one by `new_id`). Timings are labelled `label`.
    pub(super) fn scrub(
        &self,
        kind: ItemKind,
        label: ItemLabel,
        payload: &[u8],
        new_id: Option<fn() -> String>,
    ) -> Result<(Bytes, Option<String>), IngestError> {
        let started = Instant::now();
        let config = &self.project.config;
        // Samples (live and shadow) need the paths and shapes of the changes: recorded for
        // one payload per project every so often, not for all.
        let sample_turn = self.state.is_some_and(|s| {
            (config.samples || config.shadow.is_some()) && s.samples.take_turn(self.project.id)
        });
        let options = ScrubOptions {
            record_paths: self.options.record_paths || (sample_turn && config.samples),
            ..*self.options
        };
        let result = match new_id {
            Some(new_id) => config
                .rules
                .scrub_assigning_event_id(kind, payload, &options, new_id),
            None => config.rules.scrub(kind, payload, &options),
        };
        if let Some(state) = self.state {
            state.metrics.observe_scrub(label, started.elapsed());
        }
        let scrubbed = result.map_err(|source| IngestError::Scrub { kind, source })?;
        self.collect_changes(label, &scrubbed.report);
        if let Some(state) = self.state {
            self.observe(state, kind, label, payload, &scrubbed, sample_turn);
        }
        Ok((Bytes::from(scrubbed.bytes), scrubbed.event_id))
    }

    /// In a request: counts the live rules' redactions and samples them (on a sample
    /// turn, with `config.scrubgate.samples`), and evaluates the shadow rules on the
    /// payload as it came (counted, sampled on a turn; nothing changed).
    fn observe(
        &self,
        state: &AppState,
        kind: ItemKind,
        label: ItemLabel,
        payload: &[u8],
        scrubbed: &crate::scrub::Scrubbed,
        sample_turn: bool,
    ) {
        let project = self.project;
        let event_id = scrubbed.event_id.as_deref();
        let live = &scrubbed.report;
        if !live.changes.is_empty() {
            state
                .metrics
                .record_redactions(&project.id_label, live, &project.rule_labels);
        }
        if sample_turn && project.config.samples {
            state
                .samples
                .record(project.id, &live.changes, false, event_id, label.as_str());
        }
        let Some(shadow) = &project.config.shadow else {
            return;
        };
        let options = ScrubOptions {
            record_paths: sample_turn,
            ..*self.options
        };
        if let Ok(report) = shadow.evaluate(kind, payload, &options) {
            state
                .metrics
                .record_shadow_matches(&project.id_label, &report, &project.shadow_labels);
            if sample_turn {
                state
                    .samples
                    .record(project.id, &report.changes, true, event_id, label.as_str());
            }
        }
    }

    /// Scrubs the envelope header and every item in place, dropping what policy drops;
    /// returns the types of the items left.
    pub(super) fn scrub_envelope(
        &self,
        envelope: &mut Envelope,
    ) -> Result<Vec<ItemType>, IngestError> {
        let limits = self.limits;
        crate::protocol::native::merge_event_payloads(envelope, limits)
            .map_err(IngestError::Upload)?;
        if envelope.has_trace() {
            let (header, _) = self.scrub(
                ItemKind::EnvelopeHeader,
                ItemLabel::Envelope,
                envelope.header(),
                None,
            )?;
            envelope.set_header(header).map_err(IngestError::Envelope)?;
        }

        let items = std::mem::take(envelope.items_mut());
        let mut kept: Vec<Item> = Vec::with_capacity(items.len());
        let mut forwarded = Vec::with_capacity(items.len());
        let mut dropped: Vec<(ItemLabel, DropReason)> = Vec::new();
        for (index, mut item) in items.into_iter().enumerate() {
            self.item_index.set(Some(index));
            let wire = item.item_type();
            let label = ItemLabel::Item(wire);
            if item_size_limit(wire, limits).is_some_and(|limit| item.payload().len() > limit) {
                return Err(IngestError::ItemTooLarge);
            }
            match item_policy(wire, &item, &self.project.config) {
                ItemPolicy::Scrub(kind) => {
                    let (scrubbed, _) = self.scrub(kind, label, item.payload(), None)?;
                    item.set_payload(scrubbed);
                    forwarded.push(wire);
                    kept.push(item);
                }
                ItemPolicy::ScrubAttachment(kind) => {
                    let scrubbed = self.scrub_attachment(kind, &item)?;
                    item.set_payload(scrubbed);
                    self.scrub_attachment_header(&mut item)?;
                    forwarded.push(wire);
                    kept.push(item);
                }
                ItemPolicy::ScrubRecording => {
                    let scrubbed = self.scrub_recording(label, item.payload())?;
                    item.set_payload(scrubbed);
                    forwarded.push(wire);
                    kept.push(item);
                }
                ItemPolicy::Forward => {
                    forwarded.push(wire);
                    kept.push(item);
                }
                ItemPolicy::Drop(reason) => dropped.push((label, reason)),
            }
        }
        // Counted only once the whole envelope is accepted: a refused envelope counts as
        // one invalid envelope, not as some dropped items.
        if let Some(state) = self.state {
            for (item_type, reason) in dropped {
                state.metrics.record_item(item_type, Outcome::DroppedItem);
                state.metrics.record_drop(item_type, reason.code);
                state.drops.dropped(self.project.id, item_type, reason.text);
            }
        }
        *envelope.items_mut() = kept;
        Ok(forwarded)
    }

    /// A replay recording: a JSON header line (`{"segment_id": N}`), then the rrweb events,
    /// zlib-compressed or not. The events are scrubbed and go back the way they came.
    fn scrub_recording(&self, label: ItemLabel, payload: &[u8]) -> Result<Bytes, IngestError> {
        const KIND: ItemKind = ItemKind::ReplayRecording;
        let invalid = || IngestError::Scrub {
            kind: KIND,
            source: crate::scrub::ScrubError::NotAnObject,
        };
        let (header, events) =
            crate::protocol::envelope::split_recording(payload).ok_or_else(invalid)?;
        let compressed = events.first() == Some(&0x78);
        let inflated;
        let json = if compressed {
            let limits = self.limits;
            let cap = limits.decoded_cap(events.len(), limits.max_replay_uncompressed_size);
            inflated = crate::body::inflate_zlib(events, cap).map_err(IngestError::Body)?;
            &inflated[..]
        } else {
            events
        };
        let (scrubbed, _) = self.scrub(KIND, label, json, None)?;
        let mut out = Vec::with_capacity(payload.len() + 64);
        out.extend_from_slice(header);
        out.push(b'\n');
        if compressed {
            out.extend_from_slice(&crate::body::zlib(&scrubbed));
        } else {
            out.extend_from_slice(&scrubbed);
        }
        Ok(Bytes::from(out))
    }

    /// An attachment's bytes scrubbed as `kind`: a view hierarchy as JSON (as text when
    /// it is not JSON), everything else in place at its length. Timed and counted by
    /// kind.
    fn scrub_attachment(&self, kind: AttachmentKind, item: &Item) -> Result<Bytes, IngestError> {
        let started = Instant::now();
        let payload = item.payload();
        let label = ItemLabel::Item(ItemType::Attachment);
        let scrubbed = if kind == AttachmentKind::ViewHierarchy {
            match self.scrub(ItemKind::ViewHierarchy, label, payload, None) {
                Ok((json, _)) => Some(json),
                Err(_) => None,
            }
        } else {
            None
        };
        let scrubbed = match scrubbed {
            Some(json) => json,
            None => {
                let filename = item.header_str("filename").unwrap_or("");
                let mut bytes = payload.to_vec();
                let rules = &self.project.config.rules;
                let kind = if kind == AttachmentKind::ViewHierarchy {
                    AttachmentKind::Text
                } else {
                    kind
                };
                let record = self.options.record_paths;
                let report = rules.scrub_attachment(kind, filename, &mut bytes, record);
                self.observe_attachment_report(label, &report);
                Bytes::from(bytes)
            }
        };
        if let Some(state) = self.state {
            state
                .metrics
                .observe_attachment(kind, payload.len(), started.elapsed());
        }
        Ok(scrubbed)
    }

    /// Offline: keeps the changes of the item being scrubbed, with where they were made.
    fn collect_changes(&self, label: ItemLabel, report: &crate::scrub::ScrubReport) {
        if let Some(changes) = self.changes {
            let item = self.item_index.get();
            changes
                .borrow_mut()
                .extend(report.changes.iter().map(|c| ItemChange {
                    item,
                    item_type: label,
                    change: c.clone(),
                }));
        }
    }

    /// An attachment's changes: counted (in a request) or collected (offline).
    fn observe_attachment_report(&self, label: ItemLabel, report: &crate::scrub::ScrubReport) {
        self.collect_changes(label, report);
        if let Some(state) = self.state {
            if !report.changes.is_empty() {
                state.metrics.record_redactions(
                    &self.project.id_label,
                    report,
                    &self.project.rule_labels,
                );
            }
        }
    }

    /// Under `coverage = "all"`, an attachment's `filename` (free text an SDK takes from
    /// the user's file) gets the project's `$string` rules.
    fn scrub_attachment_header(&self, item: &mut Item) -> Result<(), IngestError> {
        if self.project.config.rules.coverage() != Coverage::All {
            return Ok(());
        }
        let Some(filename) = item.header_str("filename") else {
            return Ok(());
        };
        let json = serde_json::json!({ "filename": filename }).to_string();
        let (scrubbed, _) = self.scrub(
            ItemKind::AttachmentHeader,
            ItemType::Attachment.into(),
            json.as_bytes(),
            None,
        )?;
        let scrubbed: serde_json::Value = serde_json::from_slice(&scrubbed)
            .map_err(|_| IngestError::Envelope(EnvelopeError::Serialize))?;
        let headers = item.headers_mut();
        match scrubbed.get("filename") {
            Some(name @ serde_json::Value::String(_)) => {
                headers.insert("filename".to_owned(), name.clone());
            }
            _ => {
                headers.remove("filename");
            }
        }
        Ok(())
    }
}

/// One change made while an envelope was scrubbed offline, and where.
#[derive(Debug, Clone)]
pub struct ItemChange {
    /// The item's position in the envelope as given; `None` for the envelope header.
    pub item: Option<usize>,
    /// The item's type.
    pub item_type: ItemLabel,
    /// The change.
    pub change: crate::scrub::Change,
}

/// Scrubs an envelope outside any request, as the proxy would (every item by its type
/// and the project's item policy), and returns the envelope to forward with every
/// change made (paths recorded). For the console's playground and `scrubgate test`;
/// nothing is counted or logged. An envelope whose every item is dropped comes back
/// with its header only.
///
/// # Errors
/// [`IngestError`] as the proxy would answer the envelope (invalid framing, an item too
/// large, a payload that cannot be scrubbed).
pub fn scrub_envelope_offline(
    project: &Project,
    body: &[u8],
    limits: &LimitsConfig,
) -> Result<(Bytes, Vec<ItemChange>), IngestError> {
    let mut envelope =
        Envelope::parse(Bytes::copy_from_slice(body)).map_err(IngestError::Envelope)?;
    let options = ScrubOptions {
        client_ip: None,
        max_depth: limits.max_json_depth,
        record_paths: true,
    };
    let changes = std::cell::RefCell::new(Vec::new());
    let scrubber = Scrubber {
        state: None,
        limits,
        project,
        options: &options,
        changes: Some(&changes),
        item_index: std::cell::Cell::new(None),
    };
    scrubber.scrub_envelope(&mut envelope)?;
    let bytes = envelope.to_bytes().map_err(IngestError::Envelope)?;
    Ok((bytes, changes.into_inner()))
}

/// Why an item is dropped: a short code (the `reason` label of
/// `scrubgate_items_dropped_total`) and the text of the warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DropReason {
    code: &'static str,
    text: &'static str,
}

impl DropReason {
    /// An item type scrubgate does not scrub: forwarded under `forwardUnknownItems`.
    const fn unscrubbed(code: &'static str, text: &'static str) -> Self {
        DropReason { code, text }
    }

    /// Dropped by the project's attachment policy, whatever `forwardUnknownItems` says.
    fn is_attachment_policy(self) -> bool {
        self == ATTACHMENTS_DROPPED || self == BINARY_ATTACHMENTS_DROPPED
    }
}

/// The project drops attachments (`attachments = "drop"`).
const ATTACHMENTS_DROPPED: DropReason = DropReason {
    code: "attachments_policy",
    text: "the project drops attachments",
};

/// The reason for dropping an image or other binary attachment under
/// `attachments = "scrubbed_only"`.
const BINARY_ATTACHMENTS_DROPPED: DropReason = DropReason {
    code: "binary_attachment",
    text: "images and other binary attachments are not scrubbed (attachments = \"scrubbed_only\")",
};

/// An attachment item's kind, by its headers and first bytes.
fn attachment_kind(item: &Item) -> AttachmentKind {
    AttachmentKind::classify(
        item.header_str("attachment_type"),
        item.header_str("content_type"),
        item.header_str("filename"),
        item.payload(),
    )
}

/// What happens to one envelope item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemPolicy {
    /// Scrubbed by the engine as this kind.
    Scrub(ItemKind),
    /// A replay recording: header line kept, rrweb events decompressed and scrubbed.
    ScrubRecording,
    /// An attachment, scrubbed as its kind.
    ScrubAttachment(AttachmentKind),
    /// Forwarded as it is (attachments by policy, unknown types when configured).
    Forward,
    /// Dropped and counted, for this reason (logged, rate-limited).
    Drop(DropReason),
}

/// The policy for an item of type `wire`: what the README's item table says. An item
/// scrubgate does not scrub is dropped, unless the project forwards such items
/// unscrubbed (`forwardUnknownItems`).
/// The most bytes an item of this type may hold, as Relay's per-type limits: events and
/// other event-like payloads `limits.max_event_size`; attachments, profiles, replay
/// recordings, record containers, check-ins and client reports their own
/// `limits.max_*_size`. Types that are dropped unread have no limit of their own (the
/// envelope's applies). Checked as the envelope inflates
/// ([`ItemSizeScan`](crate::protocol::item_scan::ItemSizeScan)) and again on the parsed
/// items.
pub(super) fn item_size_limit(item_type: ItemType, limits: &LimitsConfig) -> Option<usize> {
    match item_type {
        ItemType::Event
        | ItemType::Transaction
        | ItemType::Security
        | ItemType::RawSecurity
        | ItemType::Feedback
        | ItemType::UserReport
        | ItemType::Session
        | ItemType::Sessions
        | ItemType::ReplayEvent => Some(limits.max_event_size),
        ItemType::Attachment => Some(limits.max_attachment_size),
        ItemType::Profile | ItemType::ProfileChunk => Some(limits.max_profile_size),
        ItemType::ReplayRecording => Some(limits.max_replay_compressed_size),
        ItemType::Span
        | ItemType::OtelSpan
        | ItemType::Log
        | ItemType::OtelLog
        | ItemType::TraceMetric => Some(limits.max_container_size),
        ItemType::CheckIn => Some(limits.max_check_in_size),
        ItemType::ClientReport => Some(limits.max_client_reports_size),
        ItemType::ReplayVideo
        | ItemType::Statsd
        | ItemType::MetricBuckets
        | ItemType::Nel
        | ItemType::FormData
        | ItemType::UnrealReport
        | ItemType::Unknown => None,
    }
}

fn item_policy(wire: ItemType, item: &Item, project: &ProjectConfig) -> ItemPolicy {
    match unscrubbed_policy(wire, item, project) {
        ItemPolicy::Drop(reason)
            if project.forward_unknown_items && !reason.is_attachment_policy() =>
        {
            ItemPolicy::Forward
        }
        policy => policy,
    }
}

/// [`item_policy`] before `forwardUnknownItems`.
fn unscrubbed_policy(wire: ItemType, item: &Item, project: &ProjectConfig) -> ItemPolicy {
    match wire {
        ItemType::Event => ItemPolicy::Scrub(ItemKind::Event),
        ItemType::Transaction => ItemPolicy::Scrub(ItemKind::Transaction),
        // A raw report is what the security endpoint receives; scrubbed the same way.
        ItemType::Security | ItemType::RawSecurity => ItemPolicy::Scrub(ItemKind::Security),
        ItemType::Feedback => ItemPolicy::Scrub(ItemKind::Feedback),
        ItemType::UserReport => ItemPolicy::Scrub(ItemKind::UserReport),
        ItemType::Session => ItemPolicy::Scrub(ItemKind::Session),
        ItemType::Sessions => ItemPolicy::Scrub(ItemKind::Sessions),
        ItemType::Span => ItemPolicy::Scrub(ItemKind::Span),
        ItemType::Log => ItemPolicy::Scrub(ItemKind::Log),
        ItemType::TraceMetric => ItemPolicy::Scrub(ItemKind::TraceMetric),
        ItemType::OtelSpan | ItemType::OtelLog => ItemPolicy::Scrub(ItemKind::Otel),
        ItemType::Profile | ItemType::ProfileChunk => ItemPolicy::Scrub(ItemKind::Profile),
        ItemType::ReplayEvent => ItemPolicy::Scrub(ItemKind::ReplayEvent),
        ItemType::CheckIn => ItemPolicy::Scrub(ItemKind::CheckIn),
        ItemType::ClientReport => ItemPolicy::Scrub(ItemKind::ClientReport),
        ItemType::Attachment => match (project.attachments, attachment_kind(item)) {
            // A project that drops attachments drops every one, whatever
            // `forwardUnknownItems` says.
            (AttachmentPolicy::Drop, _) => ItemPolicy::Drop(ATTACHMENTS_DROPPED),
            (AttachmentPolicy::ScrubbedOnly, AttachmentKind::Binary) => {
                ItemPolicy::Drop(BINARY_ATTACHMENTS_DROPPED)
            }
            (_, kind) => ItemPolicy::ScrubAttachment(kind),
        },
        ItemType::ReplayRecording => ItemPolicy::ScrubRecording,
        ItemType::ReplayVideo => ItemPolicy::Drop(DropReason::unscrubbed(
            "replay_video",
            "replay videos (msgpack with video frames) are not scrubbed",
        )),
        ItemType::Statsd | ItemType::MetricBuckets => ItemPolicy::Drop(DropReason::unscrubbed(
            "legacy_metrics",
            "legacy metrics (names and tags can carry personal data) are not scrubbed",
        )),
        ItemType::Nel | ItemType::FormData | ItemType::UnrealReport => ItemPolicy::Drop(
            DropReason::unscrubbed("not_scrubbed", "this item type is not scrubbed"),
        ),
        ItemType::Unknown => {
            ItemPolicy::Drop(DropReason::unscrubbed("unknown_type", "unknown item type"))
        }
    }
}
