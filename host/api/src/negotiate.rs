//! Which of the two metrics formats a scraper asked for, from its `Accept` header (RFC 9110
//! §12.5.1): each format gets the quality of the most specific range that matches it, and
//! OpenMetrics is served only when it is preferred. A range with `q=0` refuses its format, so
//! `application/openmetrics-text;q=0` gets the text format, as does a header that ranks them
//! equal (`*/*`) or names neither.

/// The quality (0 to 1000) this `Accept` header gives `mime` (`type/subtype`): that of the most
/// specific matching range (exact, then `type/*`, then `*/*`); 0 when none matches.
fn quality(accept: &str, mime: &str) -> u16 {
    let (ty, _) = mime.split_once('/').unwrap_or((mime, ""));
    let mut best: Option<(u8, u16)> = None; // (specificity, quality)
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let specificity = if media == mime {
            3
        } else if media.strip_suffix("/*") == Some(ty) {
            2
        } else if media == "*/*" {
            1
        } else {
            continue;
        };
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1000, |(_, v)| parse_q(v.trim()));
        // Of several ranges equally specific (one type listed twice, with two versions), the
        // better quality counts.
        if best.is_none_or(|(s, bq)| specificity > s || (specificity == s && q > bq)) {
            best = Some((specificity, q));
        }
    }
    best.map_or(0, |(_, q)| q)
}

/// `q` as thousandths; anything unreadable counts as 0 (refused), never as a preference.
fn parse_q(v: &str) -> u16 {
    let Ok(q) = v.parse::<f32>() else { return 0 };
    if !(0.0..=1.0).contains(&q) {
        return 0;
    }
    (q * 1000.0).round() as u16
}

/// True when the `Accept` values prefer OpenMetrics to the Prometheus text format.
pub fn prefers_openmetrics<'a>(accept: impl IntoIterator<Item = &'a str>) -> bool {
    let accept = accept.into_iter().collect::<Vec<_>>().join(",");
    let om = quality(&accept, "application/openmetrics-text");
    om > 0 && om > quality(&accept, "text/plain")
}

#[cfg(test)]
mod tests {
    use super::prefers_openmetrics as om;

    #[test]
    fn prometheus_gets_openmetrics_and_everyone_else_text() {
        // What Prometheus 2.x and 3.x send.
        assert!(om([
            "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
        ]));
        assert!(om([
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
        ]));
        assert!(om(["application/openmetrics-text"]));
        // curl, promtool, a browser, no header at all.
        assert!(!om(["*/*"]));
        assert!(!om([]));
        assert!(!om(["text/html,application/xhtml+xml,*/*;q=0.8"]));
        assert!(!om(["text/plain"]));
    }

    #[test]
    fn a_refused_or_lesser_openmetrics_gets_text() {
        // Found by reading: the header was matched by substring, so q=0 asked for it.
        assert!(!om(["application/openmetrics-text;q=0"]));
        assert!(!om(["application/openmetrics-text;q=0, */*"]));
        assert!(!om(["text/plain, application/openmetrics-text;q=0.9"]));
        assert!(!om(["application/openmetrics-text;q=0.5, text/*;q=0.5"]));
        assert!(!om(["application/openmetrics-text;q=banana"]));
        assert!(!om(["application/openmetrics-text;q=2"]));
        // Case, spaces, and two header lines.
        assert!(om([
            "Application/OpenMetrics-Text ; Q=0.9",
            "text/plain;q=0.1"
        ]));
    }
}
