//! Normalization that Relay applies before it scrubs, wherever it moves data into or out
//! of a field that rules reach: the URL's query and fragment, and the formatted log
//! message.

use super::json::{self, Bump, Str, Value};

/// Moves the query and fragment of `request.url` into `request.query_string` and
/// `request.fragment` when those are absent, as Relay's normalization does before it
/// scrubs: the parameters are then scrubbed one by one instead of leaving with the URL
/// (which is pii `maybe`, so `$string` rules never reach it). When `query_string` (or
/// `fragment`) is already set, the URL's own query (or fragment) is dropped: SDKs fill
/// both from the same request, and a query left in the URL would leave unscrubbed.
pub fn split_url_query<'a>(root: &mut json::Value<'a>, bump: &'a json::Bump) {
    for key in ["request", "sentry.interfaces.Http"] {
        let Some(request) = root.get_mut(key) else {
            continue;
        };
        // Per-event path: copy the URL only when it has something to move.
        let Some(url) = request
            .get("url")
            .and_then(|u| u.as_str())
            .filter(|u| u.contains(['?', '#']))
            .map(|u| u.into_owned())
        else {
            continue;
        };
        let (rest, fragment) = match url.split_once('#') {
            Some((rest, fragment)) => (rest, Some(fragment)),
            None => (url.as_str(), None),
        };
        let (base, query) = match rest.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (rest, None),
        };
        let absent = |request: &json::Value<'_>, field: &str| match request.get(field) {
            None | Some(json::Value::Null) => true,
            Some(v) => v.as_str().is_some_and(|s| s.is_empty()),
        };
        let has_query = query.is_some_and(|q| !q.is_empty());
        let has_fragment = fragment.is_some_and(|f| !f.is_empty());
        if !has_query && !has_fragment {
            continue;
        }
        let move_query = has_query && absent(request, "query_string");
        let move_fragment = has_fragment && absent(request, "fragment");
        let new_url = base.to_string();
        let Some(fields) = request.as_object_mut() else {
            continue;
        };
        let mut set = |name: &'static str, value: &str| {
            let value = json::Value::string_in(bump, value);
            match fields.iter_mut().find(|(k, _)| k.eq_str(name)) {
                Some((_, v)) => *v = value,
                None => json::push(fields, bump, (json::Str::Decoded(name), value)),
            }
        };
        if move_query {
            set("query_string", query.unwrap_or_default());
        }
        if move_fragment {
            set("fragment", fragment.unwrap_or_default());
        }
        set("url", &new_url);
    }
}

/// Gives `logentry` (or a legacy `sentry.interfaces.Message`) a `formatted` text when it
/// has only a `message` template, as Relay's normalization does: `%s` placeholders (and
/// `{0}`, `{1}`, ... ) are filled from `params`. When the result equals `message`, the
/// template is dropped, so the text lives only in `formatted` (pii `true`), not in the
/// template (pii `false`) where no rule would see it.
pub fn format_logentry<'a>(root: &mut Value<'a>, bump: &'a Bump) {
    for key in ["logentry", "sentry.interfaces.Message"] {
        let Some(entry) = root.get_mut(key) else {
            continue;
        };
        let absent = match entry.get("formatted") {
            None | Some(Value::Null) => true,
            Some(v) => v.as_str().is_some_and(|s| s.is_empty()),
        };
        if !absent {
            continue;
        }
        let Some(message) = entry
            .get("message")
            .and_then(|m| m.as_str())
            .map(|m| m.into_owned())
        else {
            continue;
        };
        let params: Vec<String> = match entry.get("params") {
            Some(Value::Array(items)) => items.iter().map(param_text).collect(),
            _ => Vec::new(),
        };
        let formatted = format_message(&message, &params);
        let Some(fields) = entry.as_object_mut() else {
            continue;
        };
        let value = Value::string_in(bump, &formatted);
        match fields.iter_mut().find(|(k, _)| k.eq_str("formatted")) {
            Some((_, v)) => *v = value,
            None => json::push(fields, bump, (Str::Decoded("formatted"), value)),
        }
        if formatted == message {
            json::retain(fields, |(k, _)| !k.eq_str("message"));
        }
    }
}

/// A parameter as Relay prints it into the message: strings as they are, anything else
/// as JSON.
fn param_text(value: &Value<'_>) -> String {
    match value.as_str() {
        Some(text) => text.into_owned(),
        None => {
            let mut out = Vec::new();
            json::write(&mut out, value);
            String::from_utf8(out).unwrap_or_default()
        }
    }
}

/// Fills `%s` (in order) and `{N}` placeholders of `template` from `params`; `%%` is a
/// literal `%`. Placeholders without a parameter stay as they are.
fn format_message(template: &str, params: &[String]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut next = 0;
    let mut rest = template;
    while let Some(i) = rest.find(['%', '{']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("%%") {
            out.push('%');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("%s") {
            match params.get(next) {
                Some(p) => out.push_str(p),
                None => out.push_str("%s"),
            }
            next += 1;
            rest = after;
        } else if let Some((index, after)) = tail
            .strip_prefix('{')
            .and_then(|t| t.split_once('}'))
            .and_then(|(n, after)| Some((n.parse::<usize>().ok()?, after)))
        {
            match params.get(index) {
                Some(p) => out.push_str(p),
                None => out.push_str(&tail[..tail.len() - after.len()]),
            }
            rest = after;
        } else {
            out.push_str(&tail[..1]);
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_formatted_from_their_params() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(format_message("a %s b %s", &p(&["x", "y"])), "a x b y");
        assert_eq!(format_message("{1} then {0}", &p(&["x", "y"])), "y then x");
        assert_eq!(format_message("100%% %s", &p(&["done"])), "100% done");
        assert_eq!(format_message("missing %s {3}", &p(&[])), "missing %s {3}");
        assert_eq!(format_message("{not a param}", &p(&["x"])), "{not a param}");
    }

    fn normalized(input: &str) -> serde_json::Value {
        let bump = Bump::new();
        let mut root = json::parse(input, &bump, 64).unwrap();
        split_url_query(&mut root, &bump);
        format_logentry(&mut root, &bump);
        let mut out = Vec::new();
        json::write(&mut out, &root);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn a_message_without_formatted_text_moves_into_formatted() {
        let out = normalized(r#"{"logentry":{"message":"mail a@example.com"}}"#);
        assert_eq!(
            out["logentry"],
            serde_json::json!({"formatted": "mail a@example.com"})
        );
        let out = normalized(r#"{"logentry":{"message":"user %s","params":["b@example.com"]}}"#);
        assert_eq!(out["logentry"]["formatted"], "user b@example.com");
        assert_eq!(out["logentry"]["message"], "user %s");
        let out = normalized(r#"{"logentry":{"message":"t","formatted":"kept"}}"#);
        assert_eq!(
            out["logentry"],
            serde_json::json!({"message": "t", "formatted": "kept"})
        );
    }

    #[test]
    fn a_url_query_leaves_the_url_even_when_query_string_is_set() {
        let out = normalized(
            r#"{"request":{"url":"https://a.example/p?email=c@example.com#frag","query_string":"email=c@example.com"}}"#,
        );
        assert_eq!(out["request"]["url"], "https://a.example/p");
        assert_eq!(out["request"]["query_string"], "email=c@example.com");
        assert_eq!(out["request"]["fragment"], "frag");
    }
}
