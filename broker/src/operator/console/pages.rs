//! The console's markup: one askama template with the layout (head, style,
//! body) written once and a branch per page (sign in, the console, not
//! allowed). Askama escapes every `{{ value }}` for HTML; the only values
//! marked safe are the charts, whose SVG `chart.rs` writes and escapes
//! itself. Whatever comes from the database or the request is text.

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::chart::{self, Chart, Series};
use super::zone::Zone;
use crate::domain::time::Timestamp;
use crate::operator::admin::circuit_is_open;
use crate::operator::history::{BUCKET_MINUTES, DestinationHour, LATENCY_SAMPLE, LastHour};
use crate::operator::ops::{
    Backlog, DestinationInfo, DestinationStatus, Lookup, OpsError, ParkedInfo, Status,
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
    /// The filter as typed (`?reason=`, `?destination=`).
    pub reason: String,
    pub destination: String,
    pub status: Result<Status, OpsError>,
    /// Which destinations are paused; without them the table still shows.
    pub pauses: Vec<DestinationInfo>,
    /// Each destination's last hour, for the charts.
    pub hour: Result<LastHour, OpsError>,
    /// The submission searched for (`?q=`).
    pub search: Option<Search>,
    /// A page of the dead letters, and how many come before it.
    pub dead_letters: Result<Vec<DeadLetter>, OpsError>,
    pub dead_from: i64,
    pub backlog: Result<Vec<Backlog>, OpsError>,
    /// A page of the parked submissions, and how many come before it.
    pub parked: Result<Vec<ParkedInfo>, OpsError>,
    pub parked_from: i64,
    pub receipts: Result<Vec<Receipt>, OpsError>,
    /// Seconds between reloads, if the operator asked for them.
    pub refresh: Option<u32>,
    pub links: Links,
    /// Where every time is shown.
    pub zone: Zone,
}

/// A submission id as typed, and what is known of it.
pub(super) struct Search {
    pub id: String,
    pub found: Result<Lookup, OpsError>,
}

/// The page's links, each with the current search, filters, zone and
/// refresh.
pub(super) struct Links {
    /// This page again (without the last action's message).
    pub refresh: String,
    /// This page's query (without `/?`), sent with each action so that the
    /// page after it shows the same search, filters and pages.
    pub back: String,
    /// This page with the automatic reload switched on, or off.
    pub auto_refresh: String,
    pub dead_letters: Pager,
    pub parked: Pager,
}

/// The previous and next page of a list, where there is one.
pub(super) struct Pager {
    pub previous: Option<String>,
    pub next: Option<String>,
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
            p.paused_at
                .as_ref()
                .map_or_else(String::new, |t| self.at(t)),
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

    /// A time of the database (UTC) in the operator's zone.
    fn at(&self, utc: &Timestamp) -> String {
        self.zone.show(&utc.to_string())
    }

    /// The search field's value.
    fn searched(&self) -> &str {
        self.search.as_ref().map_or("", |s| s.id.as_str())
    }

    /// `content` of the refresh `<meta>`: the seconds and this page's
    /// address without the last action's message.
    fn meta_refresh(&self) -> Option<String> {
        self.refresh
            .map(|s| format!("{s};url={}", self.links.refresh))
    }

    /// The x axis of the charts: each bucket's start in the operator's zone.
    fn labels(&self, hour: &LastHour) -> Vec<String> {
        hour.starts.iter().map(|t| self.zone.hh_mm(t)).collect()
    }

    /// One chart of a destination's hour: `lines` are each series' name
    /// and values.
    fn chart(
        &self,
        hour: &LastHour,
        title: &str,
        unit: &str,
        lines: &[(&str, &[Option<i64>])],
    ) -> String {
        let series: Vec<Series<'_>> = lines
            .iter()
            .map(|&(name, values)| Series { name, values })
            .collect();
        chart::svg(&Chart {
            title,
            unit,
            labels: &self.labels(hour),
            series: &series,
        })
    }

