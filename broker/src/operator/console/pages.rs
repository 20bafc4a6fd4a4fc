//! The console's markup: one askama template with the layout (head, style,
//! body) written once and a branch per page (sign in, the console, not
//! allowed). Askama escapes every `{{ value }}` for HTML; nothing here is
//! marked safe, so whatever comes from the database or the request is text.

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::operator::admin::circuit_is_open;
use crate::operator::ops::{
    Backlog, DestinationInfo, DestinationStatus, OpsError, ParkedInfo, Status,
};
use crate::store::{DeadLetter, Receipt};

/// What the console page shows. Each section is its rows, or the error
/// that took their place.
pub(super) struct Console {
    pub operator: String,
    /// The operator's roles, as written in the token file.
    pub roles: String,
    /// The outcome of the last action (`?msg=`).
    pub msg: Option<String>,
    /// The session's CSRF token, only for the role `operate`: without it the
    /// page shows no buttons (the actions would be refused).
    pub csrf: Option<String>,
    /// The dead-letter filter as typed (`?reason=`, `?destination=`).
    pub reason: String,
    pub destination: String,
    pub status: Result<Status, OpsError>,
    /// Which destinations are paused; without them the table still shows.
    pub pauses: Vec<DestinationInfo>,
    pub dead_letters: Result<Vec<DeadLetter>, OpsError>,
    pub backlog: Result<Vec<Backlog>, OpsError>,
    pub parked: Result<Vec<ParkedInfo>, OpsError>,
    pub receipts: Result<Vec<Receipt>, OpsError>,
}

impl Console {
    /// "since … by …: reason" for a paused destination.
    fn paused(&self, d: &DestinationStatus) -> Option<String> {
        let p = self
            .pauses
            .iter()
            .find(|p| p.destination == d.destination)?;
        if !p.paused {
            return None;
        }
        let reason = p.pause_reason.as_deref().map(|r| format!(": {r}"));
        Some(format!(
            "since {} by {}{}",
            p.paused_at.as_deref().unwrap_or(""),
            p.paused_by.as_deref().unwrap_or(""),
            reason.unwrap_or_default()
        ))
    }

    /// A destination's circuit, `-` when not known.
    fn circuit<'d>(&self, d: &'d DestinationStatus) -> &'d str {
        d.circuit.as_deref().unwrap_or("-")
    }

    /// `bad` for a circuit known to be other than closed.
    fn circuit_class(&self, d: &DestinationStatus) -> &'static str {
        let state = self.circuit(d);
        if state != "-" && circuit_is_open(state) {
            "bad"
        } else {
            "ok"
        }
    }
}

