#!/usr/bin/env python3
"""Sends every kind of item sentry-sdk (Python) sends today, through the real SDK.

usage: send_python.py DSN [CAPTURE_DIR]

Each item carries the planted personal data of canaries.json ("python"). The SDK's own
HTTP transport sends them to DSN (scrubgate, in tests/it/sdk.rs); a subclass of it
records the status of every request and, when CAPTURE_DIR is given, writes each envelope
exactly as sent (after undoing the transport's gzip) to CAPTURE_DIR/NNN.envelope.

Two phases, because the SDK traces in one of two modes per client:
  1. trace_lifecycle "static" (the default): error and message events with
     attachments (a receipt, a text log, a minidump and a PNG screenshot; the SDK has
     no attachment_type, so no view hierarchy), a transaction with child spans and its profile, logs, trace metrics,
     cron check-ins, sessions and session aggregates, a client report (an event dropped
     in before_send), user feedback and a legacy user report;
  2. trace_lifecycle "stream": span v2 containers, and a continuous profiler's
     profile chunk.
The SDK has no API for feedback or user reports: those two are built with its own
Envelope and Item classes and sent through the same client's transport.

Prints a JSON summary (every request's item types and status) on stdout and exits 1
when any request got a non-2xx answer or failed, 0 otherwise.
"""

import gzip
import json
import logging
import pathlib
import sys
import threading
import time
import uuid
import zlib

import sentry_sdk
from sentry_sdk.crons import capture_checkin
from sentry_sdk.crons.consts import MonitorStatus
from sentry_sdk.envelope import Envelope, Item, PayloadRef
from sentry_sdk.profiler.continuous_profiler import start_profiler, stop_profiler
from sentry_sdk.sessions import track_session
from sentry_sdk.transport import HttpTransport

import py_checkout

HERE = pathlib.Path(__file__).resolve().parent
PLANT = {
    key: canary["value"]
    for key, canary in json.loads((HERE / "canaries.json").read_text())[
        "python"
    ].items()
}
RELEASE = "sdktest-py@1.0.0"
ENVIRONMENT = "sdktest"
FLUSH_TIMEOUT = 20.0


class Recorder:
    """What the transport sent and how it was answered."""

    def __init__(self, capture_dir):
        self.capture_dir = capture_dir
        self.requests = []
        self.lock = threading.Lock()

    def sent(self, body, headers, envelope):
        if headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        elif headers.get("Content-Encoding"):
            body = envelope.serialize()
        with self.lock:
            number = len(self.requests) + 1
            record = {
                "n": number,
                "items": [item.type for item in envelope.items] if envelope else [],
                "status": None,
            }
            self.requests.append(record)
        if self.capture_dir is not None:
            (self.capture_dir / f"{number:03}.envelope").write_bytes(body)
        return record


RECORDER = Recorder(None)


class RecordingTransport(HttpTransport):
    """The SDK's own HTTP transport, recording each request's status."""

    def _send_request(self, body, headers, endpoint_type, envelope=None):
        record = RECORDER.sent(body, headers, envelope)
        self._record = record
        try:
            super()._send_request(body, headers, endpoint_type, envelope=envelope)
        except Exception as error:  # recorded, then handled by the SDK as usual
            record["error"] = repr(error)
            raise

    def _handle_response(self, response, envelope):
        self._record["status"] = response.status
        super()._handle_response(response=response, envelope=envelope)


def drop_marked(event, hint):
    """before_send: drops events tagged drop=yes, so the SDK reports them as lost."""
    if (event.get("tags") or {}).get("drop") == "yes":
        return None
    return event


def add_request(event, hint):
    """Event processor: the request data a web framework integration would attach."""
    event["request"] = {
        "method": "POST",
        "url": "https://shop.example.com/checkout?contact=" + PLANT["url_query"],
        "query_string": "contact=" + PLANT["query_string"] + "&step=2",
        "headers": {
            "Content-Type": "application/json",
            "User-Agent": "shop-client/1.0",
            "X-Forwarded-For": PLANT["xff_ip"],
        },
        "data": {
            "email": PLANT["body_email"],
            "note": "card " + PLANT["body_card"],
        },
        "env": {"REMOTE_ADDR": PLANT["env_ip"], "SERVER_NAME": "shop"},
    }
    return event


def init(**extra):
    sentry_sdk.init(
        dsn=DSN,
        transport=RecordingTransport,
        release=RELEASE,
        environment=ENVIRONMENT,
        send_default_pii=True,
        traces_sample_rate=1.0,
        enable_logs=True,
        before_send=drop_marked,
        **extra,
    )


