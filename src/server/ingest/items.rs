//! Each payload of a request scrubbed with its project's rules: the event or report of a
//! store request, and an envelope's header and items by their type and the project's
//! item policy (scrubbed, forwarded as they are, or dropped and counted).

use super::*;

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
        if let Some(changes) = self.changes {
            let item = self.item_index.get();
            changes
                .borrow_mut()
                .extend(scrubbed.report.changes.iter().map(|c| ItemChange {
                    item,
                    item_type: label,
                    change: c.clone(),
                }));
        }
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
        let mut dropped: Vec<(ItemLabel, &'static str)> = Vec::new();
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
                ItemPolicy::ScrubRecording => {
                    let scrubbed = self.scrub_recording(label, item.payload())?;
                    item.set_payload(scrubbed);
                    forwarded.push(wire);
                    kept.push(item);
                }
                ItemPolicy::Forward => {
                    if wire == ItemType::Attachment {
                        self.scrub_attachment_header(&mut item)?;
                    }
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
                state.drops.dropped(self.project.id, item_type, reason);
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
        let newline = payload
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(invalid)?;
        let (header, events) = (&payload[..newline], &payload[newline + 1..]);
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(header)
            .map_err(|_| invalid())?;
        let compressed = events.first() == Some(&0x78);
        let inflated;
        let json = if compressed {
            let limits = self.limits;
            let cap = decoded_cap(events.len(), limits.max_replay_uncompressed_size, limits);
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

/// The reason for dropping an attachment by project policy (not an item scrubgate cannot
/// scrub, so `forwardUnknownItems` does not forward it).
const ATTACHMENTS_DROPPED: &str = "the project drops attachments";

/// What happens to one envelope item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemPolicy {
    /// Scrubbed by the engine as this kind.
    Scrub(ItemKind),
    /// A replay recording: header line kept, rrweb events decompressed and scrubbed.
    ScrubRecording,
    /// Forwarded as it is (attachments by policy, unknown types when configured).
    Forward,
    /// Dropped and counted, for this reason (logged, rate-limited).
    Drop(&'static str),
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
            if project.forward_unknown_items && reason != ATTACHMENTS_DROPPED =>
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
        ItemType::Attachment => match (project.attachments, item.header_str("attachment_type")) {
            // A project that drops attachments drops every one, whatever
            // `forwardUnknownItems` says.
            (AttachmentPolicy::Drop, _) => ItemPolicy::Drop(ATTACHMENTS_DROPPED),
            // sentry-native and crashpad send the event itself this way (msgpack), and
            // Relay builds the event from it: not scrubbed here, so never forwarded.
            (_, Some("event.payload" | "event.breadcrumbs")) => {
                ItemPolicy::Drop("event data in an attachment (msgpack) is not scrubbed")
            }
            (AttachmentPolicy::Forward, _) => ItemPolicy::Forward,
        },
        ItemType::ReplayRecording => ItemPolicy::ScrubRecording,
        ItemType::ReplayVideo => {
            ItemPolicy::Drop("replay videos (msgpack with video frames) are not scrubbed")
        }
        ItemType::Statsd | ItemType::MetricBuckets => ItemPolicy::Drop(
            "legacy metrics (names and tags can carry personal data) are not scrubbed",
        ),
        ItemType::Nel | ItemType::FormData | ItemType::UnrealReport => {
            ItemPolicy::Drop("this item type is not scrubbed")
        }
        ItemType::Unknown => ItemPolicy::Drop("unknown item type"),
    }
}