    /// Receipts per bucket: delivered and failed.
    fn rate_chart(&self, hour: &LastHour, d: &DestinationHour) -> String {
        let (delivered, failed) = (d.delivered.map(Some), d.failed.map(Some));
        let title = format!("{}: receipts per {BUCKET_MINUTES} min", d.destination);
        let lines: [(&str, &[Option<i64>]); 2] = [("delivered", &delivered), ("failed", &failed)];
        self.chart(hour, &title, "", &lines)
    }

    /// Latency from RabbitMQ to the receipt: p50 and p95 per bucket.
    fn latency_chart(&self, hour: &LastHour, d: &DestinationHour) -> String {
        let title = format!("{}: delivery latency", d.destination);
        let lines: [(&str, &[Option<i64>]); 2] = [("p50", &d.p50_ms), ("p95", &d.p95_ms)];
        self.chart(hour, &title, " ms", &lines)
    }

    /// Parked at the end of each bucket (of those parked now).
    fn parked_chart(&self, hour: &LastHour, d: &DestinationHour) -> String {
        let parked = d.parked.map(Some);
        let title = format!("{}: parked", d.destination);
        self.chart(hour, &title, "", &[("parked", &parked)])
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
{%- if let Body::Console(c) = body %}{% if let Some(content) = c.meta_refresh() %}
<meta http-equiv=refresh content="{{ content }}">
{%- endif %}{% endif %}
<style>body{font:14px system-ui,sans-serif;margin:1.5em}header,nav{display:flex;gap:1em;align-items:center;flex-wrap:wrap}
table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left}
td form{display:inline}.bad{color:#b00}.ok{color:#070}.msg{background:#eef;padding:.5em}nav.pager{margin:-1em 0 1.5em}
.chart .axis{stroke:#999;fill:none}.chart polyline{fill:none;stroke-width:1.5}.chart text{font-size:9px;fill:#555;stroke:none}
.chart .s0,.key0{stroke:#07c;fill:#07c;color:#07c}.chart .s1,.key1{stroke:#c50;fill:#c50;color:#c50}</style></head><body>
{%- macro button(csrf, action, id, verb, label) -%}
<form method=post action={{ action }}><input type=hidden name=csrf value="{{ csrf }}"><input type=hidden name=id value="{{ id }}"><input type=hidden name=back value="{{ c.links.back }}"><button name=action value="{{ verb }}">{{ label }}</button></form>
{%- endmacro %}
{#- A time of the database (UTC) in the operator's zone, the UTC value kept. #}
{%- macro at(c, utc) -%}
<time datetime="{{ utc }}" title="{{ utc }}">{{ c.at(utc) }}</time>
{%- endmacro %}
{%- macro pager(pager, from, shown, what) %}
<nav class=pager aria-label="{{ what }} pages" id="{{ what }}-pages">
{%- if let Some(p) = pager.previous %}<a rel=prev href="{{ p }}">← previous</a>{% endif %}
<span>{{ from + 1 }}–{{ from + shown }}</span>
{%- if let Some(n) = pager.next %}<a rel=next href="{{ n }}">next →</a>{% endif -%}
</nav>
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
<nav id=toolbar><form method=get action=/ role=search id=search><label>Submission <input name=q value="{{ c.searched() }}" placeholder="submission id (UUID)" size=38></label><input type=hidden name=reason value="{{ c.reason }}"><input type=hidden name=destination value="{{ c.destination }}"> <button>Find</button></form>
<a id=refresh href="{{ c.links.refresh }}">Refresh</a>
<a id=auto-refresh href="{{ c.links.auto_refresh }}">{% if c.refresh.is_some() %}Stop refreshing{% else %}Refresh every 30 s{% endif %}</a>
<form method=get action=/ id=zone><input type=hidden name=q value="{{ c.searched() }}"><input type=hidden name=reason value="{{ c.reason }}"><input type=hidden name=destination value="{{ c.destination }}"><label>Times in <input name=tz value="{{ c.zone.name() }}" list=zones size=16></label><datalist id=zones><option>Europe/Berlin<option>UTC<option>Europe/London<option>America/New_York</datalist> <button>Set</button></form></nav>
{%- if let Some(msg) = c.msg %}
<p class=msg role=status>{{ msg }}</p>
{%- endif %}

{%- if let Some(search) = c.search %}
<section id=submission><h2>Submission {{ search.id }}</h2>
{%- call(s) rows_or_error(search.found, "") %}
{%- if s.is_unknown() %}
<p id=unknown>Nothing is recorded of {{ s.submission_id }}: not received yet, or not by this broker.</p>
{%- endif %}
{%- if let Some(r) = s.receipt %}
<table id=submission-receipt><caption>Receipt</caption><tr><th>status</th><th>destination</th><th>service</th><th>attempts</th><th>reason</th><th>detail</th><th>reference</th><th>received</th><th>completed</th></tr>
<tr><td class=status>{{ r.status }}</td><td>{{ r.destination.as_deref().unwrap_or("") }}</td><td>{{ r.service.as_deref().unwrap_or("") }}</td><td class=attempts>{{ r.attempts }}</td><td class=reason>{{ r.reason_code.as_deref().unwrap_or("") }}</td><td>{{ r.reason_detail.as_deref().unwrap_or("") }}</td><td>{{ r.reference.as_deref().unwrap_or("") }}</td><td>{% call at(c, r.received_at) %}{% endcall %}</td><td>{% call at(c, r.completed_at) %}{% endcall %}</td></tr>
</table>
{%- endif %}
{%- if let Some(p) = s.parked %}
<table id=submission-parked><caption>Parked</caption><tr><th>destination</th><th>attempts</th><th>last cause</th><th>first failure</th><th>next attempt</th><th>expires</th><th>held</th><th>in flight</th></tr>
<tr><td>{{ p.destination }}</td><td>{{ p.attempts }}</td><td>{{ p.last_cause }}</td><td>{% call at(c, p.first_failure_at) %}{% endcall %}</td><td>{% call at(c, p.next_attempt_at) %}{% endcall %}</td><td>{% call at(c, p.expires_at) %}{% endcall %}</td><td>{% if p.held %}held{% else %}no{% endif %}</td><td>{% if p.in_flight %}yes{% else %}no{% endif %}</td></tr>
</table>
{%- endif %}
{%- if !s.dead_letters.is_empty() %}
<table id=submission-dead-letters><caption>Dead letters</caption><tr><th>#</th><th>reason</th><th>detail</th><th>destination</th><th>payload kept</th><th>at</th></tr>
{%- for d in s.dead_letters %}
<tr><td>{{ d.id }}</td><td class=reason>{{ d.reason_code }}</td><td>{{ d.reason_detail }}</td><td>{{ d.destination.as_deref().unwrap_or("") }}</td><td>{% if d.payload_kept %}yes{% else %}no{% endif %}</td><td>{% call at(c, d.created_at) %}{% endcall %}</td></tr>
{%- endfor %}
</table>
{%- endif %}
{%- for a in s.answers %}
<table class=submission-answer id="answer-{{ a.destination }}"><caption>The authority's answer ({{ a.transport }})</caption><tr><th>destination</th><th>answer</th><th>reason codes</th><th>answered</th><th>last asked</th></tr>
<tr><td>{{ a.destination }}</td><td class=answer>{% match a.accepted %}{% when Some(true) %}accepted{% when Some(false) %}rejected{% when None %}awaited{% endmatch %}</td><td>{{ a.reason_codes.as_deref().unwrap_or("") }}</td><td>{% if let Some(t) = a.answered_at %}{% call at(c, t) %}{% endcall %}{% endif %}</td><td>{% if let Some(t) = a.last_polled_at %}{% call at(c, t) %}{% endcall %}{% endif %}</td></tr>
</table>
{%- endfor %}
{%- endcall %}
</section>
{%- endif %}

{%- call(status) rows_or_error(c.status, "status unavailable: ") %}
<h2>Destinations</h2>
<table id=status><tr><th>destination</th><th>circuit</th><th>paused</th><th>parked</th><th>next attempt</th><th>last cause</th><th>dead letters</th><th></th></tr>
{%- for d in status.destinations %}
{%- let paused = c.paused(d) %}
<tr data-destination="{{ d.destination }}"><td>{{ d.destination }}</td><td class="{{ c.circuit_class(d) }}">{{ c.circuit(d) }}</td><td class=paused>{{ paused.as_deref().unwrap_or("no") }}</td><td>{{ d.parked }}</td><td>{% if let Some(t) = d.next_attempt_at %}{% call at(c, t) %}{% endcall %}{% endif %}</td><td>{{ d.last_cause.as_deref().unwrap_or("") }}</td><td>{{ d.dead_letters }}</td><td>
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

{%- call(hour) rows_or_error(c.hour, "charts unavailable: ") %}
<h2>Last hour</h2>
<table id=last-hour><tr><th>destination</th><th>receipts per {{ BUCKET_MINUTES }} min (<span class=key0>delivered</span>, <span class=key1>failed</span>)</th><th>latency, received → receipt (<span class=key0>p50</span>, <span class=key1>p95</span>)</th><th>parked (of those parked now)</th></tr>
{%- for d in hour.destinations %}
<tr data-destination="{{ d.destination }}"><td>{{ d.destination }}</td><td class=rate>{{ c.rate_chart(hour, d)|safe }}</td><td class=latency>{{ c.latency_chart(hour, d)|safe }}</td><td class=backlog>{{ c.parked_chart(hour, d)|safe }}</td></tr>
{%- endfor %}
</table>
{%- if hour.latency_sampled %}
<p>Latency from the newest {{ LATENCY_SAMPLE }} deliveries of the hour.</p>
{%- endif %}
{%- endcall %}

<h2>Dead letters and parked submissions</h2><form method=get action=/ class=filters id=filters><input type=hidden name=q value="{{ c.searched() }}"><label>reason <input name=reason value="{{ c.reason }}"></label> <label>destination <input name=destination value="{{ c.destination }}"></label> <button>Filter</button></form>
<h3>Dead letters</h3>
{%- call(rows) rows_or_error(c.dead_letters, "") %}
{%- if rows.is_empty() && c.dead_from == 0 %}
<p>No dead letters.</p>
{%- else %}
<table id=dead-letters><tr><th>#</th><th>submission</th><th>reason</th><th>detail</th><th>destination</th><th>at</th><th></th></tr>
{%- for d in rows %}
{%- let sid = d.submission_id.as_deref().unwrap_or("") %}
<tr data-submission="{{ sid }}"><td>{{ d.id }}</td><td>{{ sid }}</td><td>{{ d.reason_code }}</td><td>{{ d.reason_detail }}</td><td>{{ d.destination.as_deref().unwrap_or("") }}</td><td>{% call at(c, d.created_at) %}{% endcall %}</td><td>
{%- if let Some(csrf) = c.csrf %}
{%- if d.payload_kept %}{% call button(csrf, "/console/replay", d.id, "replay", "Replay") %}{% endcall %}{% endif %}
{%- call button(csrf, "/console/purge", d.id, "purge", "Purge") %}{% endcall %}
{%- endif -%}
</td></tr>
{%- endfor %}
</table>
{%- call pager(c.links.dead_letters, c.dead_from, rows.len() as i64, "dead-letters") %}{% endcall %}
{%- endif %}
{%- endcall %}

{%- call(backlog) rows_or_error(c.backlog, "") %}
<h3>Parked</h3>
<table id=parked><tr><th>destination</th><th>parked</th><th>held</th><th>next attempt</th><th>oldest received</th><th>last cause</th></tr>
{%- for b in backlog %}
<tr><td>{{ b.destination }}</td><td>{{ b.count }}</td><td>{{ b.held }}</td><td>{% call at(c, b.next_attempt_at) %}{% endcall %}</td><td>{% call at(c, b.oldest_received_at) %}{% endcall %}</td><td>{{ b.last_cause }}</td></tr>
{%- endfor %}
</table>
{%- endcall %}

{%- call(rows) rows_or_error(c.parked, "") %}
{%- if !rows.is_empty() || c.parked_from > 0 %}
<table id=parked-submissions><tr><th>submission</th><th>destination</th><th>attempts</th><th>next attempt</th><th>held</th><th>last cause</th><th></th></tr>
{%- for p in rows %}
<tr data-submission="{{ p.submission_id }}"><td>{{ p.submission_id }}</td><td>{{ p.destination }}</td><td>{{ p.attempts }}</td><td>{% call at(c, p.next_attempt_at) %}{% endcall %}</td><td class=held>{% if p.held %}held{% else %}no{% endif %}</td><td>{{ p.last_cause }}</td><td>
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
{%- call pager(c.links.parked, c.parked_from, rows.len() as i64, "parked") %}{% endcall %}
{%- endif %}
{%- endcall %}

{%- call(receipts) rows_or_error(c.receipts, "") %}
<h2>Recent receipts</h2>
<table id=receipts><tr><th>submission</th><th>status</th><th>destination</th><th>attempts</th><th>reference</th><th>reason</th><th>completed</th></tr>
{%- for r in receipts %}
<tr data-submission="{{ r.submission_id }}"><td>{{ r.submission_id }}</td><td class=status>{{ r.status }}</td><td>{{ r.destination.as_deref().unwrap_or("") }}</td><td>{{ r.attempts }}</td><td>{{ r.reference.as_deref().unwrap_or("") }}</td><td>{{ r.reason_code.as_deref().unwrap_or("") }}</td><td>{% call at(c, r.completed_at) %}{% endcall %}</td></tr>
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
    use crate::domain::id::DestinationId;

    /// Markup where a portal or an authority could put text: in a
    /// submission id, a destination name, a reason detail.
    const HOSTILE: &str = r#"<script>alert("x")</script>"#;
    const ESCAPED: &str = "&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62;";

    fn dead_letter() -> DeadLetter {
        DeadLetter {
            id: 7,
            submission_id: Some(crate::domain::id::SubmissionId::from_stored(HOSTILE)),
            amqp_message_id: None,
            service: None,
            destination: Some(DestinationId::new(HOSTILE)),
            portal: None,
            reason_code: "authority_rejected".into(),
            reason_detail: format!(r#"HTTP 422 " onmouseover="{HOSTILE}"#),
            http_status: Some(422),
            received_sha256: "00".into(),
            created_at: crate::domain::time::Timestamp::parse("2026-12-01T10:00:00Z").unwrap(),
            key_id: None,
            sealed_key: None,
            sealed_payload: None,
            expires_at: None,
            payload_kept: true,
        }
    }

    fn console(operator: &str, csrf: Option<&str>) -> String {
        let destination = DestinationStatus {
            destination: DestinationId::new(HOSTILE),
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
            hour: Ok(LastHour::from_rows(
                time::OffsetDateTime::now_utc(),
                &[DestinationId::new(HOSTILE)],
                &[],
                &[],
                &[],
            )),
            search: None,
            dead_letters: Ok(vec![dead_letter()]),
            dead_from: 0,
            backlog: Ok(Vec::new()),
            parked: Ok(Vec::new()),
            parked_from: 0,
            receipts: Ok(Vec::new()),
            refresh: None,
            links: Links {
                back: "reason=x".into(),
                refresh: "/?reason=x".into(),
                auto_refresh: "/?reason=x&refresh=30".into(),
                dead_letters: Pager {
                    previous: None,
                    next: Some("/?reason=x&dl=50".into()),
                },
                parked: Pager {
                    previous: None,
                    next: None,
                },
            },
            zone: Zone::default_zone(),
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
    fn charts_times_and_links_of_the_page() {
        let page = console("anna", Some("c5rf"));
        // The chart's SVG is the page's only unescaped value: its own
        // escaping holds for a hostile destination name.
        assert!(
            page.contains(r#"<svg class=chart xmlns="http://www.w3.org/2000/svg" role=img"#),
            "{page}"
        );
        assert!(
            page.contains("<title>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;: receipts per 5 min: delivered "),
            "{page}"
        );
        assert_eq!(page.matches("<svg").count(), 3, "{page}");
        assert!(
            page.contains(r#"<time datetime="2026-12-01T10:00:00.000000Z" title="2026-12-01T10:00:00.000000Z">2026-12-01 11:00:00 CET</time>"#),
            "{page}"
        );
        assert!(
            page.contains(r#"<a rel=next href="/?reason=x&#38;dl=50">"#),
            "{page}"
        );
        assert!(
            page.contains(r#"<input type=hidden name=back value="reason=x">"#),
            "{page}"
        );
        assert!(!page.contains("http-equiv=refresh"), "{page}");
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
