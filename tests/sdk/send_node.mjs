#!/usr/bin/env node
// Sends every kind of item @sentry/node sends today, through the real SDK.
//
// usage: node send_node.mjs DSN [CAPTURE_DIR]
//
// Each item carries the planted personal data of canaries.json ("node"). The SDK's own
// Node transport (makeNodeTransport) sends them to DSN (scrubgate, in tests/it/sdk.rs);
// a wrapper around it records the status of every request and, when CAPTURE_DIR is
// given, writes each envelope as the transport serializes it to CAPTURE_DIR/NNN.envelope.
//
// Sent: a message event and an exception raised in node_checkout.mjs (source lines with
// planted data) with attachments of every kind (a receipt, a text log, a view hierarchy,
// a minidump and a PNG screenshot), a session, spans (the default traceLifecycle
// "stream": `span` items, application/vnd.sentry.items.span.v2+json), logs, trace
// metrics, cron check-ins, user feedback, and a client report (an event dropped in
// beforeSend). @sentry/node has no legacy user-report API, and profiles need the
// separate native @sentry/profiling-node package: neither is sent.
//
// Prints a JSON summary (every request's item types and status) on stdout and exits 1
// when any request got a non-2xx answer or failed, 0 otherwise.
//
// @sentry/node is resolved from ./node/node_modules (scripts/install-sdks.sh).

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { crc32, deflateSync } from "node:zlib";

import { chargeCard } from "./node_checkout.mjs";

const require = createRequire(new URL("./node/package.json", import.meta.url));
const Sentry = require("@sentry/node");
const { serializeEnvelope } = require("@sentry/core");

const canaries = JSON.parse(readFileSync(new URL("./canaries.json", import.meta.url), "utf8"));
const PLANT = Object.fromEntries(Object.entries(canaries.node).map(([key, c]) => [key, c.value]));
const RELEASE = "sdktest-js@1.0.0";
const ENVIRONMENT = "sdktest";
const FLUSH_TIMEOUT_MS = 20000;

const [dsn, captureDir] = process.argv.slice(2);
if (!dsn) {
  console.error("usage: node send_node.mjs DSN [CAPTURE_DIR]");
  process.exit(2);
}
if (captureDir) {
  mkdirSync(captureDir, { recursive: true });
}

const requests = [];

/** The SDK's Node transport, recording each request's item types and status. */
function recordingTransport(options) {
  const inner = Sentry.makeNodeTransport(options);
  return {
    ...inner,
    async send(envelope) {
      const record = { n: requests.length + 1, items: envelope[1].map(([h]) => h.type), status: null };
      requests.push(record);
      if (captureDir) {
        const body = serializeEnvelope(envelope);
        writeFileSync(join(captureDir, `${String(record.n).padStart(3, "0")}.envelope`), body);
      }
      try {
        const response = await inner.send(envelope);
        record.status = response.statusCode ?? null;
        if (record.status === null) {
          record.error = "not sent (dropped by the transport)";
        }
        return response;
      } catch (error) {
        record.error = String(error);
        throw error;
      }
    },
  };
}

/**
 * A minidump as far as scrubgate can tell (it starts with `MDMP`; the header that
 * follows does not parse, so the whole file is scrubbed as one binary) holding `email`
 * between NUL and binary bytes, once in UTF-8 and once in UTF-16LE, as a crashed
 * process's memory would.
 */
function minidumpBytes(email) {
  return Buffer.concat([
    Buffer.from("MDMP\x93\xa7\x00\x00", "latin1"),
    Buffer.from("\x00\x01\x02\x03\xff\xfe\x00\x00".repeat(4), "latin1"),
    Buffer.from([0]),
    Buffer.from(email, "utf8"),
    Buffer.from([0, 0, 0, 0]),
    Buffer.from(email, "utf16le"),
    Buffer.from([0, 0]),
    Buffer.from("\xde\xad\xbe\xef".repeat(4), "latin1"),
  ]);
}