def set_scope():
    scope = sentry_sdk.get_isolation_scope()
    scope.set_user(
        {
            "id": PLANT["user_id"],
            "email": PLANT["user_email"],
            "ip_address": PLANT["user_ip"],
            "username": PLANT["user_username"],
        }
    )
    scope.set_tag("customer", PLANT["tag_email"])
    scope.set_tag("device_id", PLANT["device_tag"])
    scope.set_context("device", {"device_unique_identifier": PLANT["device_udid"]})
    scope.set_extra("android_id", PLANT["device_android_id"])
    scope.set_extra("modem", "modem " + PLANT["device_imei_text"] + " attached")
    scope.set_extra("note", "ask " + PLANT["extra_email"] + " card " + PLANT["extra_card"])
    scope.add_event_processor(add_request)
    sentry_sdk.add_breadcrumb(
        category="auth",
        message="login by " + PLANT["crumb_message"],
        data={"email": PLANT["crumb_email"], "ip": PLANT["crumb_ip"]},
    )


def minidump_bytes(email):
    """A minidump as far as scrubgate can tell (it starts with `MDMP`; the header that
    follows does not parse, so the whole file is scrubbed as one binary) holding `email`
    between NUL and binary bytes, once in UTF-8 and once in UTF-16LE, as a crashed
    process's memory would."""
    return (
        b"MDMP\x93\xa7\x00\x00"
        + b"\x00\x01\x02\x03\xff\xfe\x00\x00" * 4
        + b"\x00"
        + email.encode("utf-8")
        + b"\x00\x00\x00\x00"
        + email.encode("utf-16-le")
        + b"\x00\x00"
        + b"\xde\xad\xbe\xef" * 4
    )


def png_bytes(comment):
    """A 1x1 PNG whose tEXt chunk holds `comment`, as a screenshot's metadata could."""

    def chunk(kind, data):
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", b"\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00")
        + chunk(b"tEXt", b"Comment\x00" + comment.encode("latin-1"))
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


def send_error():
    """An exception raised in py_checkout.py (source lines with planted data), with
    attachments of every kind this SDK can send: a receipt (its file name planted), a
    text log, a minidump and a PNG screenshot. The SDK's add_attachment has no
    attachment_type, so the minidump is one by its `MDMP` bytes only, and no view
    hierarchy is sent. Returns the event id."""
    with sentry_sdk.new_scope() as scope:
        scope.add_attachment(
            bytes=b"receipt 1001: 2 items, 12.00 EUR\n",
            filename="receipt-" + PLANT["attachment_filename"] + ".txt",
            content_type="text/plain",
        )
        scope.add_attachment(
            bytes=(
                "2024-05-01T10:00:00Z INFO checkout started\n"
                "2024-05-01T10:00:01Z WARN payment retry for "
                + PLANT["applog_email"]
                + " from "
                + PLANT["applog_ip"]
                + "\n"
            ).encode("utf-8"),
            filename="app.log",
            content_type="text/plain",
            add_to_transactions=False,
        )
        scope.add_attachment(
            bytes=minidump_bytes(PLANT["minidump_email"]),
            filename="crash.dmp",
            content_type="application/octet-stream",
            add_to_transactions=False,
        )
        scope.add_attachment(
            bytes=png_bytes("captured for " + PLANT["screenshot_email"]),
            filename="screenshot.png",
            content_type="image/png",
            add_to_transactions=False,
        )
        try:
            py_checkout.charge_card(12)
        except ValueError:
            return sentry_sdk.capture_exception()


def send_transaction():
    """A transaction with child spans; profiles_sample_rate=1.0 adds its profile."""
    with sentry_sdk.start_transaction(op="checkout", name="checkout " + PLANT["txn_email"]) as txn:
        with sentry_sdk.start_span(
            op="db.query",
            name="SELECT * FROM users WHERE email='" + PLANT["span_email"] + "'",
        ) as span:
            span.set_data("client.address", PLANT["span_ip"])
            busy(0.25)
        with sentry_sdk.start_span(op="http.client", name="POST https://psp.example.com/charge"):
            busy(0.15)
        return txn.trace_id


def busy(seconds):
    """Keeps the CPU busy so that the profiler takes samples."""
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        n += sum(i * i for i in range(200))
    return n


def send_feedback(associated_event_id):
    """User feedback as the SDKs send it (a `feedback` item), through the transport."""
    event_id = uuid.uuid4().hex
    feedback = {
        "event_id": event_id,
        "timestamp": time.time(),
        "platform": "python",
        "level": "info",
        "release": RELEASE,
        "environment": ENVIRONMENT,
        "contexts": {
            "feedback": {
                "contact_email": PLANT["feedback_contact"],
                "name": "Py Feedback Name",
                "message": "feedback from "
                + PLANT["feedback_msg_email"]
                + " ip "
                + PLANT["feedback_msg_ip"],
                "associated_event_id": associated_event_id,
            }
        },
        "user": {"email": PLANT["feedback_user_email"]},
    }
    envelope = Envelope(headers={"event_id": event_id})
    envelope.add_item(Item(payload=PayloadRef(json=feedback), type="feedback"))
    sentry_sdk.get_client().transport.capture_envelope(envelope)
    return event_id


