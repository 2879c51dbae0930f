//! A small Prometheus registry: counters, gauges and histograms with labels, rendered in the
//! text exposition format (version 0.0.4).
//!
//! Why not the `metrics` crate and its Prometheus exporter: every number here is derived from
//! the event stream by one sink, so all we need is a map from label sets to numbers and a text
//! renderer (about 150 lines). The exporter would bring a process-global recorder (awkward with
//! several servers in one test process), summaries instead of fixed-bucket histograms unless
//! configured, and a dozen more crates to build and audit.

use std::collections::BTreeMap;
use std::fmt::Write;

pub type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Counter,
    Gauge,
    /// Upper bounds of the buckets, ascending (+Inf is implied).
    Histogram(&'static [f64]),
}

#[derive(Debug, Clone)]
enum Sample {
    Value(f64),
    Histogram { buckets: Vec<u64>, sum: f64, count: u64 },
}

struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    samples: BTreeMap<Labels, Sample>,
}

#[derive(Default)]
pub struct Registry {
    families: Vec<Family>,
}

impl Registry {
    /// Declares a metric; rendered in declaration order, even before it has samples.
    pub fn declare(&mut self, name: &'static str, kind: Kind, help: &'static str) {
        self.families.push(Family { name, help, kind, samples: BTreeMap::new() });
    }

    fn family(&mut self, name: &str) -> &mut Family {
        let i = self.families.iter().position(|f| f.name == name);
        match i {
            Some(i) => &mut self.families[i],
            None => panic!("metric {name} used but not declared"),
        }
    }

    /// Adds `by` to a counter or gauge.
    pub fn add(&mut self, name: &str, labels: Labels, by: f64) {
        let family = self.family(name);
        match family.samples.entry(labels).or_insert(Sample::Value(0.0)) {
            Sample::Value(v) => *v += by,
            Sample::Histogram { .. } => {}
        }
    }

    pub fn set(&mut self, name: &str, labels: Labels, value: f64) {
        self.family(name).samples.insert(labels, Sample::Value(value));
    }

    pub fn observe(&mut self, name: &str, labels: Labels, value: f64) {
        let family = self.family(name);
        let Kind::Histogram(bounds) = family.kind else { return };
        let sample = family.samples.entry(labels).or_insert_with(|| Sample::Histogram {
            buckets: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        });
        if let Sample::Histogram { buckets, sum, count } = sample {
            // Cumulative buckets are built when rendering; here, the first bucket that fits.
            if let Some(i) = bounds.iter().position(|&b| value <= b) {
                buckets[i] += 1;
            }
            *sum += value;
            *count += 1;
        }
    }

    /// Replaces a histogram's sample with counts kept elsewhere: `buckets[i]` events fell in
    /// bucket `i` (not cumulative; one more entry than bounds, for +Inf).
    pub fn set_histogram(&mut self, name: &str, labels: Labels, buckets: &[u64], sum: f64) {
        let family = self.family(name);
        let Kind::Histogram(bounds) = family.kind else { return };
        let count = buckets.iter().sum();
        let within = buckets.iter().take(bounds.len()).copied().collect();
        family.samples.insert(labels, Sample::Histogram { buckets: within, sum, count });
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        for f in &self.families {
            let kind = match f.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram(_) => "histogram",
            };
            let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
            let _ = writeln!(out, "# TYPE {} {kind}", f.name);
            for (labels, sample) in &f.samples {
                match (sample, f.kind) {
                    (Sample::Value(v), _) => {
                        let _ = writeln!(out, "{}{} {}", f.name, render_labels(labels, None), number(*v));
                    }
                    (Sample::Histogram { buckets, sum, count }, Kind::Histogram(bounds)) => {
                        let mut cumulative = 0;
                        for (bound, n) in bounds.iter().zip(buckets) {
                            cumulative += n;
                            let le = number(*bound);
                            let _ = writeln!(out, "{}_bucket{} {cumulative}", f.name, render_labels(labels, Some(&le)));
                        }
                        let _ = writeln!(out, "{}_bucket{} {count}", f.name, render_labels(labels, Some("+Inf")));
                        let _ = writeln!(out, "{}_sum{} {}", f.name, render_labels(labels, None), number(*sum));
                        let _ = writeln!(out, "{}_count{} {count}", f.name, render_labels(labels, None));
                    }
                    _ => {}
                }
            }
        }
        out
    }
}

fn render_labels(labels: &Labels, le: Option<&str>) -> String {
    if labels.is_empty() && le.is_none() {
        return String::new();
    }
    let mut out = String::from("{");
    let all = labels.iter().map(|(k, v)| (*k, v.as_str())).chain(le.map(|le| ("le", le)));
    for (i, (key, value)) in all.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(key);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.is_nan() {
        "NaN".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let mut r = Registry::default();
        r.declare("t_total", Kind::Counter, "Things.");
        r.declare("t_seconds", Kind::Histogram(&[0.1, 1.0]), "Durations.");
        r.declare("t_empty", Kind::Gauge, "Nothing yet.");
        r.add("t_total", vec![("listener", "imaps".into()), ("why", "a \"quoted\"\\ one".into())], 1.0);
        r.add("t_total", vec![("listener", "imaps".into()), ("why", "a \"quoted\"\\ one".into())], 2.0);
        r.observe("t_seconds", vec![], 0.05);
        r.observe("t_seconds", vec![], 0.5);
        r.observe("t_seconds", vec![], 7.0);
        assert_eq!(
            r.render(),
            "# HELP t_total Things.\n# TYPE t_total counter\n\
             t_total{listener=\"imaps\",why=\"a \\\"quoted\\\"\\\\ one\"} 3\n\
             # HELP t_seconds Durations.\n# TYPE t_seconds histogram\n\
             t_seconds_bucket{le=\"0.1\"} 1\nt_seconds_bucket{le=\"1\"} 2\nt_seconds_bucket{le=\"+Inf\"} 3\n\
             t_seconds_sum 7.55\nt_seconds_count 3\n\
             # HELP t_empty Nothing yet.\n# TYPE t_empty gauge\n"
        );
    }
}
