//! Small line charts as inline SVG, written here rather than drawn by a
//! script: the console stays without JavaScript, and a chart is part of the
//! page a test or a screen reader reads. Each chart's `<title>` is its text
//! alternative (every value of every series), each data point a `<circle>`
//! with a `<title>` of its own (shown on hover) and its value in
//! `data-value`.
//!
//! The template inserts the result unescaped (`|safe`), so every text that
//! goes into it passes [`escape`] here: labels, titles and series names.

use std::fmt::Write as _;

/// One line: a name and a value per label (`None`: no value there).
pub(super) struct Series<'a> {
    pub name: &'a str,
    pub values: &'a [Option<i64>],
}

pub(super) struct Chart<'a> {
    /// What the chart shows, e.g. `x-berlin: delivered per 5 min`.
    pub title: &'a str,
    /// After each value in the text alternative (`ms`), or empty.
    pub unit: &'a str,
    /// The x axis: one label per value (times, e.g. `10:05`).
    pub labels: &'a [String],
    pub series: &'a [Series<'a>],
}

const WIDTH: f64 = 240.0;
const HEIGHT: f64 = 64.0;
/// Room for the y axis' top value on the left and the first and last
/// label below.
const LEFT: f64 = 34.0;
const TOP: f64 = 6.0;
const BOTTOM: f64 = 14.0;
const RIGHT: f64 = 6.0;