enum Body<'a> {
    SignIn { error: Option<&'a str> },
    Console(Box<Console>),
    NotAllowed { reason: &'a str },
}

impl Body<'_> {
    fn title(&self) -> &'static str {
        match self {
            Body::SignIn { .. } => "Kurier — sign in",
            Body::Console(_) => "Kurier — operator console",
            Body::NotAllowed { .. } => "Kurier — not allowed",
        }
    }
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!doctype html><html lang=en><head><meta charset=utf-8><title>{{ body.title() }}</title>
<style>body{font:14px system-ui,sans-serif;margin:1.5em}header{display:flex;gap:1em;align-items:center}
table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left}
td form{display:inline}.bad{color:#b00}.ok{color:#070}.msg{background:#eef;padding:.5em}</style></head><body>
{%- macro button(csrf, action, id, verb, label) -%}
<form method=post action={{ action }}><input type=hidden name=csrf value="{{ csrf }}"><input type=hidden name=id value="{{ id }}"><button name=action value="{{ verb }}">{{ label }}</button></form>
{%- endmacro %}
{#- A section of the console: its rows, or the error that took their place. #}
{%- macro rows_or_error(result, prefix) %}
{%- match result %}
{%- when Ok(rows) %}{{ caller(rows) }}
{%- when Err(e) %}
<p class=bad>{{ prefix }}{{ e }}</p>
{%- endmatch %}
{%- endmacro %}
{%- match body %}
{%- when Body::SignIn with { error } %}
<h1>Kurier operator console</h1>
{%- if let Some(e) = error %}
<p class=bad role=alert>{{ e }}</p>
{%- endif %}
<form method=post action=/login><label>Operator token <input type=password name=token autocomplete=off autofocus></label> <button>Sign in</button></form>
{%- when Body::NotAllowed with { reason } %}
<p class=bad role=alert>{{ reason }}</p><p><a href=/>back</a></p>
{%- when Body::Console with (c) %}
<header><h1>Kurier</h1><span>signed in as <b>{{ c.operator }}</b> ({{ c.roles }})</span><form method=post action=/logout><button>Sign out</button></form></header>
{%- if let Some(msg) = c.msg %}
<p class=msg role=status>{{ msg }}</p>
{%- endif %}

{%- call(status) rows_or_error(c.status, "status unavailable: ") %}
<h2>Destinations</h2>
<table id=status><tr><th>destination</th><th>circuit</th><th>paused</th><th>parked</th><th>next attempt</th><th>last cause</th><th>dead letters</th><th></th></tr>
{%- for d in status.destinations %}
{%- let paused = c.paused(d) %}
<tr data-destination="{{ d.destination }}"><td>{{ d.destination }}</td><td class="{{ c.circuit_class(d) }}">{{ c.circuit(d) }}</td><td class=paused>{{ paused.as_deref().unwrap_or("no") }}</td><td>{{ d.parked }}</td><td>{{ d.next_attempt_at.as_deref().unwrap_or("") }}</td><td>{{ d.last_cause.as_deref().unwrap_or("") }}</td><td>{{ d.dead_letters }}</td><td>
{%- if let Some(csrf) = c.csrf %}
{%- if paused.is_some() %}{% call button(csrf, "/console/act", d.destination, "resume", "Resume") %}{% endcall %}
{%- else if d.configured %}{% call button(csrf, "/console/act", d.destination, "pause", "Pause") %}{% endcall %}
{%- endif %}
{%- if d.parked > 0 %}{% call button(csrf, "/console/act", d.destination, "retry-destination", "Retry all now") %}{% endcall %}{% endif %}
{%- endif -%}
</td></tr>
{%- endfor %}
</table>
{%- endcall %}

<h2>Dead letters</h2><form method=get action=/ class=filters><label>reason <input name=reason value="{{ c.reason }}"></label> <label>destination <input name=destination value="{{ c.destination }}"></label> <button>Filter</button></form>
{%- call(rows) rows_or_error(c.dead_letters, "") %}
{%- if rows.is_empty() %}
<p>No dead letters.</p>
{%- else %}
<table id=dead-letters><tr><th>#</th><th>submission</th><th>reason</th><th>detail</th><th>destination</th><th>at</th><th></th></tr>
{%- for d in rows %}
{%- let sid = d.submission_id.as_deref().unwrap_or("") %}
<tr data-submission="{{ sid }}"><td>{{ d.id }}</td><td>{{ sid }}</td><td>{{ d.reason_code }}</td><td>{{ d.reason_detail }}</td><td>{{ d.destination.as_deref().unwrap_or("") }}</td><td>{{ d.created_at }}</td><td>
{%- if let Some(csrf) = c.csrf %}
{%- if d.payload_kept %}{% call button(csrf, "/console/replay", d.id, "replay", "Replay") %}{% endcall %}{% endif %}
{%- call button(csrf, "/console/purge", d.id, "purge", "Purge") %}{% endcall %}
{%- endif -%}
</td></tr>
{%- endfor %}
</table>
{%- endif %}
{%- endcall %}

{%- call(backlog) rows_or_error(c.backlog, "") %}
<h2>Parked</h2>
<table id=parked><tr><th>destination</th><th>parked</th><th>held</th><th>next attempt</th><th>oldest received</th><th>last cause</th></tr>
{%- for b in backlog %}
<tr><td>{{ b.destination }}</td><td>{{ b.count }}</td><td>{{ b.held }}</td><td>{{ b.next_attempt_at }}</td><td>{{ b.oldest_received_at }}</td><td>{{ b.last_cause }}</td></tr>
{%- endfor %}
</table>
{%- endcall %}

{%- call(rows) rows_or_error(c.parked, "") %}
{%- if !rows.is_empty() %}
<table id=parked-submissions><tr><th>submission</th><th>destination</th><th>attempts</th><th>next attempt</th><th>held</th><th>last cause</th><th></th></tr>
{%- for p in rows %}
<tr data-submission="{{ p.submission_id }}"><td>{{ p.submission_id }}</td><td>{{ p.destination }}</td><td>{{ p.attempts }}</td><td>{{ p.next_attempt_at }}</td><td class=held>{% if p.held %}held{% else %}no{% endif %}</td><td>{{ p.last_cause }}</td><td>
{%- if let Some(csrf) = c.csrf %}
{%- call button(csrf, "/console/act", p.submission_id, "retry-now", "Retry now") %}{% endcall %}
{%- if p.held %}{% call button(csrf, "/console/act", p.submission_id, "release", "Release") %}{% endcall %}
{%- else %}{% call button(csrf, "/console/act", p.submission_id, "hold", "Hold") %}{% endcall %}
{%- endif %}
{%- call button(csrf, "/console/act", p.submission_id, "purge", "Purge") %}{% endcall %}
{%- endif -%}
</td></tr>
{%- endfor %}
</table>
{%- endif %}
{%- endcall %}

{%- call(receipts) rows_or_error(c.receipts, "") %}
<h2>Recent receipts</h2>
<table id=receipts><tr><th>submission</th><th>status</th><th>destination</th><th>attempts</th><th>reference</th><th>reason</th><th>completed</th></tr>
{%- for r in receipts %}
<tr data-submission="{{ r.submission_id }}"><td>{{ r.submission_id }}</td><td class=status>{{ r.status }}</td><td>{{ r.destination.as_deref().unwrap_or("") }}</td><td>{{ r.attempts }}</td><td>{{ r.reference.as_deref().unwrap_or("") }}</td><td>{{ r.reason_code.as_deref().unwrap_or("") }}</td><td>{{ r.completed_at }}</td></tr>
{%- endfor %}
</table>
{%- endcall %}
{%- endmatch %}
</body></html>
"#
)]
struct Page<'a> {
    body: Body<'a>,
}

