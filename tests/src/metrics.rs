//! Reading Prometheus text exposition in tests: the one parser the test
//! files share.

/// The sum of every sample of metric `name` (all label sets), or `None` when
/// the text has no sample of it. `name` must be whole: `x` does not match
/// `x_total`.
pub fn sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_label_sets_and_matches_whole_names() {
        let text = "# HELP x help\nx{node=\"i1\"} 2\nx{node=\"i2\"} 3.5\nx_total 9\ny 1\n";
        assert_eq!(sum(text, "x"), Some(5.5));
        assert_eq!(sum(text, "x_total"), Some(9.0));
        assert_eq!(sum(text, "z"), None);
    }
}