/** A 1x1 PNG whose tEXt chunk holds `comment`, as a screenshot's metadata could. */
function pngBytes(comment) {
  const chunk = (kind, data) => {
    const body = Buffer.concat([Buffer.from(kind, "latin1"), data]);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([length, body, crc]);
  };
  return Buffer.concat([
    Buffer.from("\x89PNG\r\n\x1a\n", "latin1"),
    chunk("IHDR", Buffer.from([0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0])),
    chunk("tEXt", Buffer.from(`Comment\x00${comment}`, "latin1")),
    chunk("IDAT", deflateSync(Buffer.from([0, 0]))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

function busy(ms) {
  const deadline = performance.now() + ms;
  let n = 0;
  while (performance.now() < deadline) {
    for (let i = 0; i < 200; i++) n += i * i;
  }
  return n;
}

Sentry.init({
  dsn,
  release: RELEASE,
  environment: ENVIRONMENT,
  transport: recordingTransport,
  tracesSampleRate: 1.0,
  // traceLifecycle "stream" is the default of @sentry/node 11: spans leave as `span`
  // items (v2 containers). Said explicitly so a default change cannot hide them.
  traceLifecycle: "stream",
  beforeSend(event) {
    return event.tags?.drop === "yes" ? null : event;
  },
});

Sentry.setUser({
  id: PLANT.user_id,
  email: PLANT.user_email,
  ip_address: PLANT.user_ip,
  username: PLANT.user_username,
});
Sentry.setTag("customer", PLANT.tag_email);
Sentry.setTag("device_id", PLANT.device_tag);
Sentry.setContext("device", { device_unique_identifier: PLANT.device_udid });
Sentry.setExtra("android_id", PLANT.device_android_id);
Sentry.setExtra("modem", `modem ${PLANT.device_imei_text} attached`);
Sentry.setExtra("note", `ask ${PLANT.extra_email} card ${PLANT.extra_card}`);
Sentry.addBreadcrumb({
  category: "auth",
  message: `login by ${PLANT.crumb_message}`,
  data: { email: PLANT.crumb_email, ip: PLANT.crumb_ip },
});
// The request data a web framework integration would attach.
Sentry.addEventProcessor((event) => {
  if (event.type === undefined) {
    event.request = {
      method: "POST",
      url: `https://shop.example.com/checkout?contact=${PLANT.url_query}`,
      query_string: `contact=${PLANT.query_string}&step=2`,
      headers: {
        "Content-Type": "application/json",
        "User-Agent": "shop-client/1.0",
        "X-Forwarded-For": PLANT.xff_ip,
        Authorization: `Bearer ${PLANT.auth_token}`,
      },
      data: { email: PLANT.body_email, note: `card ${PLANT.body_card}` },
      env: { REMOTE_ADDR: PLANT.env_ip, SERVER_NAME: "shop" },
    };
  }
  return event;
});

const ids = { events: [], traces: [] };
Sentry.startSession();

ids.events.push(
  Sentry.captureMessage(`order by ${PLANT.msg_email} from ${PLANT.msg_ip} card ${PLANT.msg_card}`),
);

let errorId;
Sentry.withScope((scope) => {
  scope.addAttachment({
    filename: `receipt-${PLANT.attachment_filename}.txt`,
    data: "receipt 1001: 2 items, 12.00 EUR\n",
    contentType: "text/plain",
  });
  scope.addAttachment({
    filename: "app.log",
    data:
      "2024-05-01T10:00:00Z INFO checkout started\n" +
      `2024-05-01T10:00:01Z WARN payment retry for ${PLANT.applog_email} from ${PLANT.applog_ip}\n`,
    contentType: "text/plain",
  });
  scope.addAttachment({
    filename: "view-hierarchy.json",
    data: JSON.stringify({
      rendering_system: "UIKIT",
      windows: [{ type: "UILabel", text: PLANT.view_hierarchy_email, children: [] }],
    }),
    contentType: "application/json",
    attachmentType: "event.view_hierarchy",
  });
  scope.addAttachment({
    filename: "crash.dmp",
    data: new Uint8Array(minidumpBytes(PLANT.minidump_email)),
    contentType: "application/octet-stream",
    attachmentType: "event.minidump",
  });
  scope.addAttachment({
    filename: "screenshot.png",
    data: new Uint8Array(pngBytes(`captured for ${PLANT.screenshot_email}`)),
    contentType: "image/png",
  });
  try {
    chargeCard(12);
  } catch (error) {
    errorId = Sentry.captureException(error);
  }
});
ids.events.push(errorId);

await Sentry.startSpan({ name: `checkout ${PLANT.txn_email}`, op: "checkout" }, async (root) => {
  ids.traces.push(root.spanContext().traceId);
  Sentry.startSpan(
    {
      name: `SELECT * FROM users WHERE email='${PLANT.span_email}'`,
      op: "db.query",
      attributes: { client_ip: PLANT.span_ip },
    },
    () => busy(50),
  );
  Sentry.startSpan({ name: "POST https://psp.example.com/charge", op: "http.client" }, () => busy(30));
});

Sentry.logger.info(`log line for ${PLANT.log_body}`, { "customer.email": PLANT.log_attr });
Sentry.logger.warn("payment retry", { attempt: 2 });

Sentry.metrics.count("js.checkout", 1, { attributes: { email: PLANT.metric_attr } });
Sentry.metrics.gauge("js.queue", 3, { attributes: { email: PLANT.metric_attr } });
Sentry.metrics.distribution("js.latency", 12.5, {
  unit: "millisecond",
  attributes: { email: PLANT.metric_attr },
});

const monitorConfig = {
  schedule: { type: "crontab", value: "0 3 * * *" },
  timezone: "Europe/Vienna",
  checkinMargin: 5,
  maxRuntime: 30,
};
const checkInId = Sentry.captureCheckIn({ monitorSlug: "js-nightly", status: "in_progress" }, monitorConfig);
Sentry.captureCheckIn({ checkInId, monitorSlug: "js-nightly", status: "ok", duration: 1.5 });

// Dropped in beforeSend: the SDK reports it as lost in a client report.
Sentry.withScope((scope) => {
  scope.setTag("drop", "yes");
  Sentry.captureMessage("dropped before sending");
});

ids.events.push(
  Sentry.captureFeedback({
    message: `feedback from ${PLANT.feedback_msg_email} ip ${PLANT.feedback_msg_ip}`,
    name: "Js Feedback Name",
    email: PLANT.feedback_contact,
    associatedEventId: errorId,
  }),
);

Sentry.endSession();
await Sentry.flush(FLUSH_TIMEOUT_MS);
await Sentry.close(FLUSH_TIMEOUT_MS);

const failed = requests.filter((r) => r.status === null || r.status < 200 || r.status >= 300);
console.log(
  JSON.stringify({
    sdk: "sentry.javascript.node",
    version: Sentry.SDK_VERSION,
    requests,
    failed: failed.length,
    ids,
  }),
);
if (requests.length === 0) {
  console.error("the SDK sent nothing");
  process.exitCode = 1;
} else {
  process.exitCode = failed.length ? 1 : 0;
}