/// The sign-in form, with `error` above it.
pub(super) fn sign_in(error: Option<&str>, code: StatusCode) -> Response {
    respond(code, Body::SignIn { error })
}

/// The console with its tables and (for `operate`) its buttons.
pub(super) fn console(view: Console) -> Response {
    respond(StatusCode::OK, Body::Console(Box::new(view)))
}

/// A refused action: why, and the way back.
pub(super) fn not_allowed(reason: &str) -> Response {
    respond(StatusCode::FORBIDDEN, Body::NotAllowed { reason })
}

/// Every console page is personal and current: never cached.
fn respond(code: StatusCode, body: Body<'_>) -> Response {
    let mut response = match (Page { body }).render() {
        Ok(html) => (code, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console page not rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "console page not rendered",
            )
                .into_response()
        }
    };
    if let Ok(v) = "no-store".parse() {
        response.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Markup where a portal or an authority could put text: in a
    /// submission id, a destination name, a reason detail.
    const HOSTILE: &str = r#"<script>alert("x")</script>"#;
    const ESCAPED: &str = "&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62;";

    fn dead_letter() -> DeadLetter {
        DeadLetter {
            id: 7,
            submission_id: Some(HOSTILE.into()),
            amqp_message_id: None,
            service: None,
            destination: Some(HOSTILE.into()),
            portal: None,
            reason_code: "authority_rejected".into(),
            reason_detail: format!(r#"HTTP 422 " onmouseover="{HOSTILE}"#),
            http_status: Some(422),
            received_sha256: "00".into(),
            created_at: "2026-12-01T10:00:00Z".into(),
            key_id: None,
            sealed_key: None,
            sealed_payload: None,
            expires_at: None,
            payload_kept: true,
        }
    }

    fn console(operator: &str, csrf: Option<&str>) -> String {
        let destination = DestinationStatus {
            destination: HOSTILE.into(),
            configured: true,
            parked: 1,
            next_attempt_at: None,
            last_cause: Some(HOSTILE.into()),
            dead_letters: 1,
            circuit: Some("open".into()),
            awaiting_answer: 1,
            oldest_awaiting_delivered_at: None,
        };
        let view = Console {
            operator: operator.into(),
            roles: "read, operate".into(),
            msg: Some(HOSTILE.into()),
            csrf: csrf.map(str::to_owned),
            reason: HOSTILE.into(),
            destination: String::new(),
            status: Ok(Status {
                parked: 1,
                dead_letters: 1,
                awaiting_answer: 1,
                destinations: vec![destination],
            }),
            pauses: Vec::new(),
            dead_letters: Ok(vec![dead_letter()]),
            backlog: Ok(Vec::new()),
            parked: Ok(Vec::new()),
            receipts: Ok(Vec::new()),
        };
        Page {
            body: Body::Console(Box::new(view)),
        }
        .render()
        .expect("the console page renders")
    }

    #[test]
    fn markup_in_a_dead_letter_is_shown_as_text_never_run() {
        let page = console("anna", Some("c5rf"));
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains(r#"" onmouseover"#), "{page}");
        assert!(
            page.contains(&format!(r#"<tr data-submission="{ESCAPED}"><td>7</td>"#)),
            "{page}"
        );
        assert!(
            page.contains(&format!(
                "<td>HTTP 422 &#34; onmouseover=&#34;{ESCAPED}</td><td>{ESCAPED}</td>"
            )),
            "{page}"
        );
        assert!(
            page.contains(&format!(r#"name=reason value="{ESCAPED}""#)),
            "{page}"
        );
    }

    #[test]
    fn only_an_operator_with_operate_gets_buttons() {
        let reader = console("reader", None);
        assert!(reader.contains("signed in as <b>reader</b>"), "{reader}");
        assert!(!reader.contains("name=csrf"), "{reader}");
        assert!(!reader.contains("<button name=action"), "{reader}");

        let anna = console("anna", Some("c5rf"));
        assert!(anna.contains("signed in as <b>anna</b>"), "{anna}");
        for (action, verb) in [
            ("/console/replay", "replay"),
            ("/console/purge", "purge"),
            ("/console/act", "pause"),
            ("/console/act", "retry-destination"),
        ] {
            assert!(
                anna.contains(&format!(
                    r#"<form method=post action={action}><input type=hidden name=csrf value="c5rf">"#
                )) && anna.contains(&format!(r#"value="{verb}">"#)),
                "{action} {verb}: {anna}"
            );
        }
    }

    #[test]
    fn the_sign_in_page_asks_for_a_token_and_says_what_went_wrong() {
        let page = Page {
            body: Body::SignIn {
                error: Some("Unknown token. <b>"),
            },
        }
        .render()
        .expect("the sign-in page renders");
        assert!(page.contains("<title>Kurier — sign in</title>"), "{page}");
        assert!(page.contains("<p class=bad role=alert>Unknown token. &#60;b&#62;</p>"));
        assert!(page.contains("<input type=password name=token"));
    }
}