/// `text` safe in SVG (XML) text and in a quoted attribute.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The chart as an `<svg>` element.
pub(super) fn svg(chart: &Chart<'_>) -> String {
    let title = escape(chart.title);
    let mut out = format!(
        r#"<svg class=chart xmlns="http://www.w3.org/2000/svg" role=img width={WIDTH} height={HEIGHT} viewBox="0 0 {WIDTH} {HEIGHT}">"#
    );
    let max = chart
        .series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .copied()
        .max();
    let Some(max) = max else {
        let _ = write!(
            out,
            r#"<title>{title}: no data</title><text class=none x="{}" y="{}" text-anchor=middle>no data</text></svg>"#,
            WIDTH / 2.0,
            HEIGHT / 2.0
        );
        return out;
    };
    let _ = write!(out, "<title>{title}: {}</title>", escape(&summary(chart)));
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let scale = max.max(1) as f64;
    let n = chart.labels.len();
    let x = |i: usize| {
        if n <= 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: i64| TOP + plot_h * (1.0 - v as f64 / scale);
    // The axes and the top value.
    let _ = write!(
        out,
        r#"<path class=axis d="M{LEFT} {TOP}V{bottom}H{right}"/><text class=tick x="{tx}" y="{ty}" text-anchor=end>{max}{unit}</text>"#,
        bottom = TOP + plot_h,
        right = WIDTH - RIGHT,
        tx = LEFT - 3.0,
        ty = TOP + 8.0,
        unit = escape(chart.unit),
    );
    for (k, series) in chart.series.iter().enumerate() {
        let name = escape(series.name);
        let _ = write!(out, r#"<g class="series s{k}" data-series="{name}">"#);
        // A line through each run of values; a gap where there is none.
        let mut run = String::new();
        let close = |run: &mut String, out: &mut String| {
            // Two points at least: one alone is its circle.
            if run.trim_end().contains(' ') {
                let _ = write!(out, r#"<polyline points="{}"/>"#, run.trim_end());
            }
            run.clear();
        };
        for (i, value) in series.values.iter().take(n).enumerate() {
            match value {
                Some(v) => {
                    let _ = write!(run, "{:.1},{:.1} ", x(i), y(*v));
                }
                None => close(&mut run, &mut out),
            }
        }
        close(&mut run, &mut out);
        for (i, value) in series.values.iter().take(n).enumerate() {
            if let Some(v) = value {
                let _ = write!(
                    out,
                    r#"<circle cx="{:.1}" cy="{:.1}" r=2 data-value="{v}"><title>{name} {}: {v}{}</title></circle>"#,
                    x(i),
                    y(*v),
                    escape(&chart.labels[i]),
                    escape(chart.unit),
                );
            }
        }
        out.push_str("</g>");
    }
    if let (Some(first), Some(last)) = (chart.labels.first(), chart.labels.last()) {
        let _ = write!(
            out,
            r#"<text class=tick x="{LEFT}" y="{HEIGHT}">{}</text><text class=tick x="{}" y="{HEIGHT}" text-anchor=end>{}</text>"#,
            escape(first),
            WIDTH - RIGHT,
            escape(last),
        );
    }
    out.push_str("</svg>");
    out
}

/// Every value as text: `delivered 10:00 3, 10:05 0; failed …`.
fn summary(chart: &Chart<'_>) -> String {
    let series: Vec<String> = chart
        .series
        .iter()
        .map(|s| {
            let values: Vec<String> = chart
                .labels
                .iter()
                .zip(s.values)
                .map(|(label, v)| match v {
                    Some(v) => format!("{label} {v}{}", chart.unit),
                    None => format!("{label} -"),
                })
                .collect();
            format!("{} {}", s.name, values.join(", "))
        })
        .collect();
    series.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10:{:02}", i * 5)).collect()
    }

    #[test]
    fn a_chart_without_values_says_so() {
        let labels = labels(3);
        let empty = [None, None, None];
        let chart = svg(&Chart {
            title: "a: latency",
            unit: "ms",
            labels: &labels,
            series: &[Series {
                name: "p50",
                values: &empty,
            }],
        });
        assert!(chart.starts_with("<svg class=chart"), "{chart}");
        assert!(
            chart.contains("<title>a: latency: no data</title>"),
            "{chart}"
        );
        assert!(!chart.contains("<circle"), "{chart}");
        assert!(chart.ends_with("</svg>"), "{chart}");
        let none = svg(&Chart {
            title: "a",
            unit: "",
            labels: &[],
            series: &[],
        });
        assert!(none.contains("no data"), "{none}");
    }

    #[test]
    fn one_point_is_a_dot_in_the_middle_without_a_line() {
        let labels = labels(1);
        let chart = svg(&Chart {
            title: "a: delivered",
            unit: "",
            labels: &labels,
            series: &[Series {
                name: "delivered",
                values: &[Some(4)],
            }],
        });
        assert!(!chart.contains("<polyline"), "{chart}");
        assert_eq!(chart.matches("<circle").count(), 1, "{chart}");
        assert!(
            chart.contains(r#"<circle cx="134.0" cy="6.0" r=2 data-value="4"><title>delivered 10:00: 4</title></circle>"#),
            "{chart}"
        );
        assert!(chart.contains("<title>a: delivered: delivered 10:00 4</title>"));
    }

    #[test]
    fn values_are_points_and_gaps_break_the_line() {
        let labels = labels(4);
        let values = [Some(0), Some(10), None, Some(5)];
        let chart = svg(&Chart {
            title: "a: p95",
            unit: "ms",
            labels: &labels,
            series: &[Series {
                name: "p95",
                values: &values,
            }],
        });
        assert_eq!(chart.matches("<circle").count(), 3, "{chart}");
        // 0 and 10 joined; 5 alone after the gap.
        assert_eq!(chart.matches("<polyline").count(), 1, "{chart}");
        assert!(
            chart.contains(r#"<polyline points="34.0,50.0 100.7,6.0"/>"#),
            "{chart}"
        );
        assert!(chart.contains(">10ms</text>"), "the top value: {chart}");
        assert!(chart.contains("p95 10:00 0ms, 10:05 10ms, 10:10 -, 10:15 5ms"));
    }

    #[test]
    fn labels_and_names_are_escaped() {
        let labels = vec![r#"<script>"x"&'y'"#.to_owned()];
        let chart = svg(&Chart {
            title: "<b>dest</b>",
            unit: "<u>",
            labels: &labels,
            series: &[Series {
                name: r#"" onload="alert(1)"#,
                values: &[Some(1)],
            }],
        });
        assert!(!chart.contains("<script>"), "{chart}");
        assert!(!chart.contains("<b>"), "{chart}");
        assert!(!chart.contains("<u>"), "{chart}");
        assert!(!chart.contains(r#"" onload"#), "{chart}");
        assert!(
            chart.contains("&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;"),
            "{chart}"
        );
        assert!(
            chart.contains(r#"data-series="&quot; onload=&quot;alert(1)""#),
            "{chart}"
        );
    }
}