def send_user_report(event_id):
    """The legacy user report (`user_report` item) for an event, through the transport."""
    report = {
        "event_id": event_id,
        "name": "Py Report Name",
        "email": PLANT["ureport_email"],
        "comments": "call me at "
        + PLANT["ureport_comment_email"]
        + " or "
        + PLANT["ureport_comment_ip"],
    }
    envelope = Envelope(headers={"event_id": event_id})
    envelope.add_item(Item(payload=PayloadRef(json=report), type="user_report"))
    sentry_sdk.get_client().transport.capture_envelope(envelope)


def static_phase():
    init(profiles_sample_rate=1.0)
    set_scope()
    scope = sentry_sdk.get_isolation_scope()
    ids = {"events": [], "traces": []}

    scope.start_session()
    ids["events"].append(
        sentry_sdk.capture_message(
            "order by "
            + PLANT["msg_email"]
            + " from "
            + PLANT["msg_ip"]
            + " card "
            + PLANT["msg_card"]
        )
    )
    error_id = send_error()
    ids["events"].append(error_id)
    ids["traces"].append(send_transaction())

    sentry_sdk.logger.info(
        "log line for " + PLANT["log_body"],
        attributes={"customer.email": PLANT["log_attr"]},
    )
    # The SDK's logging integration sends it as a log; nothing else prints it.
    shop_log = logging.getLogger("shop")
    shop_log.addHandler(logging.NullHandler())
    shop_log.warning("stdlib log for %s", PLANT["stdlog_body"])

    sentry_sdk.metrics.count("py.checkout", 1, attributes={"email": PLANT["metric_attr"]})
    sentry_sdk.metrics.gauge("py.queue", 3.0, attributes={"email": PLANT["metric_attr"]})
    sentry_sdk.metrics.distribution(
        "py.latency", 12.5, unit="millisecond", attributes={"email": PLANT["metric_attr"]}
    )

    monitor_config = {
        "schedule": {"type": "crontab", "value": "0 3 * * *"},
        "timezone": "Europe/Vienna",
        "checkin_margin": 5,
        "max_runtime": 30,
    }
    check_in_id = capture_checkin(
        monitor_slug="py-nightly",
        status=MonitorStatus.IN_PROGRESS,
        monitor_config=monitor_config,
    )
    capture_checkin(
        monitor_slug="py-nightly",
        check_in_id=check_in_id,
        status=MonitorStatus.OK,
        duration=1.5,
    )

    # Dropped in before_send: the SDK reports it as lost in a client report.
    with sentry_sdk.new_scope() as dropped:
        dropped.set_tag("drop", "yes")
        sentry_sdk.capture_message("dropped before sending")

    ids["events"].append(send_feedback(error_id))
    send_user_report(error_id)

    # A request-mode session: the SDK aggregates these into a `sessions` item.
    with track_session(sentry_sdk.get_current_scope(), session_mode="request"):
        pass
    scope.end_session()

    sentry_sdk.get_client().close(timeout=FLUSH_TIMEOUT)
    return ids


def stream_phase():
    init(
        trace_lifecycle="stream",
        profile_session_sample_rate=1.0,
        profile_lifecycle="manual",
    )
    set_scope()
    start_profiler()
    with sentry_sdk.traces.start_span(
        name="checkout " + PLANT["stream_span_email"],
        attributes={"client.address": PLANT["stream_span_ip"]},
    ) as root:
        with sentry_sdk.traces.start_span(name="reserve stock"):
            busy(0.2)
        # A worker thread named after its user, alive until the profiler stops: the
        # profile chunk's thread metadata carries the name.
        # A daemon, so that nothing it waits for can keep the script from exiting.
        profiled = threading.Event()
        worker = threading.Thread(
            target=lambda: (busy(0.3), profiled.wait(FLUSH_TIMEOUT)),
            name="export for " + PLANT["profile_thread_email"],
            daemon=True,
        )
        worker.start()
        busy(0.3)
        trace_id = root.trace_id
    try:
        stop_profiler()
    finally:
        profiled.set()
        worker.join(FLUSH_TIMEOUT)
    sentry_sdk.get_client().close(timeout=FLUSH_TIMEOUT)
    return trace_id


def main():
    global DSN, RECORDER
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    DSN = sys.argv[1]
    capture_dir = pathlib.Path(sys.argv[2]) if len(sys.argv) == 3 else None
    if capture_dir is not None:
        capture_dir.mkdir(parents=True, exist_ok=True)
    RECORDER = Recorder(capture_dir)

    ids = static_phase()
    ids["traces"].append(stream_phase())

    failed = [
        r for r in RECORDER.requests if r["status"] is None or not 200 <= r["status"] < 300
    ]
    summary = {
        "sdk": "sentry.python",
        "version": sentry_sdk.VERSION,
        "requests": RECORDER.requests,
        "failed": len(failed),
        "ids": ids,
    }
    print(json.dumps(summary))
    if not RECORDER.requests:
        print("the SDK sent nothing", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
