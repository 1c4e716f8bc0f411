//! Reading Prometheus text exposition in tests: the one parser the test
//! files share. A sample line is `name{labels} value` or `name value`;
//! `name` always matches whole (`x` is not `x_total`).
//!
//! - [`sum`]: every series of a metric added up (a counter over all its
//!   label sets, or an unlabelled gauge).
//! - [`sum_with`]: the series of a metric that carry given labels, added up
//!   (e.g. `roomnode_rejected_total` with `reason="join_rate"`); with every
//!   label of one series given, that series' value.
//! - [`value`]: [`sum_with`] where no series means 0 (a labelled counter
//!   appears only at its first increment).
//! - [`scrape`], [`try_scrape`]: `GET /metrics` of a router or node.

use crate::Http;

/// The sum of every sample of metric `name` (all label sets), or `None` when
/// the text has no sample of it.
pub fn sum(text: &str, name: &str) -> Option<f64> {
    sum_with(text, name, &[])
}

/// The sum of the samples of metric `name` whose label set includes every
/// `(label, value)` of `labels`, or `None` when no sample matches.
pub fn sum_with(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(sample) = parse(line) else {
            continue;
        };
        if sample.name != name {
            continue;
        }
        let has = |(label, value): &(&str, &str)| sample.labels.contains(&(*label, *value));
        if labels.iter().all(has) {
            *found.get_or_insert(0.0) += sample.value;
        }
    }
    found
}

/// The value of metric `name`: its series with `labels` (all of them for
/// `&[]`) added up, 0 when there is none, since a labelled counter is
/// exported only from its first increment on.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sum_with(text, name, labels).unwrap_or(0.0)
}

/// `GET /metrics` of `http` as text; panics unless it answers 200.
pub async fn scrape(http: &Http) -> String {
    let r = http.get("/metrics").await;
    assert_eq!(r.status, 200, "GET {}/metrics: {}", http.base(), r.text);
    r.text
}

/// `GET /metrics` of `http` as text, or `None` when it does not answer 200
/// (e.g. a node under a flood, or stopped).
pub async fn try_scrape(http: &Http) -> Option<String> {
    let r = http
        .send(reqwest::Method::GET, "/metrics", None)
        .await
        .ok()?;
    (r.status == 200).then_some(r.text)
}

/// One sample line, borrowed from the text.
struct Sample<'a> {
    name: &'a str,
    labels: Vec<(&'a str, &'a str)>,
    value: f64,
}

/// `name{a="x",b="y"} value` or `name value`; `None` for anything else.
/// Label values are taken as written (the metrics under test escape
/// nothing).
fn parse(line: &str) -> Option<Sample<'_>> {
    let (series, value) = line.trim_end().rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}')?),
        None => (series, ""),
    };
    let labels = labels
        .split(',')
        .filter(|l| !l.is_empty())
        .map(|pair| {
            let (label, value) = pair.split_once('=')?;
            Some((label, value.strip_prefix('"')?.strip_suffix('"')?))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x help\n# TYPE x counter\nx{node=\"i1\",reason=\"a\"} 2\nx{node=\"i2\",reason=\"b\"} 3.5\nx_total 9\ny 1\n";

    #[test]
    fn sums_label_sets_and_matches_whole_names() {
        assert_eq!(sum(TEXT, "x"), Some(5.5));
        assert_eq!(sum(TEXT, "x_total"), Some(9.0));
        assert_eq!(sum(TEXT, "z"), None);
    }

    #[test]
    fn picks_series_by_their_labels() {
        assert_eq!(sum_with(TEXT, "x", &[("node", "i2")]), Some(3.5));
        assert_eq!(
            sum_with(TEXT, "x", &[("node", "i1"), ("reason", "a")]),
            Some(2.0)
        );
        assert_eq!(
            sum_with(TEXT, "x", &[("node", "i1"), ("reason", "b")]),
            None
        );
        assert_eq!(
            sum_with(TEXT, "x", &[("node", "i")]),
            None,
            "values match whole"
        );
        assert_eq!(sum_with(TEXT, "y", &[]), Some(1.0));
    }
}
